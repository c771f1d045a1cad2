"""`llmgen diff --base REF --simulate`: the same traffic against base and head.

Both sides are planned and rendered by this llmgen from their own catalog
(as `diff --base` does), and replayed under one load: the head's automatic
peaks (or the given ones), the same seed, the same outages. Models only one
side places carry their traffic on that side only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import LlmgenError
from .api import Options, auto_peaks, make_load, prepare
from .engine import run
from .report import Summary, summarize


@dataclass(frozen=True)
class Comparison:
    environment: str
    base: Summary | None
    head: Summary
    notes: tuple[str, ...] = ()


def compare(head_root: Path, base_root: Path, opts: Options) -> Comparison:
    """Simulate `opts.environment` on both roots under the same traffic."""
    _plan, head_units, head_slots = prepare(head_root, opts)
    notes: list[str] = []
    try:
        _bplan, base_units, base_slots = prepare(base_root, replace(opts, model=None))
    except LlmgenError as exc:  # the base may not validate or place this environment
        base_units, base_slots = [], []
        notes.append(f"the base could not be simulated: {exc}")
    peaks = dict(opts.peaks)
    if not peaks and opts.peak_rps is None:
        peaks = {
            **auto_peaks(base_units, opts.prompt_tokens, opts.output_tokens),
            **auto_peaks(head_units, opts.prompt_tokens, opts.output_tokens),
        }
    shared = replace(opts, peaks=peaks)
    load = make_load([*head_units, *base_units], shared)
    head = summarize(
        run(head_units, head_slots, load, opts.outages, opts.step_seconds),
        opts.environment,
        opts.model,
    )
    base = None
    if base_units:
        base = summarize(
            run(base_units, base_slots, load, opts.outages, opts.step_seconds),
            opts.environment,
            opts.model,
        )
    return Comparison(opts.environment, base, head, tuple(notes))


def _delta(before: object, after: object, money: bool = False) -> str:
    """`before → after`, or one value when they agree (None: that side has none)."""
    return _delta_of(_num(before), _num(after), money)


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _delta_of(before: float | None, after: float | None, money: bool) -> str:
    def fmt(v: float | None) -> str:
        if v is None:
            return "-"
        return f"{v:,.2f}" if money else f"{v:g}"

    if before is None or after is None or before == after:
        return fmt(after) if before == after or before is None else f"{fmt(before)} → -"
    return f"{fmt(before)} → {fmt(after)}"


def markdown(comparisons: list[Comparison]) -> str:
    """One table per environment: base → head per model, then the totals."""
    lines = ["## Simulated traffic: base → head", ""]
    for c in comparisons:
        lines += [
            f"### `{c.environment}` ({c.head.minutes} min, same traffic on both sides)",
            "",
            "| model | peak replicas | max p95 latency (s) | SLO minutes missed | 503s | USD "
            "| USD / 1M tokens |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        before = {m.model: m for m in c.base.models} if c.base else {}
        after = {m.model: m for m in c.head.models}
        for name in sorted(set(before) | set(after)):
            b, a = before.get(name), after.get(name)
            lines.append(
                f"| {name} "
                f"| {_delta(b and b.peak_replicas, a and a.peak_replicas)} "
                f"| {_delta(b and b.max_latency_p95, a and a.max_latency_p95)} "
                f"| {_delta(b and b.slo_minutes_missed, a and a.slo_minutes_missed)} "
                f"| {_delta(b and b.shed_requests, a and a.shed_requests)} "
                f"| {_delta(b and b.usd, a and a.usd, True)} "
                f"| {_delta(b and b.usd_per_million_tokens, a and a.usd_per_million_tokens, True)}"
                " |"
            )
        bs, hs = c.base, c.head
        missed = _delta(bs and bs.slo_minutes_missed, hs.slo_minutes_missed)
        peak = _delta(bs and bs.peak_usd_per_hour, hs.peak_usd_per_hour, True)
        per_m = _delta(bs and bs.usd_per_million_tokens, hs.usd_per_million_tokens, True)
        lines += [
            "",
            f"SLO minutes missed {missed} · peak spend {peak} USD/h · "
            f"cost per million tokens {per_m} USD",
            "",
        ]
        lines += [f"_{n}_" for n in c.notes]
    return "\n".join(lines).rstrip("\n") + "\n"
