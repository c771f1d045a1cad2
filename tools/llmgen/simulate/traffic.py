"""The load to replay: a named pattern or a trace file, per model and minute.

Patterns (`diurnal`, `burst`, `ramp`) take a peak request rate and token
counts per request and are reproducible for a seed (numpy's PCG64).

Trace files are CSV with a header row; docs/simulate.md documents them:

    minute,model,requests_per_second,prompt_tokens,output_tokens
    0,llama-3-3-70b-instruct,2.5,1200,350
    0,*,0.4,,

`minute` counts from 0; `model` is a model name or `*` (every model of the
environment); the token columns may be empty (the command's defaults apply).
Minutes a model does not list carry no traffic; several rows for the same
minute and model add up. Errors are located `file:line: message`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..errors import LlmgenError, UsageError

Array = npt.NDArray[np.float64]

PATTERNS = ("diurnal", "burst", "ramp")


class TraceError(LlmgenError):
    """A trace file that cannot be read (the user's input: exit 1)."""


TRACE_COLUMNS = ("minute", "model", "requests_per_second", "prompt_tokens", "output_tokens")


@dataclass(frozen=True)
class Load:
    """Requests/s and token counts per model (rows) and minute (columns)."""

    models: tuple[str, ...]
    rps: Array
    prompt: Array
    output: Array

    @property
    def minutes(self) -> int:
        return int(self.rps.shape[1])

    def row(self, model: str) -> int:
        return self.models.index(model)


def pattern(kind: str, peaks: Sequence[float], minutes: int, seed: int) -> Array:
    """Requests/s per model and minute for `kind`, peaking at each model's peak."""
    if kind not in PATTERNS:
        raise UsageError(f"unknown pattern {kind!r}; choose one of {', '.join(PATTERNS)}")
    rng = np.random.default_rng(seed)
    t = np.arange(minutes, dtype=np.float64)
    rows = []
    for peak in peaks:
        if kind == "diurnal":
            # Trough at 04:00, peak at 16:00; 15 % of peak at night; 5 % noise.
            day = 0.5 - 0.5 * np.cos(2.0 * math.pi * (t - 240.0) / 1440.0)
            shape = 0.15 + 0.85 * day
            noise = rng.lognormal(0.0, 0.05, minutes)
        elif kind == "burst":
            # 20 % of peak, with four 15-minute bursts to the peak at random times.
            shape = np.full(minutes, 0.2)
            for start in rng.integers(0, max(minutes - 15, 1), size=4):
                shape[start : start + 15] = 1.0
            noise = rng.lognormal(0.0, 0.05, minutes)
        else:
            shape = (t + 1.0) / float(minutes)
            noise = np.ones(minutes)
        rows.append(np.minimum(shape * noise, 1.0) * peak)
    return np.array(rows) if rows else np.zeros((0, minutes))


def _number(text: str, where: str, column: str, integer: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"{where}: {column} must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (integer and value != int(value)):
        kind = "a whole number" if integer else "a finite number"
        raise TraceError(f"{where}: {column} must be {kind} >= 0, got {text!r}")
    return value


def read_trace(path: Path, models: Sequence[str], prompt: float, output: float) -> Load:
    """Read a trace CSV for `models`; the defaults fill empty token columns."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: cannot read the trace: {exc}") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:3]] != list(TRACE_COLUMNS[:3]):
        raise TraceError(f"{path}:1: the header must start {','.join(TRACE_COLUMNS[:3])}")
    rows: list[tuple[int, str, float, float | None, float | None]] = []
    for line, cells in enumerate(reader, start=2):
        if not cells or all(not c.strip() for c in cells):
            continue
        where = f"{path}:{line}"
        cells = [c.strip() for c in cells] + [""] * (5 - len(cells))
        minute = int(_number(cells[0], where, "minute", integer=True))
        model = cells[1]
        if model != "*" and model not in models:
            raise TraceError(f"{where}: model {model!r} is not in this environment")
        rate = _number(cells[2], where, "requests_per_second")
        p = _number(cells[3], where, "prompt_tokens") if cells[3] else None
        o = _number(cells[4], where, "output_tokens") if cells[4] else None
        rows.append((minute, model, rate, p, o))
    if not rows:
        raise TraceError(f"{path}: the trace has no rows")
    minutes = max(r[0] for r in rows) + 1
    rps = np.zeros((len(models), minutes))
    tokens_in = np.full((len(models), minutes), float(prompt))
    tokens_out = np.full((len(models), minutes), float(output))
    for minute, model, rate, p, o in rows:
        targets = range(len(models)) if model == "*" else [list(models).index(model)]
        for i in targets:
            rps[i, minute] += rate
            if p is not None:
                tokens_in[i, minute] = p
            if o is not None:
                tokens_out[i, minute] = o
    return Load(tuple(models), rps, tokens_in, tokens_out)
