"""Concerns: each module turns a ClusterPlan into the files of one concern.

A concern module exposes `outputs(cp: ClusterPlan) -> Iterable[Output]`.
Order here is the order files are produced; output paths decide layout, so
order never changes the rendered tree. The Flux objects (`flux.py`) come from
the engine, after every layer is rendered: their health checks read it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from llmgen.render.concerns import (
    addons,
    autoscaling,
    gpureadiness,
    mesh,
    monitoring,
    nodepools,
    secrets,
    weightsync,
    workloads,
)

if TYPE_CHECKING:
    from llmgen.plan.build import ClusterPlan
    from llmgen.render.types import Output

ConcernFn = Callable[["ClusterPlan"], Iterable["Output"]]

CONCERNS: list[tuple[str, ConcernFn]] = [
    ("workloads", workloads.outputs),
    ("autoscaling", autoscaling.outputs),
    ("monitoring", monitoring.outputs),
    ("nodepools", nodepools.outputs),
    ("gpureadiness", gpureadiness.outputs),
    ("addons", addons.outputs),
    ("secrets", secrets.outputs),
    ("mesh", mesh.outputs),
    ("weightsync", weightsync.outputs),
]


def outputs_for(cp: ClusterPlan) -> Iterator[Output]:
    for _name, fn in CONCERNS:
        yield from fn(cp)
