"""The library entry points the CLI calls: validate, render, check, diff.

Each function takes a repo root and options and returns data; nothing here
prints or exits. A catalog problem raises CatalogError carrying every
diagnostic, and in that case generated/ is never touched.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llmgen import __version__
from llmgen.catalog.model import Catalog
from llmgen.catalog.validate import ValidationResult
from llmgen.errors import CatalogError, Diagnostic, UsageError
from llmgen.plan.build import Plan, build_plan
from llmgen.plan.check import validate_with_plan
from llmgen.render.engine import render_plan
from llmgen.render.write import (
    GENERATED,
    TreeDiff,
    cache_hit,
    diff_trees,
    inputs_key,
    read_tree,
    recover,
    render_lock,
    save_cache,
    save_written,
    tree_matches,
    write_tree,
)
from llmgen.resources import templates_dir


@dataclass
class Rendered:
    """An in-memory render and what it differs from the tree on disk."""

    files: dict[str, bytes]
    old: dict[str, bytes]
    diff: TreeDiff
    documents: int
    warnings: list[Diagnostic] = field(default_factory=list)
    prefixes: tuple[str, ...] | None = None


@dataclass
class RenderOutcome:
    diff: TreeDiff
    documents: int
    noop: bool
    warnings: list[Diagnostic]


def checked_catalog(root: Path) -> tuple[Catalog, list[Diagnostic]]:
    """Validate; raise CatalogError on any error, else return catalog and warnings.

    Validation includes the credential guard (`validate.catalog_leaks`): every
    value that reaches generated/ comes from the catalog, so a credential is
    refused at its catalog line before anything renders (verify scans the
    written tree as well).
    """
    # What validate refuses, render refuses: the plan's checks (pools full,
    # budget, canaries) run here too.
    result: ValidationResult = validate_with_plan(root)[0]
    if not result.ok or result.catalog is None:
        raise CatalogError(result.diagnostics)
    return result.catalog, list(result.diagnostics)


def select_clusters(
    plan: Plan, envs: list[str] | None, clusters: list[str] | None
) -> list[str] | None:
    """Cluster names selected by --env/--cluster (None means every cluster)."""
    if not envs and not clusters:
        return None
    chosen: set[str] = set()
    for env in envs or []:
        if env not in plan.environments:
            hint = difflib.get_close_matches(env, list(plan.environments), n=1)
            raise UsageError(
                f"no environment named {env!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
            )
        chosen.update(c.name for c in plan.clusters.values() if c.env_name == env)
    for name in clusters or []:
        if name not in plan.clusters:
            hint = difflib.get_close_matches(name, list(plan.clusters), n=1)
            raise UsageError(
                f"no cluster named {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
            )
        chosen.add(name)
    return sorted(chosen)


Progress = Callable[[str, int, int], None]


def _no_progress(_stage: str, _done: int, _total: int) -> None:
    return None


def render_in_memory(
    root: Path,
    envs: list[str] | None = None,
    clusters: list[str] | None = None,
    progress: Progress | None = None,
) -> Rendered:
    """Validate, plan and render; compare with generated/ (within the selection).

    `progress(stage, done, total)` hears the phases (validate, plan, render, compare).
    """
    step = progress or _no_progress
    step("validate", 0, 4)
    catalog, warnings = checked_catalog(root)
    step("plan", 1, 4)
    plan = build_plan(catalog)
    selected = select_clusters(plan, envs, clusters)
    step("render", 2, 4)
    result = render_plan(plan, templates_dir(root), root, selected)
    step("compare", 3, 4)
    prefixes = (
        tuple(f"{GENERATED}/clusters/{c}/" for c in selected) if selected is not None else None
    )
    old = read_tree(root, prefixes)
    return Rendered(
        result.files, old, diff_trees(old, result.files), result.documents, warnings, prefixes
    )


def render(
    root: Path,
    envs: list[str] | None = None,
    clusters: list[str] | None = None,
    progress: Progress | None = None,
) -> RenderOutcome:
    """`llmgen render`: bring generated/ in line with the catalog, atomically.

    One run at a time per repository (`render_lock`): a second run waits, so
    parallel renders never delete each other's staging trees or write back a
    stale copy of another environment. The no-op cache is saved only when
    generated/ holds exactly what this run rendered.
    """
    scope = f"env={sorted(envs or [])};cluster={sorted(clusters or [])}"
    with render_lock(root):
        recover(root)  # a killed run's leftovers, whatever this run decides
        key = inputs_key(root, templates_dir(root), __version__, scope)
        if cache_hit(root, key):
            return RenderOutcome(TreeDiff(), 0, True, [])
        r = render_in_memory(root, envs, clusters, progress)
        if not r.diff.empty:
            keep = None
            if r.prefixes is not None:
                keep = {p: b for p, b in read_tree(root).items() if not p.startswith(r.prefixes)}
            write_tree(root, r.files, keep)
        save_written(root, r.files, r.prefixes)
        if tree_matches(root, r.files, r.prefixes):
            save_cache(root, key)
        if progress:
            progress("write", 4, 4)
    return RenderOutcome(r.diff, r.documents, False, r.warnings)


def check(root: Path, envs: list[str] | None = None, clusters: list[str] | None = None) -> Rendered:
    """`llmgen render --check`: render in memory only; the caller reports staleness."""
    return render_in_memory(root, envs, clusters)


def unified_diff(r: Rendered, context: int = 3) -> str:
    """A unified diff of the tree on disk against a fresh render."""
    chunks: list[str] = []
    for path in [*r.diff.added, *r.diff.changed, *r.diff.removed]:
        before = r.old.get(path, b"").decode(errors="replace").splitlines(keepends=True)
        after = r.files.get(path, b"").decode(errors="replace").splitlines(keepends=True)
        chunks.extend(
            difflib.unified_diff(
                before,
                after,
                fromfile=f"a/{path}" if path in r.old else "/dev/null",
                tofile=f"b/{path}" if path in r.files else "/dev/null",
                n=context,
            )
        )
    return "".join(chunks)
