"""What changed between two generated/ trees, as a cluster sees it.

Two views of the same difference: per resource (documents compared as
parsed data, so provenance comments and the grouping of documents into files
never count as changes), and per model (from the `llmgen.io/model` label every
model resource carries, so the summary does not depend on file layout).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import git
import yaml_rs

from llmgen.render.write import GENERATED


@dataclass(frozen=True, order=True)
class ResourceChange:
    cluster: str
    change: str  # added | changed | removed
    kind: str
    namespace: str
    name: str

    @property
    def ref(self) -> str:
        ns = self.namespace or "-"
        return f"{self.kind}/{ns}/{self.name}"


@dataclass(frozen=True)
class ClusterChange:
    """What one cluster's folder gains, changes and loses in the commit."""

    cluster: str
    models_added: tuple[str, ...] = ()
    models_changed: tuple[str, ...] = ()
    models_removed: tuple[str, ...] = ()
    resources: tuple[ResourceChange, ...] = ()

    def counts(self) -> tuple[int, int, int]:
        """(added, changed, removed) resources."""
        kinds = [r.change for r in self.resources]
        return kinds.count("added"), kinds.count("changed"), kinds.count("removed")


def _documents(files: Mapping[str, bytes], paths: Iterable[str]) -> dict[tuple[str, ...], Any]:
    """(cluster, kind, namespace, name) -> parsed document, for the files at `paths`."""
    out: dict[tuple[str, ...], Any] = {}
    for path in paths:
        parts = path.split("/")
        if len(parts) < 4 or parts[:2] != [GENERATED, "clusters"]:
            continue
        try:
            loaded: Any = yaml_rs.loads(files[path].decode())
        except Exception:  # a hand-broken file: nothing to compare it by
            continue
        for doc in loaded if isinstance(loaded, list) else [loaded]:
            if (
                not isinstance(doc, dict)
                or doc.get("apiVersion") == "kustomize.config.k8s.io/v1beta1"
            ):
                continue  # kustomization.yaml files are plumbing, not cluster resources
            meta = doc.get("metadata") or {}
            key = (
                parts[2],
                str(doc.get("kind", "?")),
                str(meta.get("namespace", "")),
                str(meta.get("name", "")),
            )
            out[key] = doc
    return out


def document_changes(old: Mapping[str, bytes], new: Mapping[str, bytes]) -> list[ResourceChange]:
    """Resources added, changed or removed between two trees, compared as data.

    Comparing parsed documents rather than file bytes keeps provenance comments
    (which change with any catalog input) and the grouping of documents into
    files from counting as changes to what the cluster runs.
    """
    touched = [p for p in sorted(old.keys() | new.keys()) if old.get(p) != new.get(p)]
    before = _documents(old, [p for p in touched if p in old])
    after = _documents(new, [p for p in touched if p in new])
    out = []
    for key in before.keys() | after.keys():
        if key not in before:
            change = "added"
        elif key not in after:
            change = "removed"
        elif before[key] != after[key]:
            change = "changed"
        else:
            continue
        out.append(ResourceChange(key[0], change, key[1], key[2], key[3]))
    return sorted(out)


# Every model resource carries this label (DESIGN: standard labels); reading it
# from the text keeps the summary independent of how files are laid out.
_MODEL_LABEL = re.compile(rb"^[ \t]*llmgen\.io/model:[ \t]*[\"']?([a-z0-9][a-z0-9.-]*)", re.M)


def cluster_of(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) >= 4 and parts[:2] == [GENERATED, "clusters"]:
        return parts[2]
    return None


def models_by_cluster(files: Mapping[str, bytes]) -> dict[str, set[str]]:
    """cluster -> models with a resource in `files` (root-relative paths)."""
    out: dict[str, set[str]] = {}
    for path, data in files.items():
        cluster = cluster_of(path)
        if cluster is not None:
            out.setdefault(cluster, set()).update(m.decode() for m in _MODEL_LABEL.findall(data))
    return out


def summarise(
    old: Mapping[str, bytes],
    new: Mapping[str, bytes],
    before: Mapping[str, set[str]],
    after: Mapping[str, set[str]],
) -> list[ClusterChange]:
    """Per cluster: models and resources added, changed and removed.

    `old` and `new` hold the changed files (root-relative paths under
    generated/); `before` and `after` name every model of each cluster in the
    whole old and new trees, which decides added versus changed.
    """
    touched: dict[str, set[str]] = {}
    for side in (old, new):
        for cluster, models in models_by_cluster(
            {p: b for p, b in side.items() if old.get(p) != new.get(p)}
        ).items():
            touched.setdefault(cluster, set()).update(models)
    resources: dict[str, list[ResourceChange]] = {}
    for change in document_changes(old, new):
        resources.setdefault(change.cluster, []).append(change)
    out = []
    for cluster in sorted(touched.keys() | resources.keys()):
        ms = touched.get(cluster, set())
        had, has = before.get(cluster, set()), after.get(cluster, set())
        out.append(
            ClusterChange(
                cluster,
                models_added=tuple(sorted(m for m in ms if m in has and m not in had)),
                models_changed=tuple(sorted(m for m in ms if m in has and m in had)),
                models_removed=tuple(sorted(m for m in ms if m in had and m not in has)),
                resources=tuple(resources.get(cluster, [])),
            )
        )
    return out


def models_at(repo: git.Repo, rev: str | None, pathspec: str, prefix: str) -> dict[str, set[str]]:
    """cluster -> models labelled anywhere in generated/ at `rev`, via one `git grep`.

    The whole old tree is never read: grep answers from git's object store.
    """
    if rev is None:
        return {}
    try:
        out = repo.git.grep(
            "-I",
            "--no-color",
            "-o",
            "-E",
            "-e",
            r"llmgen\.io/model:[ \t]*[\"']?[a-z0-9][a-z0-9.-]*",
            rev,
            "--",
            pathspec,
        )
    except git.GitCommandError as exc:
        if exc.status == 1:  # no match: no model in that tree
            return {}
        raise
    found: dict[str, set[str]] = {}
    for line in out.splitlines():
        _rev, path, match = line.split(":", 2)
        cluster = cluster_of(path[len(prefix) :])
        if cluster is not None:
            value = match.split(":", 1)[1].strip().strip("\"'")
            found.setdefault(cluster, set()).add(value)
    return found
