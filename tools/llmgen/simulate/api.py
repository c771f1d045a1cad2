"""`llmgen simulate`: plan and render the catalog, then replay traffic against it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..plan.build import Plan, build_plan
from ..render.engine import render_plan
from ..render.pipeline import checked_catalog
from ..resources import templates_dir
from .engine import Outage, Result, run
from .objects import read_rendered
from .serving import Replica
from .setup import Slot, Unit, build_units
from .traffic import Load, pattern, read_trace

#: without --peak-rps, each model peaks at this share of what its maximum replicas serve
AUTO_PEAK_SHARE = 0.5
_OUTAGE = re.compile(r"^(?P<cluster>[a-z0-9-]+)@(?P<start>\d+)(?:-(?P<end>\d+))?$")


@dataclass(frozen=True)
class Options:
    """What to replay and how; the command line fills it."""

    environment: str
    model: str | None = None
    pattern: str = "diurnal"
    trace: Path | None = None
    peak_rps: float | None = None
    prompt_tokens: float = 1000.0
    output_tokens: float = 300.0
    minutes: int = 1440
    seed: int = 0
    step_seconds: float = 60.0
    outages: tuple[Outage, ...] = ()
    pull_gibps: float | None = None
    slo_seconds: float | None = None
    peaks: dict[str, float] = field(default_factory=dict)


def parse_outage(text: str) -> Outage:
    """`CLUSTER@START[-END]` (minutes; without END the cluster stays down)."""
    m = _OUTAGE.match(text.strip())
    if m is None:
        raise UsageError(f"--down {text!r}: expected CLUSTER@MINUTE or CLUSTER@START-END")
    start = int(m["start"])
    end = int(m["end"]) if m["end"] else 10**9
    if end <= start:
        raise UsageError(f"--down {text!r}: the end minute must come after the start")
    return Outage(m["cluster"], start, end)


def auto_peaks(units: list[Unit], prompt: float, output: float) -> dict[str, float]:
    """Per model: AUTO_PEAK_SHARE of what its stable units serve at maxReplicaCount."""
    peaks: dict[str, float] = {}
    for u in units:
        if u.track != "stable":
            continue
        out = 0.0 if u.embed else output
        r = Replica(*(np.array([v]) for v in (
            u.weights_bytes, u.kv_token, u.bandwidth, u.flops, u.params, u.max_seqs,
            u.kv_capacity, prompt, out)))  # fmt: skip
        capacity = float(r.capacity()[0]) * u.so.max_replicas
        peaks[u.model] = peaks.get(u.model, 0.0) + capacity * AUTO_PEAK_SHARE
    return {m: round(v, 3) for m, v in peaks.items()}


def prepare(root: Path, opts: Options) -> tuple[Plan, list[Unit], list[Slot]]:
    """Validate, plan and render the catalog under `root`; the units of the environment."""
    catalog, _warnings = checked_catalog(root)
    plan = build_plan(catalog)
    if opts.environment not in plan.environments:
        names = ", ".join(sorted(plan.environments))
        raise UsageError(f"no environment named {opts.environment!r} (environments: {names})")
    env = plan.environments[opts.environment].environment
    selected = [c for c in env.clusters if c in plan.clusters]
    files = render_plan(plan, templates_dir(root), root, selected).files
    rendered = read_rendered(files, set(selected))
    units, slots = build_units(plan, rendered, opts.environment, opts.pull_gibps, opts.slo_seconds)
    for o in opts.outages:
        if o.cluster not in selected:
            raise UsageError(f"--down {o.cluster}: not a cluster of {opts.environment}")
    if opts.model is not None and opts.model not in {u.model for u in units}:
        raise UsageError(f"--model {opts.model}: not placed in {opts.environment}")
    return plan, units, slots


def make_load(units: list[Unit], opts: Options) -> Load:
    models = tuple(sorted({u.model for u in units}))
    if opts.trace is not None:
        return read_trace(opts.trace, models, opts.prompt_tokens, opts.output_tokens)
    peaks = opts.peaks or auto_peaks(units, opts.prompt_tokens, opts.output_tokens)
    per_model = [opts.peak_rps if opts.peak_rps is not None else peaks.get(m, 0.0) for m in models]
    rps = pattern(opts.pattern, per_model, opts.minutes, opts.seed)
    shape = (len(models), opts.minutes)
    return Load(models, rps, np.full(shape, opts.prompt_tokens), np.full(shape, opts.output_tokens))


def simulate(root: Path, opts: Options) -> Result:
    """Run the simulation of `opts.environment` under `root`'s catalog."""
    _plan, units, slots = prepare(root, opts)
    if opts.step_seconds <= 0 or 60.0 % opts.step_seconds:
        raise UsageError("--step-seconds must divide 60")
    result = run(units, slots, make_load(units, opts), opts.outages, opts.step_seconds)
    if opts.model is not None:
        result.notes.append(
            f"every model of {opts.environment} was simulated (they share the budget); "
            f"figures are for {opts.model}"
        )
    return result
