"""`llmgen commit`: render, then commit generated/ and nothing else.

The commit is built with git plumbing on a private index (`read-tree HEAD`,
`add -A -- generated/`, `write-tree`, `commit-tree`) and lands with a
compare-and-swap `update-ref`, so:

- files outside generated/ never enter the commit, whatever else is dirty or
  staged in the user's index;
- history is only ever extended: if HEAD moved while we worked, the ref
  update fails instead of overwriting someone's commit;
- no hooks run (this is an automation commit, usually in CI).

A file lock under the git directory serialises concurrent runs, so the second
of two simultaneous runs sees the first one's commit and has nothing to do.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import git

from llmgen import __version__
from llmgen.errors import Diagnostic, LlmgenError, UsageError
from llmgen.gitops.changes import ClusterChange, models_at, models_by_cluster, summarise
from llmgen.render import pipeline
from llmgen.render.write import GENERATED, flock_within, write_tree, written_digests
from llmgen.resources import templates_dir

TRAILER_HASH = "Llmgen-Catalog-Hash"
TRAILER_VERSION = "Llmgen-Version"
LOCK_NAME = "llmgen-commit.lock"
_ZERO_SHA = "0" * 40
_MAX_LISTED = 20


class CommitError(LlmgenError):
    """A git step of `llmgen commit` failed or was refused (exit 1)."""


class HandEditsError(CommitError):
    """generated/ holds uncommitted edits that a render would overwrite."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        listed = "\n".join(f"  {p}" for p in paths[:_MAX_LISTED])
        more = f"\n  ... and {len(paths) - _MAX_LISTED} more" if len(paths) > _MAX_LISTED else ""
        super().__init__(
            f"refusing to commit: {len(paths)} file(s) in {GENERATED}/ were edited by hand "
            f"and the render would overwrite them:\n{listed}{more}\n"
            "generated/ is rendered from catalog/; put the change in catalog/ or overlays/, "
            f"discard the edits (git checkout -- {GENERATED}/), or pass --force to overwrite them."
        )


class StaleInputsError(CommitError):
    """The render inputs have uncommitted changes: the commit would record a
    generated/ that does not match its own catalog/."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        listed = "\n".join(f"  {p}" for p in paths[:_MAX_LISTED])
        more = f"\n  ... and {len(paths) - _MAX_LISTED} more" if len(paths) > _MAX_LISTED else ""
        super().__init__(
            f"refusing to commit: {len(paths)} render input(s) have uncommitted changes:\n"
            f"{listed}{more}\n"
            f"{GENERATED}/ would be rendered from them while the commit keeps the old ones, "
            f"so the commit's {GENERATED}/ would not match its catalog. Commit them first "
            "(or use a lifecycle verb's --commit, which commits both), or stash them."
        )


@dataclass
class CommitResult:
    """What `commit()` did; `committed` is False when there was nothing to commit."""

    committed: bool
    commit: str | None
    branch: str | None
    message: str
    clusters: list[ClusterChange] = field(default_factory=list)
    created_branch: bool = False
    pushed: bool = False
    remote: str | None = None
    overwritten: list[str] = field(default_factory=list)  # hand edits replaced (--force)
    notes: list[str] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)


# ------------------------------------------------------------------ helpers


def open_repo(root: Path) -> git.Repo:
    """The git repository holding `root` (which may be a subfolder of it)."""
    try:
        return git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise CommitError(f"{root} is not inside a git repository") from None


def _prefix(repo: git.Repo, root: Path) -> str:
    """`root` relative to the repository's top level ('' when it is the top)."""
    top = Path(str(repo.working_tree_dir)).resolve()
    rel = root.resolve().relative_to(top).as_posix()
    return "" if rel == "." else rel + "/"


def _head(repo: git.Repo) -> str | None:
    try:
        return repo.head.commit.hexsha
    except ValueError:  # unborn branch: a repository without commits
        return None


def check_index_unlocked(repo: git.Repo) -> None:
    """Refuse a stale `index.lock` up front: git would fail half-way through otherwise."""
    lock = Path(repo.git_dir) / "index.lock"
    if lock.exists():
        raise CommitError(
            f"{lock} exists: another git command is running in this repository, or one "
            "crashed and left it behind. Nothing was changed; when no git command is "
            "running, remove the file and run again."
        )


@contextlib.contextmanager
def commit_lock(repo: git.Repo, timeout: float | None = None) -> Iterator[Path]:
    """Hold an exclusive flock on `<git common dir>/llmgen-commit.lock`.

    Waits for a running commit to finish (forever when `timeout` is None).
    The lock lives in the common git directory so that every worktree of a
    repository shares it (they share branches, too). The kernel drops it when
    the process dies, so a killed run never leaves a stale lock behind.
    """
    path = Path(repo.common_dir) / LOCK_NAME
    with path.open("a") as fh:
        if timeout is None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        else:
            _flock_within(fh.fileno(), path, timeout)
        try:
            yield path
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _flock_within(fd: int, path: Path, timeout: float) -> None:
    if not flock_within(fd, timeout, poll=0.1):
        raise CommitError(f"another 'llmgen commit' holds {path}; gave up after {timeout:g}s")


def catalog_hash(root: Path) -> str:
    """sha256 of every render input: catalog/, overlays/, templates and llmgen's version.

    Paths are hashed relative to their folder's parent, so the same inputs give
    the same hash on any machine and in any checkout location.
    """
    h = hashlib.sha256(f"llmgen {__version__}\0".encode())
    for folder in (root / "catalog", root / "overlays", templates_dir(root)):
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            h.update(path.relative_to(folder.parent).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _z(output: str) -> list[str]:
    return [p for p in output.split("\0") if p]


def _dirty_generated(repo: git.Repo, pathspec: str, has_head: bool) -> list[str]:
    """Repo-relative paths under generated/ whose working copy differs from HEAD."""
    paths = set(_z(repo.git.ls_files("-z", "--others", "--exclude-standard", "--", pathspec)))
    if has_head:
        paths.update(_z(repo.git.diff("HEAD", "--name-only", "--no-renames", "-z", "--", pathspec)))
    else:
        paths.update(_z(repo.git.ls_files("-z", "--", pathspec)))
    return sorted(paths)


def hand_edits(
    dirty: list[str],
    prefix: str,
    working: dict[str, bytes],
    rendered: dict[str, bytes],
    written: dict[str, str] | None = None,
) -> list[str]:
    """Dirty files whose working content the render would replace or delete.

    A file that differs from HEAD but equals the fresh render, or equals what
    an earlier `llmgen render` wrote there (`written`: a catalog state since
    undone, as after start, render, stop), is llmgen's own output; a deleted
    file loses nothing when re-rendered. Everything else is someone's work.
    """
    found = []
    for repo_path in dirty:
        rel = repo_path[len(prefix) :]
        if rel not in working or working[rel] == rendered.get(rel):
            continue
        if written and written.get(rel) == hashlib.sha256(working[rel]).hexdigest():
            continue
        found.append(rel)
    return found


#: What a render reads besides llmgen itself; a commit must not leave them dirty.
RENDER_INPUTS = ("catalog", "overlays", "templates", "schemas")


def uncommitted_inputs(repo: git.Repo, prefix: str, has_head: bool) -> list[str]:
    """Repo-relative render inputs that differ from HEAD (staged, unstaged or new)."""
    specs = [f"{prefix}{name}" for name in RENDER_INPUTS]
    paths = set(_z(repo.git.ls_files("-z", "--others", "--exclude-standard", "--", *specs)))
    if has_head:
        paths.update(_z(repo.git.diff("HEAD", "--name-only", "--no-renames", "-z", "--", *specs)))
    else:
        paths.update(_z(repo.git.ls_files("-z", "--", *specs)))
    return sorted(paths)


# ------------------------------------------------------------------ summary


def commit_message(subject: str | None, clusters: list[ClusterChange], digest: str) -> str:
    """Subject, one paragraph per cluster, then the llmgen trailers."""
    names = [c.cluster for c in clusters]
    if subject is None:
        shown = ", ".join(names) if len(names) <= 3 else f"{len(names)} clusters"
        subject = f"llmgen: render {shown}" if names else "llmgen: render generated/"
    body: list[str] = []
    for c in clusters:
        parts = [
            f"{label}: {', '.join(ms)}"
            for label, ms in (
                ("added", c.models_added),
                ("changed", c.models_changed),
                ("removed", c.models_removed),
            )
            if ms
        ]
        added, changed, removed = c.counts()
        models = "models " + "; ".join(parts) if parts else "no model changes"
        body.append(f"{c.cluster}: {models}")
        body.append(f"  resources: {added} added, {changed} changed, {removed} removed")
    trailers = [f"{TRAILER_HASH}: sha256:{digest}", f"{TRAILER_VERSION}: {__version__}"]
    return "\n".join([subject.rstrip("\n"), "", *body, "", *trailers]) + "\n"


# ------------------------------------------------------------------ commit


def _check_branch(repo: git.Repo, branch: str | None, push: bool) -> tuple[str | None, bool]:
    """The branch to commit on and whether it must be created; refuse what we cannot do."""
    current = None if repo.head.is_detached else repo.active_branch.name
    if branch is None:
        if push and current is None:
            raise UsageError("HEAD is detached; pass --branch NAME to say where to push")
        return current, False
    try:
        repo.git.check_ref_format("--branch", branch)
    except git.GitCommandError:
        raise UsageError(f"{branch!r} is not a valid branch name") from None
    if branch == current:
        return branch, False
    if branch in repo.heads:
        # Switching would swap catalog/ under the user; ask them to do it.
        raise CommitError(
            f"branch {branch!r} already exists and is not checked out; "
            f"check it out first (git switch {branch}) or choose a new name"
        )
    return branch, True


def _git_error(what: str, exc: git.GitCommandError) -> CommitError:
    detail = str(exc.stderr or exc.stdout or exc).strip().removeprefix("stderr:").strip(" '\n")
    return CommitError(f"{what} failed: {detail}")


def commit(
    root: Path,
    message: str | None = None,
    branch: str | None = None,
    push: bool = False,
    remote: str = "origin",
    force: bool = False,
    lock_timeout: float | None = None,
) -> CommitResult:
    """Render generated/ and commit exactly it, with a per-cluster summary.

    Raises CatalogError on an invalid catalog and HandEditsError when
    generated/ holds hand edits (unless `force`), in both cases before
    anything is written. Returns `committed=False` when generated/ already
    matches HEAD. Never commits outside generated/, never rewrites history.
    """
    repo = open_repo(root)
    prefix = _prefix(repo, root)
    pathspec = f"{prefix}{GENERATED}"
    check_index_unlocked(repo)
    with commit_lock(repo, lock_timeout):
        check_index_unlocked(repo)
        target, create = _check_branch(repo, branch, push)
        if push and remote not in [r.name for r in repo.remotes]:
            raise UsageError(f"no git remote named {remote!r}")
        head = _head(repo)
        rendered = pipeline.check(root)  # validates first: CatalogError leaves everything as is
        stale = uncommitted_inputs(repo, prefix, head is not None)
        if stale:
            raise StaleInputsError(stale)
        dirty = _dirty_generated(repo, pathspec, head is not None)
        edits = hand_edits(dirty, prefix, rendered.old, rendered.files, written_digests(root))
        if edits and not force:
            raise HandEditsError(edits)
        if not rendered.diff.empty:
            write_tree(root, rendered.files)

        tree, changed = _stage_privately(repo, pathspec, head)
        notes = _notes(repo, prefix)
        if head is not None and tree == repo.head.commit.tree.hexsha:
            return CommitResult(
                False,
                None,
                target,
                "",
                overwritten=edits,
                notes=notes,
                warnings=rendered.warnings,
            )
        old = {p[len(prefix) :]: b for p, b in _blobs(repo, head, changed).items()}
        new = {
            rel: (root / rel).read_bytes()
            for rel in (p[len(prefix) :] for p in changed)
            if (root / rel).is_file()
        }
        clusters = summarise(
            old, new, models_at(repo, head, pathspec, prefix), models_by_cluster(rendered.files)
        )
        text = commit_message(message, clusters, catalog_hash(root))
        sha = _land(repo, tree, head, text, target, create)
        # The user's own index still lists the old generated/; align just that folder.
        repo.git.add("-A", "--", pathspec)
        result = CommitResult(
            True,
            sha,
            target,
            text,
            clusters,
            created_branch=create,
            overwritten=edits,
            notes=notes,
            warnings=rendered.warnings,
        )
        if push:
            assert target is not None  # _check_branch refused a detached push
            try:
                repo.git.push("--porcelain", remote, f"refs/heads/{target}:refs/heads/{target}")
            except git.GitCommandError as exc:
                raise _git_error(f"committed {sha[:12]} but pushing to {remote!r}", exc) from None
            result.pushed, result.remote = True, remote
        return result


def _stage_privately(repo: git.Repo, pathspec: str, head: str | None) -> tuple[str, list[str]]:
    """Write HEAD's tree with generated/ taken from the working tree.

    Returns the tree id and the repo-relative paths that differ from HEAD.
    The user's index is never read or written here.
    """
    index = Path(repo.git_dir) / f"llmgen-index-{os.getpid()}"
    env = {"GIT_INDEX_FILE": str(index)}
    try:
        if head is not None:
            repo.git.read_tree(head, env=env)
        else:
            repo.git.read_tree("--empty", env=env)
        repo.git.add("-A", "--", pathspec, env=env)
        tree = str(repo.git.write_tree(env=env))
        if head is not None:
            changed = _z(
                repo.git.diff_index(
                    "--cached", "--name-only", "--no-renames", "-z", head, "--", pathspec, env=env
                )
            )
        else:
            changed = _z(repo.git.ls_files("-z", "--", pathspec, env=env))
        return tree, changed
    finally:
        index.unlink(missing_ok=True)


def _blobs(repo: git.Repo, head: str | None, paths: list[str]) -> dict[str, bytes]:
    """HEAD's bytes of each repo-relative path that exists there."""
    if head is None:
        return {}
    tree = repo.commit(head).tree
    out: dict[str, bytes] = {}
    for path in paths:
        try:
            out[path] = tree[path].data_stream.read()
        except KeyError:
            continue
    return out


def _land(
    repo: git.Repo, tree: str, head: str | None, text: str, target: str | None, create: bool
) -> str:
    """Create the commit and move the branch to it, only if it still points at `head`."""
    parents = ["-p", head] if head is not None else []
    msg_file = Path(repo.git_dir) / f"llmgen-message-{os.getpid()}"
    try:
        msg_file.write_text(text, encoding="utf-8")
        sha = str(repo.git.commit_tree(tree, *parents, "-F", str(msg_file)))
        if create:
            assert target is not None
            # Create the branch at the new commit, then point HEAD at it; the
            # working tree and index already match, so nothing is checked out.
            ref = f"refs/heads/{target}"
            repo.git.update_ref("-m", "llmgen commit: new branch", ref, sha, _ZERO_SHA)
            repo.git.symbolic_ref("HEAD", f"refs/heads/{target}")
        else:
            repo.git.update_ref("-m", "llmgen commit", "HEAD", sha, head or _ZERO_SHA)
    except git.GitCommandError as exc:
        raise _git_error("creating the commit", exc) from None
    finally:
        msg_file.unlink(missing_ok=True)
    return sha


def _notes(repo: git.Repo, prefix: str) -> list[str]:
    """Things the committer should know, e.g. that catalog/ is not committed."""
    inputs = [f"{prefix}{d}" for d in ("catalog", "overlays", "templates")]
    dirty = _z(repo.git.status("--porcelain", "-z", "--untracked-files=all", "--", *inputs))
    if not dirty:
        return []
    return [
        f"{len(dirty)} uncommitted file(s) under catalog/, overlays/ or templates/: "
        "this commit's generated/ reflects them, but they are not part of it"
    ]
