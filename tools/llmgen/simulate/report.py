"""What a simulation says: per-minute series, a summary, text, Markdown and JSON.

A minute misses the SLO for a model when a unit serving it has traffic and an
estimated p95 latency above the model's target (its `p95LatencySeconds`,
else 2 s, or `--slo-seconds`), or when any of its requests are answered 503.
USD is what the nodes cost while provisioned (whole nodes, the pool's dearest
listed shape, as plan prices them); cost per million tokens divides it by the
prompt and generated tokens served.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .engine import Result

Array = npt.NDArray[np.float64]
VERSION = 1


@dataclass(frozen=True)
class ModelSummary:
    model: str
    clusters: int
    peak_replicas: int
    max_queue: float
    max_latency_p95: float
    slo_seconds: float
    slo_minutes_missed: int
    requests: float
    shed_requests: float
    usd: float
    peak_usd_per_hour: float
    usd_per_million_tokens: float | None


@dataclass(frozen=True)
class Summary:
    environment: str
    minutes: int
    slo_minutes_missed: int
    peak_usd_per_hour: float
    usd: float
    tokens: float
    usd_per_million_tokens: float | None
    shed_requests: float
    models: tuple[ModelSummary, ...]


def _nanmax(a: Array) -> float:
    finite = a[np.isfinite(a)]
    return float(finite.max()) if finite.size else 0.0


def missed_minutes(result: Result, model: str) -> npt.NDArray[np.bool_]:
    """Per minute, whether `model` missed its latency SLO or shed requests."""
    idx = [u.index for u in result.units if u.model == model]
    s = result.series
    slo = np.array([result.units[i].slo_seconds for i in idx])[:, None]
    lat = s["latency_p95"][idx]
    late = ((s["arrivals"][idx] > 0) & np.isfinite(lat) & (lat > slo)).any(axis=0)
    shed = result.shed[result.load.row(model)] > 1e-9
    return np.asarray(late | shed)


def summarize(result: Result, environment: str, model: str | None = None) -> Summary:
    s = result.series
    hours = 1.0 / 60.0
    models = [m for m in result.load.models if model is None or m == model]
    rows = []
    total_missed = 0
    for m in models:
        idx = [u.index for u in result.units if u.model == m]
        if not idx:
            continue
        missed = int(missed_minutes(result, m).sum())
        total_missed += missed
        usd = float(s["usd_per_hour"][idx].sum() * hours)
        tokens = float(s["tokens"][idx].sum())
        shed = float(result.shed[result.load.row(m)].sum() * 60.0)
        rows.append(
            ModelSummary(
                model=m,
                clusters=len({result.units[i].cluster for i in idx}),
                peak_replicas=int(s["replicas"][idx].sum(axis=0).max()),
                max_queue=round(float(s["queue"][idx].sum(axis=0).max()), 1),
                max_latency_p95=round(_nanmax(s["latency_p95"][idx]), 3),
                slo_seconds=result.units[idx[0]].slo_seconds,
                slo_minutes_missed=missed,
                requests=round(float(s["completed"][idx].sum() * 60.0) + shed, 1),
                shed_requests=round(shed, 1),
                usd=round(usd, 2),
                peak_usd_per_hour=round(float(s["usd_per_hour"][idx].sum(axis=0).max()), 2),
                usd_per_million_tokens=round(usd / tokens * 1e6, 4) if tokens > 0 else None,
            )
        )
    idx_all = [u.index for u in result.units if u.model in models]
    usd_all = float(s["usd_per_hour"][idx_all].sum() * hours)
    tokens_all = float(s["tokens"][idx_all].sum())
    return Summary(
        environment=environment,
        minutes=result.load.minutes,
        slo_minutes_missed=total_missed,
        peak_usd_per_hour=round(float(s["usd_per_hour"][idx_all].sum(axis=0).max()), 2),
        usd=round(usd_all, 2),
        tokens=round(tokens_all),
        usd_per_million_tokens=round(usd_all / tokens_all * 1e6, 4) if tokens_all else None,
        shed_requests=round(sum(r.shed_requests for r in rows), 1),
        models=tuple(rows),
    )


def _money(v: float | None) -> str:
    return "-" if v is None else f"{v:,.2f}"


def markdown(summary: Summary, notes: list[str] | None = None) -> str:
    """A table for a pull-request comment."""
    lines = [
        f"### Simulated {summary.minutes} min of traffic in `{summary.environment}`",
        "",
        "| model | clusters | peak replicas | max queue | max p95 latency (s) | SLO (s) "
        "| SLO minutes missed | 503s | USD | USD / 1M tokens |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in summary.models:
        lines.append(
            f"| {m.model} | {m.clusters} | {m.peak_replicas} | {m.max_queue:g} "
            f"| {m.max_latency_p95:g} | {m.slo_seconds:g} | {m.slo_minutes_missed} "
            f"| {m.shed_requests:g} | {_money(m.usd)} | {_money(m.usd_per_million_tokens)} |"
        )
    lines += [
        "",
        f"**SLO minutes missed:** {summary.slo_minutes_missed} · "
        f"**peak spend:** {_money(summary.peak_usd_per_hour)} USD/h · "
        f"**total:** {_money(summary.usd)} USD · "
        f"**cost per million tokens:** {_money(summary.usd_per_million_tokens)} USD",
    ]
    lines += [f"\n_{n}_" for n in notes or []]
    return "\n".join(lines) + "\n"


def text(summary: Summary, notes: list[str] | None = None) -> str:
    width = max([len(m.model) for m in summary.models] + [5])
    lines = [
        f"{'model':<{width}}  peak  queue  p95(s)  slo(s)  missed  503s        USD  USD/1M tok"
    ]
    for m in summary.models:
        lines.append(
            f"{m.model:<{width}}  {m.peak_replicas:>4}  {m.max_queue:>5g}  "
            f"{m.max_latency_p95:>6.2f}  {m.slo_seconds:>6g}  {m.slo_minutes_missed:>6}  "
            f"{m.shed_requests:>4g}  {m.usd:>9,.2f}  {_money(m.usd_per_million_tokens):>10}"
        )
    lines.append(
        f"{summary.environment}: {summary.minutes} min, {summary.slo_minutes_missed} SLO "
        f"minute(s) missed, peak {_money(summary.peak_usd_per_hour)} USD/h, "
        f"{_money(summary.usd)} USD, {_money(summary.usd_per_million_tokens)} USD per 1M tokens"
    )
    lines += notes or []
    return "\n".join(lines) + "\n"


def per_minute(result: Result, model: str | None = None) -> list[dict[str, Any]]:
    """Per unit: the per-minute series (rounded), for JSON."""
    out = []
    for u in result.units:
        if model is not None and u.model != model:
            continue
        s = result.series
        series = {
            name: [None if not np.isfinite(v) else round(float(v), 4) for v in s[name][u.index]]
            for name in ("replicas", "ready", "queue", "latency_p95", "gpus", "usd_per_hour",
                         "arrivals")
        }  # fmt: skip
        out.append({"model": u.model, "cluster": u.cluster, "track": u.track, "series": series})
    return out


def as_json(result: Result, summary: Summary, model: str | None = None) -> str:
    doc = {
        "version": VERSION,
        "summary": asdict(summary),
        "units": per_minute(result, model),
        "outages": [asdict(o) for o in result.outages],
        "notes": result.notes,
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
