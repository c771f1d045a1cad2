"""`llmgen diff --base REF`: what a pull request changes, in catalog terms.

Both sides are planned and rendered by this llmgen: the working tree, and the
render inputs of REF (catalog/, templates/ and overlays/) read from git into
a temporary folder, never touching the working tree. Comparing two renders
by the same tool shows the effect of the pull request itself, not of
generator upgrades or of a stale generated/ on the base branch. Where REF's
catalog no longer validates or renders with this llmgen, the resource changes
fall back to REF's committed generated/ and the summary says so.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import git

from llmgen.catalog.model import Catalog
from llmgen.errors import CatalogError, LlmgenError, UsageError
from llmgen.gitops.changes import ResourceChange, document_changes
from llmgen.plan.build import Placement, Plan, build_plan
from llmgen.plan.mirror import MirrorItem, MirrorNeed, items_of, needs_mirroring
from llmgen.render.engine import render_plan
from llmgen.render.pipeline import checked_catalog
from llmgen.render.write import GENERATED
from llmgen.resources import templates_dir

#: the render inputs copied out of the base revision
INPUT_FOLDERS = ("catalog", "templates", "overlays")


@dataclass(frozen=True)
class Capacity:
    """GPUs and monthly USD at minimum and maximum replicas."""

    gpus_min: int = 0
    gpus_max: int = 0
    usd_min: float = 0.0
    usd_max: float = 0.0

    @classmethod
    def of(cls, placements: Iterable[Placement], idle_usd: float = 0.0) -> Capacity:
        """Replicas (canaries included) at min and max, plus `idle_usd`: nodes that
        pools keep (minNodes) and nothing uses, paid whatever runs."""
        ps = list(placements)
        return cls(
            sum(p.gpus_min for p in ps),
            sum(p.gpus_max for p in ps),
            round(sum(p.monthly_usd_min for p in ps) + idle_usd, 2),
            round(sum(p.monthly_usd_max for p in ps) + idle_usd, 2),
        )


@dataclass(frozen=True)
class ModelChange:
    """One model in one cluster of one environment that the pull request adds, drops or alters."""

    environment: str
    cluster: str
    model: str
    change: str  # added | removed | changed
    details: tuple[str, ...]


@dataclass(frozen=True)
class EnvironmentDelta:
    """An environment's models and capacity before and after (None: absent on that side)."""

    environment: str
    models_before: int | None
    models_after: int | None
    before: Capacity
    after: Capacity
    budget_before: float | None
    budget_after: float | None
    suspended: bool = False

    @property
    def changed(self) -> bool:
        return (
            self.models_before != self.models_after
            or self.before != self.after
            or self.budget_before != self.budget_after
        )


@dataclass
class PrSummary:
    """Everything `llmgen diff --base` reports; prsummaryview turns it into text."""

    base: str
    base_commit: str
    environments: list[EnvironmentDelta] = field(default_factory=list)
    models: list[ModelChange] = field(default_factory=list)
    resources: list[ResourceChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    catalog_compared: bool = True
    #: revisions the head reads from a cloud's mirror that the base did not
    weights: list[MirrorNeed] = field(default_factory=list)


# ------------------------------------------------------------ base revision


def open_repo(root: Path) -> git.Repo:
    """The git repository holding `root` (which may be a subfolder of it)."""
    try:
        return git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise UsageError(f"{root} is not inside a git repository") from None


def resolve(repo: git.Repo, ref: str) -> git.Commit:
    """The commit `ref` names, or a usage error saying it does not exist."""
    try:
        return repo.commit(ref)
    except (git.BadName, ValueError, git.GitCommandError):
        raise UsageError(f"--base {ref!r} is not a commit in {repo.working_tree_dir}") from None


def _subtree(commit: git.Commit, path: str) -> git.Tree | None:
    try:
        obj = commit.tree / path if path else commit.tree
    except KeyError:
        return None
    return obj if isinstance(obj, git.Tree) else None


def _blobs(tree: git.Tree) -> Iterable[tuple[str, bytes]]:
    """(path relative to `tree`, bytes) of every regular file, symlinks skipped."""
    base = PurePosixPath(tree.path)
    for item in tree.traverse():
        if isinstance(item, git.Blob) and item.mode != 0o120000:
            yield PurePosixPath(item.path).relative_to(base).as_posix(), item.data_stream.read()


def extract_inputs(commit: git.Commit, prefix: str, dest: Path) -> list[str]:
    """Write the render inputs of `commit` under `dest`; return the folders found."""
    found = []
    for folder in INPUT_FOLDERS:
        tree = _subtree(commit, f"{prefix}{folder}")
        if tree is None:
            continue
        found.append(folder)
        for rel, data in _blobs(tree):
            target = dest / folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return found


def committed_generated(commit: git.Commit, prefix: str) -> dict[str, bytes]:
    """generated/ as committed at `commit`, keyed like a render (generated/...)."""
    tree = _subtree(commit, f"{prefix}{GENERATED}")
    if tree is None:
        return {}
    return {f"{GENERATED}/{rel}": data for rel, data in _blobs(tree)}


# ------------------------------------------------------------ comparison


def _side(root: Path) -> tuple[Catalog, Plan, dict[str, bytes]]:
    catalog, _warnings = checked_catalog(root)
    plan = build_plan(catalog)
    return catalog, plan, render_plan(plan, templates_dir(root), root).files


def _short(value: str) -> str:
    return value[:12] if len(value) == 40 and all(c in "0123456789abcdef" for c in value) else value


def placement_details(old: Placement, new: Placement) -> tuple[str, ...]:
    """What changed for one placement, in the words a reviewer uses."""
    out = []
    if (old.min_replicas, old.max_replicas) != (new.min_replicas, new.max_replicas):
        was, now = (old.min_replicas, old.max_replicas), (new.min_replicas, new.max_replicas)
        out.append(f"replicas {was[0]}–{was[1]} → {now[0]}–{now[1]}")
    a, b = old.model, new.model
    if a.revision != b.revision:
        out.append(f"revision {_short(a.revision)} → {_short(b.revision)}")
    if a.image != b.image:
        out.append(f"image {a.image} → {b.image}")
    if (a.gpu, a.gpu_count) != (b.gpu, b.gpu_count):
        out.append(f"GPU {a.gpu_count}× {a.gpu} → {b.gpu_count}× {b.gpu}")
    if old.pool.name != new.pool.name:
        out.append(f"node pool {old.pool.name} → {new.pool.name}")
    ca, cb = old.deployment.canary, new.deployment.canary
    if (ca and (ca.revision, ca.image, ca.weight)) != (cb and (cb.revision, cb.image, cb.weight)):
        out.append(f"canary {_canary(ca)} → {_canary(cb)}")
    if old.suspended != new.suspended:
        out.append("stopped" if new.suspended else "started")
    if round(old.replica_hourly_usd, 4) != round(new.replica_hourly_usd, 4):
        out.append(
            f"${old.replica_hourly_usd:,.2f} → ${new.replica_hourly_usd:,.2f} per replica-hour"
        )
    if not out and a.where.doc.data.get("spec") != b.where.doc.data.get("spec"):
        out.append("model spec")
    return tuple(out)


def _canary(c: object) -> str:
    weight = getattr(c, "weight", None)
    return f"{weight}%" if weight is not None else "none"


def describe(p: Placement) -> tuple[str, ...]:
    """A new or removed placement in one line's worth of facts."""
    return (
        f"{p.min_replicas}–{p.max_replicas} replicas",
        f"{p.model.gpu_count}× {p.gpu.key} on pool {p.pool.name}",
        f"revision {_short(p.model.revision)}",
    )


def _placements(plan: Plan | None) -> dict[tuple[str, str, str], Placement]:
    if plan is None:
        return {}
    return {
        (p.environment.name, p.cluster.name, p.model.name): p
        for ep in plan.environments.values()
        for p in ep.placements
    }


def model_changes(before: Plan | None, after: Plan) -> list[ModelChange]:
    """Models added, removed and changed per environment and cluster."""
    old, new = _placements(before), _placements(after)
    out = []
    for key in sorted(old.keys() | new.keys()):
        env, cluster, model = key
        if key not in old:
            out.append(ModelChange(env, cluster, model, "added", describe(new[key])))
        elif key not in new:
            out.append(ModelChange(env, cluster, model, "removed", describe(old[key])))
        else:
            details = placement_details(old[key], new[key])
            if details:
                out.append(ModelChange(env, cluster, model, "changed", details))
    return out


def environment_deltas(before: Plan | None, after: Plan) -> list[EnvironmentDelta]:
    old = before.environments if before else {}
    new = after.environments
    out = []
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name), new.get(name)
        out.append(
            EnvironmentDelta(
                name,
                len({p.model.name for p in a.placements}) if a else None,
                len({p.model.name for p in b.placements}) if b else None,
                Capacity.of(a.placements, a.idle_monthly_usd) if a else Capacity(),
                Capacity.of(b.placements, b.idle_monthly_usd) if b else Capacity(),
                a.environment.monthly_budget_usd if a else None,
                b.environment.monthly_budget_usd if b else None,
                suspended=bool(b and b.environment.suspended),
            )
        )
    return out


def _selected(
    plans: list[Plan], envs: list[str] | None, clusters: list[str] | None
) -> set[str] | None:
    if not envs and not clusters:
        return None
    known_envs = {e for p in plans for e in p.environments}
    known_clusters = {c for p in plans for c in p.clusters}
    chosen: set[str] = set()
    for env in envs or []:
        if env not in known_envs:
            raise UsageError(f"no environment named {env!r} on either side")
        chosen.update(c.name for p in plans for c in p.clusters.values() if c.env_name == env)
    for name in clusters or []:
        if name not in known_clusters:
            raise UsageError(f"no cluster named {name!r} on either side")
        chosen.add(name)
    return chosen


def pr_summary(
    root: Path, base: str, envs: list[str] | None = None, clusters: list[str] | None = None
) -> PrSummary:
    """Compare the working tree's catalog with the one at `base`.

    Raises CatalogError when the working tree's catalog is invalid (the pull
    request itself is wrong); a base that no longer validates is only noted.
    """
    repo = open_repo(root)
    top = Path(str(repo.working_tree_dir)).resolve()
    rel = root.resolve().relative_to(top).as_posix()
    prefix = "" if rel == "." else rel + "/"
    commit = resolve(repo, base)
    summary = PrSummary(base, commit.hexsha)

    _catalog, after, new_files = _side(root)
    before: Plan | None = None
    old_files: dict[str, bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="llmgen-base-") as tmp:
        work = Path(tmp)
        extract_inputs(commit, prefix, work)
        if (root / "schemas").is_dir():
            # One schema for both sides: the base is read by this llmgen's typed catalog.
            shutil.copytree(root / "schemas", work / "schemas")
        if not (work / "catalog").is_dir():
            summary.notes.append(f"{base} has no catalog/; every model counts as added")
            old_files = {}
        else:
            try:
                _c, before, old_files = _side(work)
            except CatalogError as exc:
                summary.catalog_compared = False
                summary.notes.append(
                    f"the catalog at {base} does not validate with this llmgen "
                    f"({len(exc.diagnostics)} problem(s)); catalog changes are not compared"
                )
            except LlmgenError as exc:
                summary.notes.append(f"the catalog at {base} does not render: {exc}")
    if old_files is None:
        old_files = committed_generated(commit, prefix)
        summary.notes.append(f"resource changes are against generated/ as committed at {base}")

    chosen = _selected([p for p in (before, after) if p is not None], envs, clusters)
    if summary.catalog_compared:
        summary.models = [
            m for m in model_changes(before, after) if chosen is None or m.cluster in chosen
        ]
        env_names = None if not envs else set(envs)
        summary.environments = [
            e
            for e in environment_deltas(before, after)
            if (env_names is None or e.environment in env_names)
            and (chosen is None or envs or touches(e.environment, summary.models))
        ]
    summary.resources = [
        r for r in document_changes(old_files, new_files) if chosen is None or r.cluster in chosen
    ]
    if summary.catalog_compared:
        summary.weights = needs_mirroring(_mirror_items(before), _mirror_items(after))
    return summary


def _mirror_items(plan: Plan | None) -> list[MirrorItem]:
    if plan is None:
        return []
    return items_of(p for ep in plan.environments.values() for p in ep.placements)


def touches(env: str, models: list[ModelChange]) -> bool:
    return any(m.environment == env for m in models)


@contextlib.contextmanager
def base_inputs(root: Path, base: str) -> Iterator[Path]:
    """A temporary repository root holding the render inputs of `base`.

    The same inputs `pr_summary` compares against (catalog/, templates/,
    overlays/ at `base`, this llmgen's schemas/), for other comparisons such
    as `diff --base --simulate`. Raises UsageError when `base` has no catalog.
    """
    repo = open_repo(root)
    top = Path(str(repo.working_tree_dir)).resolve()
    rel = root.resolve().relative_to(top).as_posix()
    prefix = "" if rel == "." else rel + "/"
    commit = resolve(repo, base)
    with tempfile.TemporaryDirectory(prefix="llmgen-base-") as tmp:
        work = Path(tmp)
        extract_inputs(commit, prefix, work)
        if (root / "schemas").is_dir():
            shutil.copytree(root / "schemas", work / "schemas")
        if not (work / "catalog").is_dir():
            raise UsageError(f"{base} has no catalog/ to simulate")
        yield work
