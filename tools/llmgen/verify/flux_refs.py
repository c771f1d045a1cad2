"""Flux references must resolve inside the cluster folder that holds them.

Flux on cluster `c` applies `generated/clusters/c/` and nothing else, so a
Kustomization's `dependsOn` and `sourceRef`, and a HelmRelease's chart source,
must name objects rendered in that same folder; a name that only exists in
another cluster's folder is as missing as a typo. The one exception is the
`flux-system` GitRepository, which `flux bootstrap` creates on every cluster.
A Kustomization's `spec.path` is read relative to the repository root (the
GitRepository sources llmgen renders point at this repository).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from llmgen.errors import Diagnostic
from llmgen.verify import charts
from llmgen.verify.kustomize import has_kustomization
from llmgen.verify.manifests import Manifest
from llmgen.verify.schemas import split_api_version

KUSTOMIZE_TOOLKIT = "kustomize.toolkit.fluxcd.io"
HELM_TOOLKIT = "helm.toolkit.fluxcd.io"
SOURCE_TOOLKIT = "source.toolkit.fluxcd.io"
_FLUX_GROUPS = {KUSTOMIZE_TOOLKIT, HELM_TOOLKIT, SOURCE_TOOLKIT}
BOOTSTRAP_SOURCE = ("GitRepository", "flux-system", "flux-system")
_KUSTOMIZATION_SOURCES = {"GitRepository", "OCIRepository", "Bucket"}
_CHART_SOURCES = {"HelmRepository", "GitRepository", "Bucket"}
_CHART_REFS = {"OCIRepository", "HelmChart"}

Key = tuple[str, str, str]  # (kind, namespace, name)


def cluster_folder(file: str) -> str:
    """`generated/clusters/c/models/x.yaml` -> `generated/clusters/c`."""
    parts = file.split("/")
    if len(parts) > 3 and parts[:2] == ["generated", "clusters"]:
        return "/".join(parts[:3])
    return parts[0]


class _Folder:
    """The Flux objects of one cluster folder, by (kind, namespace, name)."""

    def __init__(self, name: str, namespaces: Mapping[str, str]) -> None:
        self.name = name
        self.namespaces = namespaces
        self.objects: dict[Key, Manifest] = {}

    def namespace_of(self, m: Manifest) -> str:
        # A kustomization's `namespace:` overrides the object's own, as
        # kustomize does; only the folder's own kustomization is consulted.
        return self.namespaces.get(m.file.rsplit("/", 1)[0]) or m.namespace or "default"

    def has(self, key: Key) -> bool:
        return key in self.objects


def check_flux_refs(
    root: Path, manifests: Iterable[Manifest], folder_namespaces: Mapping[str, str]
) -> list[Diagnostic]:
    """Every unresolved Flux reference, as a diagnostic located at the reference.

    `folder_namespaces` maps a folder (repo-relative) to the `namespace:` its
    kustomization.yaml sets, if any.
    """
    folders: dict[str, _Folder] = {}
    flux: list[tuple[_Folder, Manifest]] = []
    for m in manifests:
        group, _ = split_api_version(m.api_version)
        if group not in _FLUX_GROUPS or not m.name:
            continue
        name = cluster_folder(m.file)
        folder = folders.setdefault(name, _Folder(name, folder_namespaces))
        folder.objects[(m.kind, folder.namespace_of(m), m.name)] = m
        flux.append((folder, m))
    out: list[Diagnostic] = []
    for folder, m in flux:
        spec = m.data.get("spec")
        if not isinstance(spec, dict):
            continue
        group, _ = split_api_version(m.api_version)
        if group == KUSTOMIZE_TOOLKIT and m.kind == "Kustomization":
            out += _kustomization(root, folder, m, spec)
        elif group == HELM_TOOLKIT and m.kind == "HelmRelease":
            out += _helm_release(folder, m, spec)
    for folder in folders.values():
        out += _cycles(folder)
    return out


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _ref(
    folder: _Folder,
    m: Manifest,
    ref: dict[str, Any],
    kinds: set[str],
    path: tuple[str | int, ...],
    default_kind: str | None = None,
) -> Diagnostic | None:
    kind = ref.get("kind", default_kind)
    name = ref.get("name")
    if kind not in kinds or not isinstance(name, str):
        return None  # the schema check reports malformed references
    namespace = ref.get("namespace") or folder.namespace_of(m)
    key = (kind, namespace, name)
    if folder.has(key) or key == BOOTSTRAP_SOURCE:
        return None
    return m.diagnostic((*path, "name"), f'no {kind} "{namespace}/{name}" in {folder.name}')


def _kustomization(
    root: Path, folder: _Folder, m: Manifest, spec: dict[str, Any]
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    depends = spec.get("dependsOn")
    for index, dep in enumerate(depends if isinstance(depends, list) else []):
        problem = _ref(
            folder, m, _dict(dep), {"Kustomization"}, ("spec", "dependsOn", index), "Kustomization"
        )
        if problem:
            out.append(problem)
    source = _dict(spec.get("sourceRef"))
    problem = _ref(folder, m, source, _KUSTOMIZATION_SOURCES, ("spec", "sourceRef"))
    if problem:
        out.append(problem)
    if source.get("kind") == "GitRepository":
        path = spec.get("path", "./")
        ns = str(source.get("namespace") or folder.namespace_of(m))
        repo = folder.objects.get(("GitRepository", ns, str(source.get("name"))))
        key = charts.git_source_key(_dict(repo.data.get("spec")), str(path)) if repo else None
        if key is not None and key[0] in {k[0] for k in charts.GIT_CRD_SOURCES}:
            # An upstream repository (CRDs): only folders read at its tag count.
            if key not in charts.GIT_CRD_SOURCES:
                out.append(
                    m.diagnostic(
                        ("spec", "path"),
                        f'"{path}" of {key[0]} at {key[1] or "its default branch"} is not a '
                        "folder llmgen has read (verify/charts.py GIT_CRD_SOURCES)",
                    )
                )
            return out
        message = _path_problem(root, path) if isinstance(path, str) else None
        if message:
            out.append(m.diagnostic(("spec", "path"), message))
    return out


def _path_problem(root: Path, path: str) -> str | None:
    shown = f'"{path}"'
    target = Path(os.path.normpath(root / path.lstrip("/")))
    if not target.is_relative_to(root):
        return f"{shown} points outside the repository"
    if target.is_file():
        return f"{shown} is a file; Flux needs a folder"
    if not target.is_dir():
        return f"{shown} does not exist in the repository"
    if not has_kustomization(target):
        return f"{shown} has no kustomization.yaml"
    return None


def _helm_release(folder: _Folder, m: Manifest, spec: dict[str, Any]) -> list[Diagnostic]:
    candidates = [
        _ref(
            folder,
            m,
            _dict(_dict(_dict(spec.get("chart")).get("spec")).get("sourceRef")),
            _CHART_SOURCES,
            ("spec", "chart", "spec", "sourceRef"),
        ),
        _ref(folder, m, _dict(spec.get("chartRef")), _CHART_REFS, ("spec", "chartRef")),
    ]
    depends = spec.get("dependsOn")
    for index, dep in enumerate(depends if isinstance(depends, list) else []):
        candidates.append(
            _ref(
                folder, m, _dict(dep), {"HelmRelease"}, ("spec", "dependsOn", index), "HelmRelease"
            )
        )
    return [c for c in candidates if c]


def _cycles(folder: _Folder) -> list[Diagnostic]:
    """A dependsOn cycle among Kustomizations would stall every one of them."""
    edges: dict[Key, list[Key]] = {}
    for key, m in folder.objects.items():
        if key[0] != "Kustomization":
            continue
        depends = _dict(m.data.get("spec")).get("dependsOn")
        targets = []
        for dep in depends if isinstance(depends, list) else []:
            dep = _dict(dep)
            if isinstance(dep.get("name"), str):
                ns = dep.get("namespace") or key[1]
                target = ("Kustomization", ns, dep["name"])
                if target in folder.objects:
                    targets.append(target)
        edges[key] = targets
    seen: set[frozenset[Key]] = set()
    out: list[Diagnostic] = []
    done: set[Key] = set()

    def visit(node: Key, stack: list[Key]) -> None:
        if node in stack:
            cycle = stack[stack.index(node) :]
            if frozenset(cycle) not in seen:
                seen.add(frozenset(cycle))
                start = min(cycle)
                ordered = cycle[cycle.index(start) :] + cycle[: cycle.index(start)] + [start]
                names = " -> ".join(f"{k[1]}/{k[2]}" for k in ordered)
                where = folder.objects[start]
                out.append(where.diagnostic(("spec", "dependsOn"), f"dependsOn cycle: {names}"))
            return
        if node in done:
            return
        stack.append(node)
        for target in edges.get(node, []):
            visit(target, stack)
        stack.pop()
        done.add(node)

    for node in sorted(edges):
        visit(node, [])
    return out
