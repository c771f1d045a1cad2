"""Verify the rendered tree with the checks a cluster would apply, before it does.

`verify_tree` checks everything under `<root>/generated/`:

- every YAML document against the strict schema of its kind (`kube_schemas`):
  core kinds from kubernetes-validate, custom resources from `--crd-schemas`;
  a kind with no schema is an error, never a silent pass;
- object names, namespaces and label keys/values as the API server validates them;
- PromQL in KEDA Prometheus triggers and PrometheusRules parses;
- every `kustomization.yaml` structurally, then every folder holding one
  through a real `kubectl kustomize` (`kustomize_build`), in parallel;
- Flux references resolve within each cluster's folder (`flux_refs`).

Nothing prints: the result is a `VerifyReport` of located diagnostics.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import promql_parser

from llmgen.catalog import guard
from llmgen.catalog.load import PathKey
from llmgen.errors import Diagnostic, SourceLocation
from llmgen.verify.flux_refs import check_flux_refs
from llmgen.verify.kustomize import (
    KUSTOMIZE_FILES,
    KustomizeBuilds,
    check_kustomization,
    find_kubectl,
    is_kustomize_config,
)
from llmgen.verify.manifests import Manifest, ParseProblem, split_documents
from llmgen.verify.schemas import SchemaProblem, SchemaStore, schema_errors, split_api_version

__all__ = ["SchemaStore", "VerifyReport", "verify_documents", "verify_tree"]

_FLUX_SUFFIX = ".toolkit.fluxcd.io"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_SUBDOMAIN_RULE = (
    "lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, "
    "at most 253 characters"
)
_LABEL_RULE = (
    "lower-case letters, digits and '-', starting and ending with a letter or digit, "
    "at most 63 characters"
)
# How the API server validates `metadata.name`, for the kinds that differ
# from the default (DNS-1123 subdomain).
_NAME_RULES: dict[str, tuple[re.Pattern[str] | None, int, str]] = {
    "Namespace": (_DNS_LABEL, 63, _LABEL_RULE),
    "Service": (_DNS_1035, 63, _LABEL_RULE.replace("a letter or digit, at", "a letter, at")),
    # RBAC names are path segments (`system:metrics-reader` is valid).
    "Role": (None, 253, "any characters except '/' and '%', and not '.' or '..'"),
    "ClusterRole": (None, 253, "any characters except '/' and '%', and not '.' or '..'"),
    "RoleBinding": (None, 253, "any characters except '/' and '%', and not '.' or '..'"),
    "ClusterRoleBinding": (None, 253, "any characters except '/' and '%', and not '.' or '..'"),
}


@dataclass
class VerifyReport:
    """What `verify_tree` checked and everything it found (errors and warnings)."""

    documents: int = 0
    folders: int = 0  # folders holding a kustomization.yaml
    diagnostics: list[Diagnostic] = field(default_factory=list)
    kubernetes_schemas: str = ""  # the kubernetes-validate version used, e.g. "1.33"

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


def verify_tree(
    root: Path,
    crd_schemas: Path | None,
    *,
    kubernetes_version: str = "1.33",
    kustomize: bool = True,
    jobs: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> VerifyReport:
    """Verify `root / "generated"`; diagnostics are located relative to `root`.

    `progress(stage, done, total)`, when given, hears how far the document
    checks and the kustomize builds are (the CLI draws a bar on a terminal).

    Raises `ToolMissingError` when kubectl (with `kustomize=True`) or the
    kubernetes-validate schemas cannot be found.
    """
    root = root.resolve()
    store = SchemaStore(crd_schemas, kubernetes_version)
    kubectl = find_kubectl() if kustomize else None
    report = VerifyReport(kubernetes_schemas=store.version)
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

    # Kustomizations first, so the (slow, parallel) builds run while this
    # thread validates every other document.
    to_build: list[Manifest] = []
    broken: set[str] = set()
    namespaces: dict[str, str] = {}
    for rel in configs:
        before = len(report.diagnostics)
        docs = _read(root, rel, report, contents)
        # An empty file still gets built: kustomize says what it thinks of it.
        first = docs[0] if docs else Manifest(rel, 1, {})
        problems = check_kustomization(first, root)
        report.diagnostics += problems
        report.folders += 1
        if isinstance(first.data, dict) and isinstance(first.data.get("namespace"), str):
            namespaces[rel.rsplit("/", 1)[0]] = first.data["namespace"]
        if len(report.diagnostics) > before:
            broken.add(str(root / rel.rsplit("/", 1)[0]))
        else:
            to_build.append(first)

    builds = KustomizeBuilds(kubectl, root, to_build, jobs) if kubectl else None
    try:
        flux: list[Manifest] = []
        for i, rel in enumerate(others):
            if progress and i % 50 == 0:
                progress("schemas", i, len(others))
            for m in _read(root, rel, report, contents):
                report.diagnostics += check_document(m, store)
                if split_api_version(m.api_version)[0].endswith(_FLUX_SUFFIX):
                    flux.append(m)
        report.diagnostics += check_flux_refs(root, flux, namespaces)
        # No value that looks like a credential may sit in the tree, however
        # it got there (a hand edit, a template, an overlay-less patch).
        report.diagnostics += guard.scan(_with_other_files(root, tree, contents))
        if progress:
            progress("schemas", len(others), len(others))
        if builds:
            if progress:
                builds.wait(progress)
            report.diagnostics += builds.results(broken)
    finally:
        if builds:
            builds.close()
    report.diagnostics.sort()
    return report


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


def _with_other_files(root: Path, tree: Path, contents: dict[str, bytes]) -> dict[str, bytes]:
    """`contents` plus every file under `tree` that verify did not read (not YAML)."""
    out = dict(contents)
    for path in tree.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if rel not in out and path.is_file():
            out[rel] = path.read_bytes()
    return out


def verify_documents(
    docs: Iterable[Manifest | tuple[str, int, Any]],
    schemas: SchemaStore | Path | None = None,
    *,
    kubernetes_version: str = "1.33",
) -> list[Diagnostic]:
    """Per-document checks (schema, names, labels, PromQL) on in-memory documents.

    Each document is a `Manifest` or `(file, line, data)`; the latter are
    located at `line`, since there is no source text to find nodes in.
    `schemas` is a `SchemaStore` to reuse (its compiled validators are the
    expensive part), or the CRD schema folder to build one from. Kustomize
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


def check_document(m: Manifest, store: SchemaStore) -> list[Diagnostic]:
    """Every problem of one document."""
    if is_kustomize_config(m):
        return check_kustomization(m, None)
    if not isinstance(m.data, dict):
        return [m.diagnostic((), "a Kubernetes document must be a mapping")]
    api_version, kind = m.data.get("apiVersion"), m.data.get("kind")
    missing = [k for k, v in (("apiVersion", api_version), ("kind", kind)) if not v]
    if missing or not isinstance(api_version, str) or not isinstance(kind, str):
        what = " and ".join(missing) or "apiVersion and kind"
        return [m.diagnostic((), f"{what} must be set (as strings)")]
    out = _metadata(m)
    try:
        validator = store.validator(api_version, kind)
    except SchemaProblem as exc:
        return [*out, m.diagnostic((), str(exc))]
    if validator is None:
        return [*out, m.diagnostic((), store.missing_message(api_version, kind))]
    out += [m.diagnostic(e.path, e.message, at=e.key) for e in schema_errors(validator, m.data)]
    out += _promql(m)
    return out


def _metadata(m: Manifest) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    meta = m.metadata
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        out.append(
            m.diagnostic(("metadata", "name") if meta else ("metadata",), "name is required")
        )
    else:
        pattern, limit, rule = _NAME_RULES.get(m.kind, (_DNS_SUBDOMAIN, 253, _SUBDOMAIN_RULE))
        valid = (
            pattern.fullmatch(name)
            if pattern
            else not ("/" in name or "%" in name or name in (".", ".."))
        )
        if not valid or len(name) > limit:
            out.append(m.diagnostic(("metadata", "name"), f'"{name}" is not a valid name: {rule}'))
    namespace = meta.get("namespace")
    if isinstance(namespace, str) and not (
        _DNS_LABEL.fullmatch(namespace) and len(namespace) <= 63
    ):
        out.append(
            m.diagnostic(
                ("metadata", "namespace"),
                f'"{namespace}" is not a valid namespace: {_LABEL_RULE}',
            )
        )
    out += _labels(m, ("metadata",), meta)
    spec = m.data.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    if isinstance(template, dict) and isinstance(template.get("metadata"), dict):
        out += _labels(m, ("spec", "template", "metadata"), template["metadata"])
    return out


def _labels(m: Manifest, base: PathKey, meta: dict[str, Any]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for field_name in ("labels", "annotations"):
        entries = meta.get(field_name)
        if not isinstance(entries, dict):
            continue
        for key, value in entries.items():
            path = (*base, field_name, key)
            problem = _key_problem(str(key))
            if problem:
                out.append(m.diagnostic(path, problem, at=path))
            if field_name == "labels" and isinstance(value, str) and not _label_value_ok(value):
                out.append(
                    m.diagnostic(
                        path,
                        f'"{value}" is not a valid label value: at most 63 letters, digits, '
                        "'-', '_' or '.', starting and ending with a letter or digit",
                    )
                )
    return out


# Cached: the same few dozen label keys and values recur on every document.
@functools.lru_cache(maxsize=65536)
def _label_value_ok(value: str) -> bool:
    return not value or (len(value) <= 63 and _LABEL_NAME.fullmatch(value) is not None)


@functools.lru_cache(maxsize=65536)
def _key_problem(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and not (_DNS_SUBDOMAIN.fullmatch(prefix) and len(prefix) <= 253):
        return f'"{key}": the prefix must be a DNS subdomain ({_SUBDOMAIN_RULE})'
    if not name or len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        return (
            f'"{key}": the name part must be at most 63 letters, digits, '
            "'-', '_' or '.', starting and ending with a letter or digit"
        )
    return None


def _promql(m: Manifest) -> list[Diagnostic]:
    """Queries KEDA and Prometheus would reject at run time, caught now."""
    spec = m.data.get("spec")
    if not isinstance(spec, dict):
        return []
    group, _ = split_api_version(m.api_version)
    queries: list[tuple[PathKey, Any]] = []
    if group == "keda.sh" and m.kind in ("ScaledObject", "ScaledJob"):
        for i, trigger in enumerate(spec.get("triggers") or []):
            if isinstance(trigger, dict) and trigger.get("type") == "prometheus":
                meta = trigger.get("metadata")
                if isinstance(meta, dict) and "query" in meta:
                    queries.append((("spec", "triggers", i, "metadata", "query"), meta["query"]))
    elif group == "monitoring.coreos.com" and m.kind == "PrometheusRule":
        for g, rule_group in enumerate(spec.get("groups") or []):
            rules = rule_group.get("rules") if isinstance(rule_group, dict) else None
            for r, rule in enumerate(rules or []):
                if isinstance(rule, dict) and "expr" in rule:
                    queries.append((("spec", "groups", g, "rules", r, "expr"), rule["expr"]))
    out: list[Diagnostic] = []
    for path, query in queries:
        problem = _promql_problem(str(query))
        if problem:
            out.append(m.diagnostic(path, f"PromQL does not parse: {problem}"))
    return out


# Cached: the same query recurs in every cluster a model runs in (on the
# benchmark tree, 14,400 queries are 1,006 distinct ones).
@functools.lru_cache(maxsize=65536)
def _promql_problem(query: str) -> str | None:
    try:
        promql_parser.parse(query)
    except (ValueError, TypeError) as exc:  # the parser raises both
        return str(exc) or type(exc).__name__
    return None
