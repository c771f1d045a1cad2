"""How `llmgen diff --base` reads: a pull-request comment (Markdown), text or JSON."""

from __future__ import annotations

import dataclasses
import json

from llmgen.gitops.changes import ResourceChange
from llmgen.gitops.prsummary import EnvironmentDelta, PrSummary, touches

#: GitHub refuses comments over 65,536 characters; long resource lists are cut.
MAX_RESOURCE_ROWS = 300


def _usd(v: float) -> str:
    return f"${v:,.0f}"


def _delta(a: float, b: float, money: bool = False) -> str:
    d = b - a
    if abs(d) < 0.5:
        return "±0"
    text = _usd(abs(d)) if money else f"{abs(d):,.0f}"
    return ("+" if d > 0 else "−") + text


def _env_row(e: EnvironmentDelta) -> list[str]:
    a, b = e.before, e.after
    models = "—" if e.models_after is None else str(e.models_after)
    if e.models_before != e.models_after:
        models += f" (was {'—' if e.models_before is None else e.models_before})"
    gpus = (
        f"{b.gpus_min}–{b.gpus_max} "
        f"({_delta(a.gpus_min, b.gpus_min)} / {_delta(a.gpus_max, b.gpus_max)})"
    )
    cost = (
        f"{_usd(b.usd_min)}–{_usd(b.usd_max)} "
        f"({_delta(a.usd_min, b.usd_min, True)} / {_delta(a.usd_max, b.usd_max, True)})"
    )
    budget = "—" if e.budget_after is None else _usd(e.budget_after)
    if e.budget_before != e.budget_after and e.budget_before is not None:
        budget += f" (was {_usd(e.budget_before)})"
    name = e.environment + (" (stopped)" if e.suspended else "")
    return [name, models, gpus, cost, budget]


def _counts(changes: list[ResourceChange]) -> str:
    kinds = [c.change for c in changes]
    return ", ".join(f"{kinds.count(k)} {k}" for k in ("added", "changed", "removed"))


def format_summary(s: PrSummary, fmt: str = "markdown") -> str:
    """The summary as `markdown` (a pull-request comment), `text` or `json`."""
    if fmt == "json":
        return json.dumps(dataclasses.asdict(s), indent=2, default=str)
    md = fmt == "markdown"
    out: list[str] = []
    head = f"llmgen: changes against {s.base} ({s.base_commit[:12]})"
    out += [f"### {head}" if md else head, ""]
    out += [f"> {n}" if md else f"note: {n}" for n in s.notes]
    if s.notes:
        out.append("")
    envs = [e for e in s.environments if e.changed or touches(e.environment, s.models)]
    if s.catalog_compared and not envs and not s.models:
        out += ["No model, capacity or cost changes.", ""]
    if envs:
        cols = ["environment", "models", "GPUs min–max (Δ)", "monthly USD min–max (Δ)", "budget"]
        out += _table(cols, [_env_row(e) for e in envs], md)
        out.append("")
    for env in sorted({m.environment for m in s.models}):
        rows = [
            [m.cluster, m.model, m.change, "; ".join(m.details)]
            for m in s.models
            if m.environment == env
        ]
        out += [f"#### {env}" if md else f"{env}:", ""]
        out += _table(["cluster", "model", "change", "details"], rows, md)
        out.append("")
    if s.weights:
        total = sum(w.gib for w in s.weights)
        title = f"Weights to mirror ({len(s.weights)} revision(s), {total:,.1f} GiB)"
        out += [f"#### {title}" if md else f"{title}:", ""]
        rows = [
            [w.cloud, w.model, w.revision[:12], f"{w.gib:,.1f}", w.uri, "yes" if w.pinned else "no"]
            for w in s.weights
        ]
        out += _table(["cloud", "model", "revision", "GiB", "mirror", "pinned"], rows, md)
        out.append("")
    out += ["#### Resources" if md else "resources:", ""]
    if not s.resources:
        out.append("No resource changes.")
    for cluster in sorted({r.cluster for r in s.resources}):
        mine = [r for r in s.resources if r.cluster == cluster]
        out.append(f"**{cluster}**: {_counts(mine)}" if md else f"{cluster}: {_counts(mine)}")
    if s.resources:
        shown = s.resources[:MAX_RESOURCE_ROWS]
        rows = [[r.cluster, r.change, f"`{r.ref}`" if md else r.ref] for r in shown]
        table = _table(["cluster", "change", "resource"], rows, md)
        if len(s.resources) > len(shown):
            table.append(f"... and {len(s.resources) - len(shown)} more")
        if md:
            out += ["", "<details><summary>Every resource</summary>", "", *table, "", "</details>"]
        else:
            out += ["", *table]
    return "\n".join(out).rstrip("\n") + "\n"


def _table(header: list[str], rows: list[list[str]], md: bool) -> list[str]:
    if md:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return lines + ["| " + " | ".join(r) + " |" for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    return [
        "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=False)).rstrip()
        for r in [header, *rows]
    ]
