"""What a re-render changes, in Kubernetes terms: resources per cluster."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml_rs

from .write import GENERATED


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


def _resources(files: dict[str, bytes], paths: list[str]) -> dict[tuple[str, str, str, str], bytes]:
    """(cluster, kind, namespace, name) -> the document's bytes, for `paths`."""
    out: dict[tuple[str, str, str, str], bytes] = {}
    for path in paths:
        parts = path.split("/")
        if len(parts) < 4 or parts[0] != GENERATED or parts[1] != "clusters":
            continue
        cluster = parts[2]
        try:
            loaded: Any = yaml_rs.loads(files[path].decode())
        except Exception:  # a hand-broken file still shows up as a changed file
            continue
        docs = loaded if isinstance(loaded, list) else [loaded]
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            meta = doc.get("metadata") or {}
            kind = str(doc.get("kind", "?"))
            if doc.get("apiVersion") == "kustomize.config.k8s.io/v1beta1":
                continue  # kustomize files are plumbing, not cluster resources
            key = (cluster, kind, str(meta.get("namespace", "")), str(meta.get("name", "")))
            out[key] = files[path]
    return out


def resource_changes(old: dict[str, bytes], new: dict[str, bytes]) -> list[ResourceChange]:
    """Resources added, changed or removed between two trees."""
    touched = sorted({p for p in old.keys() | new.keys() if old.get(p) != new.get(p)})
    before = _resources(old, [p for p in touched if p in old])
    after = _resources(new, [p for p in touched if p in new])
    changes = []
    for key in before.keys() | after.keys():
        if key not in before:
            change = "added"
        elif key not in after:
            change = "removed"
        elif before[key] != after[key]:
            change = "changed"
        else:
            continue
        changes.append(ResourceChange(key[0], change, key[1], key[2], key[3]))
    return sorted(changes)


def format_changes(changes: list[ResourceChange], unified: str, fmt: str = "text") -> str:
    if not changes and not unified:
        return "No changes: generated/ matches the catalog."
    if fmt == "markdown":
        lines = ["### llmgen diff", ""]
        clusters = sorted({c.cluster for c in changes})
        for cluster in clusters:
            mine = [c for c in changes if c.cluster == cluster]
            lines.append(f"**{cluster}**: " + _counts(mine))
            lines.append("")
            lines += ["| change | resource |", "|---|---|"]
            lines += [f"| {c.change} | `{c.ref}` |" for c in mine]
            lines.append("")
        if unified:
            lines += [
                "<details><summary>Unified diff</summary>",
                "",
                "```diff",
                unified.rstrip("\n"),
                "```",
                "",
                "</details>",
            ]
        return "\n".join(lines)
    lines = []
    for c in changes:
        lines.append(f"{c.cluster}: {c.change:<7} {c.ref}")
    if changes:
        lines.append(_counts(changes))
    if unified:
        lines += ["", unified.rstrip("\n")]
    return "\n".join(lines)


def _counts(changes: list[ResourceChange]) -> str:
    n = {k: sum(1 for c in changes if c.change == k) for k in ("added", "changed", "removed")}
    return f"{n['added']} added, {n['changed']} changed, {n['removed']} removed"
