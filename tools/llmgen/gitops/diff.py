"""What a re-render changes, in Kubernetes terms: resources per cluster."""

from __future__ import annotations

from llmgen.gitops.changes import ResourceChange, document_changes


def resource_changes(old: dict[str, bytes], new: dict[str, bytes]) -> list[ResourceChange]:
    """Resources added, changed or removed between two trees, compared as data.

    A model's resources share a file, so comparing files would mark all of
    them changed when one is; `changes.document_changes` compares documents.
    """
    return document_changes(old, new)


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
