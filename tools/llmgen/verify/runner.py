"""Verify the rendered tree with the checks a cluster would apply, before it does.

`verify_tree` checks everything under `<root>/generated/`:

- every document on its own (`document`): strict schema, CRD validation
  rules (CEL), the API server's own validation, names and labels, PromQL;
- every `kustomization.yaml` structurally, then every folder holding one
  through a real `kubectl kustomize` (`kustomize`), in parallel; the build
  of each folder Flux applies is kept, and objects an overlay changed are
  checked again as Flux will apply them (`built`);
- Flux references resolve within each cluster's folder (`flux_refs`);
- wiring across resources and Flux layers, on what Flux applies (`wiring`,
  `refs`): selectors and ports, KEDA targets, mesh routes and principals,
  Secrets and custom kinds present before they are needed, egress, deadlines;
- no credential-looking value anywhere in the tree (the catalog's guard).

The tree is read one cluster folder at a time: its documents are checked, its
builds taken, its wiring checked, then all of it is let go; only the Flux
objects and a compact view of each cluster for the mesh checks (which need
every peer) stay until the end, so peak memory is about one cluster's.

Nothing prints: the result is a `VerifyReport` of located diagnostics and
counters of the checks run, skipped, failed and not evaluable per family.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmgen.catalog import guard
from llmgen.errors import Diagnostic, SourceLocation
from llmgen.verify.built import flux_paths, map_built, overlays
from llmgen.verify.cluster import ClusterFacts
from llmgen.verify.document import DocumentChecks, check_document
from llmgen.verify.facts import catalog_facts
from llmgen.verify.flux_refs import check_flux_refs, cluster_folder
from llmgen.verify.kustomize import (
    KUSTOMIZE_FILES,
    KustomizeBuilds,
    check_kustomization,
    find_kubectl,
)
from llmgen.verify.manifests import Manifest, ParseProblem, split_documents
from llmgen.verify.schemas import (
    DEFAULT_KUBERNETES_VERSION,
    CrdSchemas,
    SchemaStore,
    split_api_version,
)
from llmgen.verify.stats import CheckStats
from llmgen.verify.wiring import WiringChecks

__all__ = [
    "ClusterFacts",
    "catalog_facts",
    "SchemaStore",
    "VerifyReport",
    "check_document",
    "verify_documents",
    "verify_tree",
]

_FLUX_SUFFIX = ".toolkit.fluxcd.io"


@dataclass
class VerifyReport:
    """What `verify_tree` checked and everything it found (errors and warnings)."""

    documents: int = 0
    folders: int = 0  # folders holding a kustomization.yaml
    diagnostics: list[Diagnostic] = field(default_factory=list)
    kubernetes_schemas: str = ""  # the kubernetes-validate version used, e.g. "1.33"
    stats: CheckStats = field(default_factory=CheckStats)

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


def verify_tree(
    root: Path,
    crd_schemas: CrdSchemas,
    *,
    kubernetes_version: str | None = None,
    kustomize: bool = True,
    jobs: int | None = None,
    clusters: Mapping[str, ClusterFacts] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> VerifyReport:
    """Verify `root / "generated"`; diagnostics are located relative to `root`.

    `crd_schemas` is the folder of custom resources' schemas, or several: a
    kind's schema comes from the first folder that has it.

    `clusters` holds what the catalog says of each cluster, by name (its
    Kubernetes version, cloud, prerequisites); read from the catalog when not
    given. `progress(stage, done, total)`, when given, hears how far the
    document checks and the kustomize builds are (the CLI draws a bar on a
    terminal). Raises `ToolMissingError` when kubectl (with `kustomize=True`)
    or the kubernetes-validate schemas cannot be found.
    """
    root = root.resolve()
    if clusters is None:
        clusters = catalog_facts(root)
    # Each cluster's folder is checked against the schemas of its catalog
    # `kubernetesVersion`; `kubernetes_version` overrides them all.
    store = SchemaStore(crd_schemas, kubernetes_version or DEFAULT_KUBERNETES_VERSION)
    kubectl = find_kubectl() if kustomize else None
    report = VerifyReport(kubernetes_schemas=store.version)
    checks = DocumentChecks.for_store(store)
    checks.stats = report.stats
    facts = {f"generated/clusters/{name}": f for name, f in clusters.items()}
    if kubernetes_version is None:
        checks.versions = {folder: f.kubernetes_version for folder, f in facts.items()}
    tree = root / "generated"
    if not tree.is_dir():
        report.diagnostics.append(
            Diagnostic(SourceLocation("generated"), "", "no generated/ folder; run `llmgen render`")
        )
        return report
    files = _yaml_files(tree, root)
    contents: dict[str, bytes] = {}
    configs = [f for f in files if f.rsplit("/", 1)[-1] in KUSTOMIZE_FILES]
    others = [f for f in files if f.rsplit("/", 1)[-1] not in KUSTOMIZE_FILES]

    to_build: list[Manifest] = []
    broken: set[str] = set()
    namespaces: dict[str, str] = {}
    folder_configs: dict[str, Manifest] = {}
    for rel in configs:
        before = len(report.diagnostics)
        found = _read(root, rel, report, contents)
        # An empty file still gets built: kustomize says what it thinks of it.
        first = found[0] if found else Manifest(rel, 1, {})
        folder_configs[rel.rsplit("/", 1)[0]] = first
        report.diagnostics += check_kustomization(first, root)
        report.folders += 1
        if isinstance(first.data, dict) and isinstance(first.data.get("namespace"), str):
            namespaces[rel.rsplit("/", 1)[0]] = first.data["namespace"]
        if len(report.diagnostics) > before:
            broken.add(str(root / rel.rsplit("/", 1)[0]))
        else:
            to_build.append(first)

    # The Flux objects of each cluster folder first: they say which folders
    # Flux applies, whose builds are kept. The (slow, parallel) builds then
    # run while this thread checks every other document.
    top = [f for f in others if f.count("/") == 3]
    top_docs: list[Manifest] = []
    for rel in top:
        top_docs += _read(root, rel, report, contents)
    flux = [m for m in top_docs if _is_flux(m)]
    paths = flux_paths(flux)
    builds = (
        KustomizeBuilds(kubectl, root, to_build, jobs, keep=paths.__contains__) if kubectl else None
    )
    wiring = WiringChecks(report.stats["wiring"], facts, namespaces)
    scanned: set[str] = set()
    try:
        _scan(report, contents, scanned)
        # One cluster folder at a time: read, check, take its builds, check its
        # wiring, then let its documents go (peak memory is one cluster's, plus
        # the compact views the mesh checks keep of each).
        groups = _groups(top_docs, others, paths, folder_configs)
        done = len(top)
        if progress:
            progress("schemas", done, len(others))
        for name in list(groups):
            docs, rels = groups.pop(name)  # nothing else holds the group's documents
            for rel in rels:
                docs += _read(root, rel, report, contents)
            for m in docs:
                report.diagnostics += check_document(m, store, checks)
                if m.file.count("/") != 3 and _is_flux(m):
                    flux.append(m)
            # No value that looks like a credential may sit in the tree, however
            # it got there (a hand edit, a template, an overlay-less patch).
            _scan(report, contents, scanned)
            done += len(rels)
            if progress:
                progress("schemas", done, len(others))
            mine = {p for p in paths if name in ("", cluster_folder(p + "/kustomization.yaml"))}
            outputs = builds.take(sorted(mine)) if builds else {}
            applied = _applied(
                docs, outputs, mine, namespaces, folder_configs, store, checks, report
            )
            report.diagnostics += wiring.add(applied, name or None)
            del docs, applied, outputs
        _count(report, "flux", len(flux), check_flux_refs(root, flux, namespaces))
        _scan(report, _other_files(root, tree, scanned), scanned)
        if builds:
            if progress:
                builds.wait(progress)
            _count(report, "kustomize", len(to_build), builds.results(broken))
        else:
            report.stats["kustomize"].skipped += len(to_build)
    finally:
        if builds:
            builds.close()
    report.diagnostics += wiring.finish()
    report.diagnostics = sorted({_traced(root, d, facts) for d in report.diagnostics})
    used = {store.version} | {s.version for s in checks.stores.values()}
    report.kubernetes_schemas = ", ".join(sorted(used, key=lambda v: tuple(map(int, v.split(".")))))
    return report


def _traced(root: Path, d: Diagnostic, facts: Mapping[str, ClusterFacts]) -> Diagnostic:
    """`d`, naming the catalog file its generated file comes from where that is one file:
    a model's file from `catalog/models/<model>.yaml`, a node pool's from its cluster's."""
    parts = d.location.file.split("/")
    if len(parts) < 5 or parts[:2] != ["generated", "clusters"]:
        return d
    source = ""
    if parts[3] == "models":
        source = f"catalog/models/{parts[4].removesuffix('.yaml')}.yaml"
    elif parts[-1].startswith("nodepool-"):
        source = facts.get("/".join(parts[:3]), ClusterFacts()).catalog_file
    if not source or not (root / source).is_file():
        return d
    return Diagnostic(d.location, d.path, f"{d.message} (from {source})", d.severity)


def _count(report: VerifyReport, family: str, run: int, found: list[Diagnostic]) -> None:
    """Add a family's findings to the report, counting its checks."""
    report.diagnostics += found
    report.stats[family].run += run
    report.stats[family].failed += sum(1 for d in found if d.is_error)


def _applied(
    docs: list[Manifest],
    outputs: Mapping[str, str],
    paths: set[str],
    namespaces: Mapping[str, str],
    folder_configs: Mapping[str, Manifest],
    store: SchemaStore,
    checks: DocumentChecks,
    report: VerifyReport,
) -> list[Manifest]:
    """The objects Flux applies: each built Flux path in place of its files.

    An object an overlay changed is checked again as built; only the problems
    its generated document does not already have are reported.
    """
    built = {p: outputs[p] for p in paths if p in outputs}
    if not built:
        return docs
    out: list[Manifest] = []
    sources: dict[str, dict[tuple[str, str, str], Manifest]] = {p: {} for p in built}
    for m in docs:
        # the innermost: a Flux path may hold others' folders (`weights/<model>`)
        folder = max((p for p in built if m.file.startswith(p + "/")), key=len, default=None)
        if folder is None:
            out.append(m)
            continue
        ns = namespaces.get(m.file.rsplit("/", 1)[0]) or m.namespace
        sources[folder][(m.kind, ns, m.name)] = m
        sources[folder].setdefault((m.kind, "", m.name), m)
    scratch = DocumentChecks(checks.cel, CheckStats(), checks.versions, checks.default_version)
    for folder, text in sorted(built.items()):
        changed_by = overlays(folder, folder_configs.get(folder))
        for b in map_built(folder, text, sources[folder], changed_by):
            out.append(b.manifest)
            if not b.changed_by:
                continue
            source = sources[folder].get((b.manifest.kind, b.manifest.namespace, b.manifest.name))
            suffix = f" (as built with {b.changed_by})"
            known = (
                {
                    (d.location, d.path, d.message + suffix)
                    for d in check_document(source, store, scratch)
                }
                if source is not None
                else set()
            )
            report.diagnostics += [
                d
                for d in check_document(b.manifest, store, checks)
                if (d.location, d.path, d.message) not in known
            ]
    return out


def _yaml_files(tree: Path, root: Path) -> list[str]:
    """Repo-relative paths (forward slashes) of every YAML file under `tree`, sorted.

    os.walk and plain strings: pathlib's per-path parsing cost more than
    validating the documents on a tree of thousands of files.
    """
    skip = len(str(root)) + 1
    found: list[str] = []
    for dirpath, _, filenames in os.walk(tree):
        base = dirpath[skip:].replace(os.sep, "/")
        for name in filenames:
            if name.endswith((".yaml", ".yml")) or name in KUSTOMIZE_FILES:
                found.append(f"{base}/{name}")
    return sorted(found)


def _read(root: Path, rel: str, report: VerifyReport, contents: dict[str, bytes]) -> list[Manifest]:
    """The documents of one file; unreadable files and bad YAML become diagnostics.

    The bytes are kept in `contents` so the credential guard scans what was
    read instead of reading the tree a second time.
    """
    try:
        raw = (root / rel).read_bytes()
        contents[rel] = raw
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        report.diagnostics.append(Diagnostic(SourceLocation(rel), "", f"cannot read: {exc}"))
        return []
    docs: list[Manifest] = []
    for item in split_documents(text, rel):
        if isinstance(item, ParseProblem):
            report.diagnostics.append(item.diagnostic())
        else:
            docs.append(item)
    report.documents += len(docs)
    return docs


def _other_files(root: Path, tree: Path, read: set[str]) -> dict[str, bytes]:
    """Every file under `tree` that verify did not read (not YAML), for the guard."""
    out: dict[str, bytes] = {}
    for path in tree.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if rel not in read and path.is_file():
            out[rel] = path.read_bytes()
    return out


def _scan(report: VerifyReport, contents: dict[str, bytes], scanned: set[str]) -> None:
    """Run the credential guard on the files read since the last scan, then drop their bytes."""
    _count(report, "guard", len(contents), guard.scan(contents))
    scanned.update(contents)
    contents.clear()


def _is_flux(m: Manifest) -> bool:
    return split_api_version(m.api_version)[0].endswith(_FLUX_SUFFIX)


def _groups(
    top_docs: list[Manifest],
    others: list[str],
    paths: set[str],
    folder_configs: Mapping[str, Manifest],
) -> dict[str, tuple[list[Manifest], list[str]]]:
    """Cluster folder -> (its top-level documents, its other files), in file order.

    One group, "", for the whole tree when a Flux path spans cluster folders
    (`generated`, `generated/clusters`) or an overlay lies inside generated/:
    a cluster's applied objects could then come from another's files.
    """
    spanning = {"generated", "generated/clusters"} & paths or any(
        part.startswith("generated/")
        for folder, config in folder_configs.items()
        for part in overlays(folder, config).split(", ")
    )
    key = (lambda _file: "") if spanning else cluster_folder
    out: dict[str, tuple[list[Manifest], list[str]]] = {}
    for rel in others:
        if rel.count("/") != 3:
            out.setdefault(key(rel), ([], []))[1].append(rel)
    for m in top_docs:
        out.setdefault(key(m.file), ([], []))[0].append(m)
    for p in sorted(paths):
        if p.startswith("generated/"):
            out.setdefault(key(p + "/kustomization.yaml"), ([], []))
    return out


def verify_documents(
    docs: Iterable[Manifest | tuple[str, int, Any]],
    schemas: SchemaStore | CrdSchemas = None,
    *,
    kubernetes_version: str = "1.33",
) -> list[Diagnostic]:
    """Per-document checks (schema, CRD rules, API server rules, names, labels,
    PromQL) on in-memory documents.

    Each document is a `Manifest` or `(file, line, data)`; the latter are
    located at `line`, since there is no source text to find nodes in.
    `schemas` is a `SchemaStore` to reuse (its compiled validators are the
    expensive part), or the CRD schema folder(s) to build one from. Kustomize
    configurations get their structural check only (no files exist to resolve
    their entries against), and Flux references are not checked (they need
    the whole tree).
    """
    store = (
        schemas if isinstance(schemas, SchemaStore) else SchemaStore(schemas, kubernetes_version)
    )
    out: list[Diagnostic] = []
    for doc in docs:
        m = doc if isinstance(doc, Manifest) else Manifest(doc[0], doc[1], doc[2])
        out += check_document(m, store)
    return out
