"""Node fit for plan-level callers: the packing arithmetic lives in `llmgen.catalog.fit`.

validate refuses a model that fits no node of its pool, and catalog/ may not
import plan/, so the arithmetic sits with the catalog; plan (node counts,
GPU limits, costs) reads it through this module.
"""

from __future__ import annotations

from llmgen.catalog.fit import (
    Resources,
    allocatable,
    daemonsets,
    misfit,
    per_node,
    pod_request,
    replicas_per_node,
    reserved,
    shapes,
)

__all__ = [
    "Resources",
    "allocatable",
    "daemonsets",
    "misfit",
    "per_node",
    "pod_request",
    "replicas_per_node",
    "reserved",
    "shapes",
]
