"""Lifecycle verbs done the GitOps way: each one is an edit of catalog/.

`deploy`, `undeploy`, `stop`, `start` and `new_model` change the user's
catalog files (through `edit.py`: only the changed lines move, the result is
validated before anything is written, writes are atomic) and return an
`Outcome` describing the change. Nothing here talks to a cluster: the change
reaches the clusters when it is rendered, committed and pulled by Flux
(`commit_outcome` does the first two in one step).

How stop works: `llmgen stop --env ENV` sets the Environment's
`spec.suspended: true` (with `--cluster`, it lists the cluster under
`spec.suspendedClusters`). The plan marks those placements suspended, and
their KEDA ScaledObjects are rendered with `autoscaling.keda.sh/paused-replicas:
"0"`: KEDA scales each Deployment to zero and holds it there, while Flux keeps
reconciling as usual (no Flux suspend, so nothing drifts and `start` is just
another commit). With no model pods left, GPU nodes empty and go away:
Karpenter consolidates empty nodes on EKS; GKE's cluster autoscaler shrinks
the node pools down to their `minNodes`.
"""

from __future__ import annotations

import difflib
import math
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from llmgen.catalog.load import Document, load_catalog
from llmgen.errors import CatalogError, Diagnostic, UsageError
from llmgen.lifecycle.commit import Committed, commit_outcome, describe_commit
from llmgen.lifecycle.edit import Applied, FileEdit, apply_edits, edit_file
from llmgen.lifecycle.scaffold.model import ModelSpec, model_file

__all__ = [
    "Committed",
    "ModelSpec",
    "Outcome",
    "commit_outcome",
    "deploy",
    "describe",
    "describe_commit",
    "new_model",
    "start",
    "stop",
    "undeploy",
]

STOP_EXPLAINED = (
    "Each model's KEDA ScaledObject is rendered with autoscaling.keda.sh/paused-replicas: "
    '"0": KEDA scales the Deployment to zero and holds it there while Flux keeps '
    "reconciling. GPU nodes then drain away: Karpenter consolidates empty nodes (EKS), "
    "the GKE cluster autoscaler scales node pools down to minNodes (GKE)."
)
# DNS-1035: the model name also names its Service, which must start with a letter.
_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
NOT_YET_LIVE = (
    "Nothing changes on the clusters until this is rendered and committed "
    "(pass --commit, or run 'llmgen render' and commit catalog/ and generated/)."
)


@dataclass
class Outcome:
    """What a lifecycle command changed in catalog/ (or would, on a dry run)."""

    action: str  # e.g. "deploy llama-3-1-8b-instruct to dev"
    summary: str
    applied: Applied
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.applied.changed

    @property
    def warnings(self) -> list[Diagnostic]:
        return self.applied.warnings

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.applied.edits if e.changed]

    def diff(self) -> str:
        """The catalog change as a unified diff."""
        return self.applied.diff()


# ------------------------------------------------------------------ lookups


def _documents(root: Path) -> list[Document]:
    docs, problems = load_catalog(root)
    if problems:
        raise CatalogError(problems)
    return docs


def _unknown(what: str, name: str, known: Sequence[str]) -> UsageError:
    hint = difflib.get_close_matches(name, list(known), n=1)
    if hint:
        return UsageError(f"no {what} named {name!r}; did you mean {hint[0]!r}?")
    listed = ", ".join(sorted(known)) or "none"
    return UsageError(f"no {what} named {name!r} (the catalog has: {listed})")


def _find(docs: Sequence[Document], kind: str, name: str) -> Document:
    found = [d for d in docs if d.kind == kind]
    for doc in found:
        if doc.name == name:
            return doc
    raise _unknown(kind.lower(), name, [d.name for d in found])


def _seq(items: Sequence[Any], flow: bool = True) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style() if flow else seq.fa.set_block_style()
    return seq


def _set_key(spec: CommentedMap, key: str, value: Any, after: Sequence[str]) -> None:
    """Set `key`, placing a new key after the first of `after` present (else first)."""
    if key in spec:
        spec[key] = value
        return
    keys = list(spec)
    pos = next((keys.index(k) + 1 for k in after if k in spec), 0)
    spec.insert(pos, key, value)


def _edit_env(
    root: Path, env: str, mutate: Callable[[CommentedMap], None], dry_run: bool
) -> tuple[Document, Applied]:
    doc = _find(_documents(root), "Environment", env)

    def on_spec(data: CommentedMap) -> None:
        mutate(data["spec"])

    return doc, apply_edits(root, [edit_file(root, doc.file, on_spec)], dry_run=dry_run)


# ------------------------------------------------------------------ deploy


def _scales_to_zero(doc: Document) -> bool:
    spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
    scaling = spec.get("scaling") if isinstance(spec, dict) else None
    return isinstance(scaling, dict) and scaling.get("scaleToZero") is True


def deploy(
    root: Path,
    model: str,
    env: str,
    *,
    clusters: Sequence[str] | None = None,
    all_clusters: bool = False,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    dry_run: bool = False,
) -> Outcome:
    """Add `model` to the environment's `models:` list, or update its entry.

    Only the overrides given change: `min_replicas`/`max_replicas` set
    `replicas.min/max`, `clusters` restricts the model to those clusters and
    `all_clusters` removes that restriction. The edited catalog must validate
    (CatalogError otherwise, nothing written).
    """
    docs = _documents(root)
    model_doc = _find(docs, "Model", model)
    if min_replicas == 0 and not _scales_to_zero(model_doc):
        # The plan would keep a replica per cluster anyway: refuse rather than
        # write a number that is silently not what runs.
        raise UsageError(
            f"{model} may not scale to zero (scaling.scaleToZero is false in {model_doc.file}), "
            f"so --min 0 would still keep one replica on each of its clusters in {env}; "
            "pass --min 1 or more, or set scaling.scaleToZero: true in the model"
        )
    if clusters is not None and all_clusters:
        raise UsageError("pass either --clusters or --all-clusters, not both")
    if clusters is not None and not clusters:
        raise UsageError("--clusters needs at least one cluster (or pass --all-clusters)")
    existed = False

    def mutate(spec: CommentedMap) -> None:
        nonlocal existed
        if spec.get("models") is None:
            spec["models"] = _seq([], flow=False)
        entries = spec["models"]
        entry = next((m for m in entries if m.get("name") == model), None)
        existed = entry is not None
        if entry is None:
            entry = CommentedMap(name=model)
            entries.append(entry)
        if min_replicas is not None or max_replicas is not None:
            if entry.get("replicas") is None:
                replicas = CommentedMap()
                replicas.fa.set_flow_style()
                _set_key(entry, "replicas", replicas, ["name"])
            if min_replicas is not None:
                entry["replicas"]["min"] = min_replicas
            if max_replicas is not None:
                entry["replicas"]["max"] = max_replicas
        if all_clusters:
            entry.pop("clusters", None)
        elif clusters is not None:
            current = entry.get("clusters")
            if isinstance(current, CommentedSeq):
                del current[:]
                current.extend(clusters)
            else:
                _set_key(entry, "clusters", _seq(list(clusters)), ["replicas", "name"])

    _, applied = _edit_env(root, env, mutate, dry_run)
    verb = "updated" if existed else "deployed"
    if not applied.changed:
        summary = f"{model} is already deployed to {env} as asked; nothing to change"
    else:
        summary = f"{verb} {model} in {env}" if existed else f"deployed {model} to {env}"
    notes = [NOT_YET_LIVE] if applied.changed else []
    return Outcome(f"deploy {model} to {env}", summary, applied, notes)


def undeploy(root: Path, model: str, env: str, *, dry_run: bool = False) -> Outcome:
    """Remove `model` from the environment's `models:` list.

    Flux prunes the model's resources once the render without it is
    committed. UsageError when the model is not deployed there.
    """
    docs = _documents(root)
    env_doc = _find(docs, "Environment", env)
    names = [m.get("name") for m in env_doc.data["spec"].get("models") or [] if isinstance(m, dict)]
    if model not in names:
        raise _unknown(f"model deployed to {env}", model, [str(n) for n in names])

    def mutate(spec: CommentedMap) -> None:
        entries = spec["models"]
        del entries[next(i for i, m in enumerate(entries) if m.get("name") == model)]

    _, applied = _edit_env(root, env, mutate, dry_run)
    notes = [
        "Flux prunes the model's Deployment, autoscaler, routes and secrets from "
        f"{env}'s clusters once the new render is committed.",
        NOT_YET_LIVE,
    ]
    return Outcome(f"undeploy {model} from {env}", f"removed {model} from {env}", applied, notes)


# ------------------------------------------------------------------ stop / start


def _suspension(
    spec: CommentedMap, env_clusters: Sequence[str], stop: bool, clusters: Sequence[str]
) -> None:
    """Set `suspended` / `suspendedClusters` so that exactly the asked clusters change."""
    suspended = bool(spec.get("suspended", False))
    listed = [str(c) for c in spec.get("suspendedClusters") or []]
    if stop and not clusters:
        suspended, listed = True, []
    elif stop:
        if not suspended:
            listed += [c for c in clusters if c not in listed]
    elif not clusters:
        suspended, listed = False, []
    elif suspended:
        # Starting some clusters of a stopped environment: the rest stay stopped.
        suspended, listed = False, [c for c in env_clusters if c not in clusters]
    else:
        listed = [c for c in listed if c not in clusters]

    if suspended:
        _set_key(spec, "suspended", True, ["requirePinned", "domain", "clusters"])
    else:
        # false is the default: dropping the key makes stop-then-start leave no trace.
        spec.pop("suspended", None)
    current = spec.get("suspendedClusters")
    if not listed:
        spec.pop("suspendedClusters", None)
    elif isinstance(current, CommentedSeq):
        if list(current) != listed:
            del current[:]
            current.extend(listed)
    else:
        after = ["suspended", "requirePinned", "domain", "clusters"]
        _set_key(spec, "suspendedClusters", _seq(listed), after)


def _pools_kept(docs: Sequence[Document], clusters: Sequence[str]) -> list[str]:
    """Node pools that keep nodes (and cost) while their models are stopped."""
    kept = []
    for doc in docs:
        if doc.kind != "Cluster" or doc.name not in clusters:
            continue
        for pool in doc.data["spec"].get("nodePools") or []:
            low = pool.get("minNodes", 0)
            if isinstance(low, int) and low > 0:
                kept.append(
                    f"{doc.name}/{pool.get('name')} keeps {low} node(s) running (minNodes: {low}); "
                    "lower minNodes to 0 to stop paying for them"
                )
    return kept


def _stop_start(
    root: Path, env: str, clusters: Sequence[str], stop: bool, dry_run: bool
) -> Outcome:
    docs = _documents(root)
    env_doc = _find(docs, "Environment", env)
    env_clusters = [str(c) for c in env_doc.data["spec"].get("clusters") or []]
    for c in clusters:
        if c not in env_clusters:
            raise _unknown(f"cluster in environment {env}", c, env_clusters)
    _, applied = _edit_env(
        root, env, lambda spec: _suspension(spec, env_clusters, stop, clusters), dry_run
    )
    scope = f"{env} ({', '.join(clusters)})" if clusters else env
    verb = "stop" if stop else "start"
    if not applied.changed:
        state = "stopped" if stop else "running"
        return Outcome(f"{verb} {scope}", f"{scope} is already {state}; nothing to change", applied)
    if stop:
        notes = [STOP_EXPLAINED, *_pools_kept(docs, clusters or env_clusters), NOT_YET_LIVE]
        summary = f"stopped {scope}: its models scale to zero and stay there"
    else:
        notes = [
            "KEDA resumes autoscaling from the models' minimum replicas; the first "
            "replicas wait for GPU nodes to be provisioned and weights to load.",
            NOT_YET_LIVE,
        ]
        summary = f"started {scope}: its models scale back up"
    return Outcome(f"{verb} {scope}", summary, applied, notes)


def stop(root: Path, env: str, clusters: Sequence[str] = (), *, dry_run: bool = False) -> Outcome:
    """Stop an environment (or some of its clusters): its models scale to zero.

    Records `spec.suspended: true`, or adds the clusters to
    `spec.suspendedClusters`; see the module docstring for what happens on
    the clusters and to their GPU nodes.
    """
    return _stop_start(root, env, clusters, True, dry_run)


def start(root: Path, env: str, clusters: Sequence[str] = (), *, dry_run: bool = False) -> Outcome:
    """Undo `stop`: without clusters the whole environment runs again.

    With clusters, exactly those start; if the whole environment was stopped,
    its other clusters stay stopped (listed under `spec.suspendedClusters`).
    """
    return _stop_start(root, env, clusters, False, dry_run)


# ------------------------------------------------------------------ model new


def new_model(
    root: Path, spec: ModelSpec, *, force: bool = False, dry_run: bool = False
) -> Outcome:
    """Write `catalog/models/<name>.yaml` from `spec` and the catalog's conventions.

    Refuses to overwrite an existing model unless `force`. Defaults the
    spec leaves open (image, weights buckets) are taken from the models the
    catalog already has; see `scaffold.model.model_file`.
    """
    if not _DNS_LABEL.fullmatch(spec.name):
        # The name becomes a file path and Kubernetes names; refuse it before either.
        raise UsageError(
            f"model name {spec.name!r} must be a DNS-1035 label: lower-case letters, digits "
            "and '-', starting with a letter, ending with a letter or digit, at most 63 "
            "characters (it names the model's Service)"
        )
    if spec.params_b is not None and not math.isfinite(spec.params_b):
        # typer parses "nan" and "inf" as floats; the catalog loader refuses them.
        raise UsageError(f"--params-b must be a finite number of billions, got {spec.params_b}")
    docs = _documents(root)
    rel = f"catalog/models/{spec.name}.yaml"
    existing = [d for d in docs if d.kind == "Model" and d.name == spec.name]
    if (existing or (root / rel).exists()) and not force:
        where = existing[0].file if existing else rel
        raise UsageError(
            f"model {spec.name!r} already exists ({where}); pass --force to replace it"
        )
    text = model_file(spec, docs)
    before = (root / rel).read_text(encoding="utf-8") if (root / rel).exists() else None
    applied = apply_edits(root, [FileEdit(rel, before, text)], dry_run=dry_run)
    notes = [
        f"Review the defaults in {rel}; then deploy it: llmgen deploy {spec.name} --env ENV.",
    ]
    if not spec.weights_sha256:
        notes.append(
            "Mirror the weights to the URIs in the file, then add weights.sha256 (the hash "
            "of the weights manifest) so that pods verify the bytes they load."
        )
    return Outcome(f"add model {spec.name}", f"wrote {rel}", applied, notes)


# ------------------------------------------------------------------ text


def describe(outcome: Outcome) -> str:
    """The catalog diff, then what it means and what happens next (for the CLI)."""
    parts = [outcome.diff().rstrip("\n")] if outcome.changed else []
    state = "" if outcome.applied.written or not outcome.changed else " (dry run: nothing written)"
    parts.append(outcome.summary + state)
    parts.extend(
        textwrap.fill(note, width=88, initial_indent="  - ", subsequent_indent="    ")
        for note in outcome.notes
    )
    parts.extend(str(w) for w in outcome.warnings)
    return "\n".join(p for p in parts if p)
