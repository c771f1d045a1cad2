"""`--commit` for lifecycle commands: the catalog change, then the render.

Two commits, so that `llmgen commit`'s rule holds (its commits hold
generated/ and nothing else) and each reads on its own in review: first
exactly the catalog files the command edited, then generated/ rendered from
them by `commit.commit`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmgen.lifecycle.verbs import Outcome


@dataclass
class Committed:
    """The commits `commit_outcome` made (None where there was nothing to commit)."""

    catalog: str | None
    generated: str | None
    message: str
    notes: list[str] = field(default_factory=list)


def commit_outcome(root: Path, outcome: Outcome) -> Committed:
    """Commit the catalog change, then render and commit generated/.

    Two commits, so that `llmgen commit`'s rule holds (its commits hold
    generated/ and nothing else) and each one reads on its own in review.
    """
    from llmgen.gitops import commit as commit_mod

    repo = commit_mod.open_repo(root)
    top = Path(str(repo.working_tree_dir)).resolve()
    paths = [(root / p).resolve().relative_to(top).as_posix() for p in outcome.paths]
    subject = f"catalog: {outcome.action}"
    sha = None
    if paths:
        sha = _commit_paths(repo, paths, f"{subject}\n\n{outcome.summary}\n", commit_mod)
    rendered = commit_mod.commit(root, message=f"llmgen: render after {outcome.action}")
    return Committed(sha, rendered.commit if rendered.committed else None, subject, rendered.notes)


def _commit_paths(repo: Any, paths: list[str], message: str, commit_mod: Any) -> str | None:
    """Commit exactly `paths` on top of HEAD through a private index (hooks do not run)."""
    with commit_mod.commit_lock(repo, 600.0):
        try:
            head: str | None = repo.head.commit.hexsha
        except ValueError:
            head = None
        index = Path(repo.git_dir) / f"llmgen-edit-index-{os.getpid()}"
        env = {"GIT_INDEX_FILE": str(index)}
        try:
            if head is not None:
                repo.git.read_tree(head, env=env)
            else:
                repo.git.read_tree("--empty", env=env)
            repo.git.add("-A", "--", *paths, env=env)
            tree = str(repo.git.write_tree(env=env))
        finally:
            index.unlink(missing_ok=True)
        if head is not None and tree == repo.head.commit.tree.hexsha:
            return None
        parents = ["-p", head] if head is not None else []
        sha = str(repo.git.commit_tree(tree, *parents, "-m", message))
        repo.git.update_ref("-m", "llmgen: catalog edit", "HEAD", sha, head or "0" * 40)
        repo.git.add("-A", "--", *paths)  # the user's index agrees with the new HEAD
        return sha


def describe_commit(done: Committed) -> str:
    """One line per commit made."""
    lines = [
        f"committed catalog change {done.catalog[:12]}: {done.message}" if done.catalog else "",
        f"committed generated/ {done.generated[:12]}" if done.generated else "generated/ unchanged",
    ]
    return "\n".join([x for x in lines if x] + done.notes)
