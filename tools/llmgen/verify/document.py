"""The checks of one document on its own: schema, CRD rules, API server rules, names, PromQL.

`check_document` runs, on one Kubernetes document:

- the strict schema of its kind (`schemas`): core kinds from
  kubernetes-validate, custom resources from `--crd-schemas`; a kind with no
  schema is an error, never a silent pass;
- when the schema passes, the CRD's CEL validation rules (`cel`), as the API
  server runs them only on schema-valid objects;
- the API server's own validation beyond the schema (`apiserver`);
- object names, namespaces and label keys/values as the API server validates them;
- PromQL in KEDA Prometheus triggers and PrometheusRules parses.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

import promql_parser

from llmgen.catalog.load import PathKey
from llmgen.errors import Diagnostic
from llmgen.verify.apiserver import check_apiserver
from llmgen.verify.cel import CelRules
from llmgen.verify.kustomize import check_kustomization, is_kustomize_config
from llmgen.verify.manifests import Manifest
from llmgen.verify.schemas import SchemaProblem, SchemaStore, schema_errors, split_api_version
from llmgen.verify.stats import CheckStats

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
class DocumentChecks:
    """What the per-document checks share: compiled rules, counters, versions."""

    cel: CelRules
    stats: CheckStats = field(default_factory=CheckStats)
    # (major, minor) of the cluster a file belongs to, by cluster folder.
    versions: dict[str, tuple[int, int]] = field(default_factory=dict)
    default_version: tuple[int, int] = (1, 33)
    # The core schemas of each cluster version met, built on first use.
    stores: dict[tuple[int, int], SchemaStore] = field(default_factory=dict)

    @classmethod
    def for_store(cls, store: SchemaStore) -> DocumentChecks:
        major, minor = (int(p) for p in store.version.split(".")[:2])
        return cls(CelRules(store.crd_schemas), default_version=(major, minor))

    def store_for(self, file: str, default: SchemaStore) -> SchemaStore:
        """The schemas of the Kubernetes version of the cluster `file` belongs to."""
        version = self.version_of(file)
        if version == self.default_version:
            return default
        store = self.stores.get(version)
        if store is None:
            store = SchemaStore(default.crd_schemas, f"{version[0]}.{version[1]}")
            self.stores[version] = store
        return store

    def version_of(self, file: str) -> tuple[int, int]:
        parts = file.split("/")
        folder = "/".join(parts[:3]) if parts[:2] == ["generated", "clusters"] else ""
        return self.versions.get(folder, self.default_version)


def check_document(
    m: Manifest, store: SchemaStore, checks: DocumentChecks | None = None
) -> list[Diagnostic]:
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
    checks = checks or DocumentChecks.for_store(store)
    store = checks.store_for(m.file, store)
    schema = checks.stats["schema"]
    out = _metadata(m)
    try:
        validator = store.validator(api_version, kind)
    except SchemaProblem as exc:
        schema.failed += 1
        return [*out, m.diagnostic((), str(exc))]
    if validator is None:
        schema.failed += 1
        return [*out, m.diagnostic((), store.missing_message(api_version, kind))]
    schema.run += 1
    errors = schema_errors(validator, m.data)
    out += [m.diagnostic(e.path, e.message, at=e.key) for e in errors]
    if errors:
        schema.failed += 1
        # The API server runs CRD rules only on objects that pass the schema.
        checks.stats["cel"].skipped += 1
    else:
        out += checks.cel.check(m, checks.stats["cel"])
    out += check_apiserver(m, checks.stats["apiserver"], checks.version_of(m.file))
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
