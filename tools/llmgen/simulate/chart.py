"""The PNG chart of one model's simulated day: load, replicas, latency, spend.

matplotlib's Agg backend and fixed metadata (no software version, no
timestamp) make the same simulation write the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .engine import Result
from .report import missed_minutes


def chart(result: Result, model: str, path: Path) -> None:
    """Write the chart of `model` to `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    units = [u for u in result.units if u.model == model]
    s = result.series
    minutes = np.arange(result.load.minutes) / 60.0
    fig, axes = plt.subplots(4, 1, figsize=(10, 9), sharex=True, dpi=100)
    load_ax, rep_ax, lat_ax, usd_ax = axes
    row = result.load.row(model)
    load_ax.plot(minutes, result.load.rps[row], color="black", lw=1, label="offered")
    shed = result.shed[row]
    if shed.any():
        load_ax.fill_between(minutes, 0, shed, color="red", alpha=0.4, label="answered 503")
    load_ax.set_ylabel("requests/s")
    load_ax.legend(loc="upper left", fontsize=8)
    for n, u in enumerate(units):
        label = u.cluster + ("" if u.track == "stable" else f" ({u.track})")
        color = f"C{n % 10}"
        rep_ax.step(minutes, s["replicas"][u.index], where="post", lw=1.2, color=color, label=label)
        rep_ax.step(minutes, s["ready"][u.index], where="post", lw=0.8, ls=":", color=color)
        lat_ax.plot(minutes, s["latency_p95"][u.index], lw=1, color=color, label=label)
    rep_ax.set_ylabel("replicas (dotted: ready)")
    rep_ax.legend(loc="upper left", fontsize=8, ncol=2)
    slo = units[0].slo_seconds if units else 0.0
    lat_ax.axhline(slo, color="red", ls="--", lw=1, label=f"SLO {slo:g} s")
    missed = missed_minutes(result, model)
    top = max(slo * 3, 1.0)
    if missed.any():
        lat_ax.fill_between(minutes, 0, top, where=missed, color="red", alpha=0.12, step="post")
    lat_ax.set_ylim(0, top)
    lat_ax.set_ylabel("p95 latency (s)")
    idx = [u.index for u in units]
    usd_ax.plot(minutes, s["usd_per_hour"][idx].sum(axis=0), color="tab:green", lw=1.2)
    usd_ax.set_ylabel("USD/h")
    usd_ax.set_xlabel("hour")
    for o in result.outages:
        for ax in axes:
            ax.axvspan(
                o.start / 60.0, min(o.end, result.load.minutes) / 60.0, color="grey", alpha=0.15
            )
    fig.suptitle(f"llmgen simulate: {model}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
