"""KEDA ScaledObjects: one per model per cluster (and one per canary).

Each replica signal comes from Prometheus and is turned into "replicas
wanted" by `advanced.scalingModifiers.formula` (metricType AverageValue,
target 1, so the HPA asks for ceil(formula) replicas):

- queue:   waiting requests / the model's queueLength target per replica
- GPU:     summed per-replica GPU utilisation / gpuUtilization target
- KV:      summed per-replica KV-cache usage / kvCacheUsage target
- latency: ready replicas x p95 latency / p95LatencySeconds target
- wake:    1 while the gateway sends the model traffic (scale-to-zero only)

The formula takes the largest. Budget: when the cluster's spend, run for a
month, would pass its budget allotment, the formula holds the replicas
where they are (scale-down still works), and maxReplicaCount is the
allocator's budget-capped maximum, so the cap holds even without metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgen.catalog import names
from llmgen.plan import signals
from llmgen.plan.build import HOURS_PER_MONTH
from llmgen.plan.promql import require
from llmgen.render.types import Output, file_name

if TYPE_CHECKING:
    from llmgen.plan.build import ClusterPlan, Placement

POLLING_SECONDS = 15
FALLBACK_FAILURES = 3
# Below half a replica of demand a scale-to-zero model counts as idle: an
# idle vLLM pod still reports a little GPU utilisation.
ACTIVATION_TARGET = "0.5"
# HPA limits (autoscaling/v2): stabilisation <= 3600 s, policy period <= 1800 s.
_MAX_STABILIZATION = 3600
_MAX_PERIOD = 1800


def _number(value: float) -> str:
    """A target as KEDA reads it: a plain decimal string."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _trigger(name: str, query: str, threshold: float, where: str) -> dict[str, Any]:
    return {
        "type": "prometheus",
        "name": name,
        # Explicit: KEDA's fallback needs AverageValue triggers.
        "metricType": "AverageValue",
        "metadata": {
            "serverAddress": signals.PROMETHEUS_URL,
            "query": require(query, f"{where} trigger {name}"),
            "threshold": _number(threshold),
        },
    }


def _max(terms: list[str]) -> str:
    """Nest expr's two-argument max() over any number of terms."""
    while len(terms) > 1:
        paired = [f"max({a}, {b})" for a, b in zip(terms[::2], terms[1::2], strict=False)]
        if len(terms) % 2:
            paired.append(terms[-1])
        terms = paired
    return terms[0]


def scaling(
    cp: ClusterPlan, p: Placement, deployment: str, wake: bool, high: int
) -> dict[str, Any]:
    """Triggers and formula for one Deployment of a placement."""
    m, ns, t = p.model, p.namespace, p.model.targets
    where = f"ScaledObject {ns}/{deployment}"
    triggers: list[dict[str, Any]] = []
    terms: list[str] = []
    if t.queue_length:
        q = signals.one(signals.queue_waiting(ns, deployment))
        triggers.append(_trigger("queue_length", q, t.queue_length, where))
        terms.append(f"queue_length / {_number(t.queue_length)}")
    if t.gpu_utilization:
        q = signals.one(signals.gpu_utilization_sum(ns, deployment))
        triggers.append(_trigger("gpu_utilization", q, t.gpu_utilization, where))
        terms.append(f"gpu_utilization / {_number(t.gpu_utilization)}")
    if t.kv_cache_usage:
        q = signals.one(signals.kv_cache_sum(ns, deployment))
        triggers.append(_trigger("kv_cache_usage", q, t.kv_cache_usage, where))
        terms.append(f"kv_cache_usage / {_number(t.kv_cache_usage)}")
    needs_replicas = bool(t.p95_latency_seconds) or cp.monthly_budget_usd > 0
    if needs_replicas:
        q = signals.one(signals.ready_replicas(ns, deployment))
        triggers.append(_trigger("ready_replicas", q, 1, where))
    if t.p95_latency_seconds:
        q = signals.one(signals.latency_p95(ns, deployment, m.task))
        triggers.append(_trigger("latency_p95", q, t.p95_latency_seconds, where))
        terms.append(f"ready_replicas * latency_p95 / {_number(t.p95_latency_seconds)}")
    if wake:
        q = signals.one(signals.gateway_requests(m.name))
        triggers.append(_trigger("gateway_requests", q, 1, where))
        terms.append("(gateway_requests > 0 ? 1 : 0)")
    if not terms:
        # No target in the catalog: keep the queue as the one signal.
        q = signals.one(signals.queue_waiting(ns, deployment))
        triggers.append(_trigger("queue_length", q, 1, where))
        terms.append("queue_length")
    demand = _max(terms)
    formula = demand
    if cp.monthly_budget_usd > 0 and cp.environment is not None:
        per_month = signals.environment_usd_per_hour(cp.environment.name)
        budget = _number(cp.monthly_budget_usd)
        q = signals.one(f"{per_month} * {_number(HOURS_PER_MONTH)} / {budget}")
        triggers.append(_trigger("budget_used", q, 1, where))
        # Over the allotment the ceiling drops to the replicas already serving.
        formula = f"min({demand}, budget_used >= 1 ? ready_replicas : {high})"
    modifiers: dict[str, Any] = {"formula": formula, "target": "1", "metricType": "AverageValue"}
    if wake:
        modifiers["activationTarget"] = ACTIVATION_TARGET
    return {"triggers": triggers, "modifiers": modifiers}


def behavior(cooldown: int) -> dict[str, Any]:
    """Fast up (double or +2 pods a minute, no wait), slow down (one pod per cooldown)."""
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 60},
                {"type": "Pods", "value": 2, "periodSeconds": 60},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": min(cooldown, _MAX_STABILIZATION),
            "selectPolicy": "Min",
            "policies": [
                {"type": "Pods", "value": 1, "periodSeconds": max(min(cooldown, _MAX_PERIOD), 15)}
            ],
        },
    }


def scaled_object(
    cp: ClusterPlan, p: Placement, deployment: str, low: int, high: int
) -> dict[str, Any]:
    """The template context of one ScaledObject."""
    wake = low == 0 and p.model.scale_to_zero
    sig = scaling(cp, p, deployment, wake, high)
    annotations: dict[str, str] = {}
    if p.suspended:
        # `llmgen stop`: KEDA scales to zero and holds there until the annotation goes.
        annotations["autoscaling.keda.sh/paused-replicas"] = "0"
    return {
        "name": deployment,
        "namespace": p.namespace,
        "labels": p.labels,
        "annotations": annotations,
        "target": deployment,
        "polling_interval": POLLING_SECONDS,
        # cooldownPeriod only governs the last replica -> 0 step.
        "cooldown_period": p.model.cooldown_seconds,
        "min_replicas": low,
        "max_replicas": high,
        "fallback": {
            "failureThreshold": FALLBACK_FAILURES,
            # Without metrics: never shrink below what runs, nor below one replica.
            "replicas": max(low, 1),
            "behavior": "currentReplicasIfHigher",
        },
        "behavior": behavior(p.model.cooldown_seconds),
        "modifiers": sig["modifiers"],
        "triggers": sig["triggers"],
    }


def outputs(cp: ClusterPlan) -> Iterator[Output]:
    for p in cp.placements:
        folder = f"models/{p.name}"
        ctx = scaled_object(cp, p, p.name, p.min_replicas, p.max_replicas)
        yield Output(
            f"{folder}/{file_name('ScaledObject', p.name)}",
            "autoscaling/scaledobject.yaml.j2",
            ctx,
            p.input_hash,
        )
        if p.has_canary:
            canary = names.canary_name(p.name)
            ctx = scaled_object(cp, p, canary, p.canary_min_replicas, p.canary_max_replicas)
            yield Output(
                f"{folder}/{file_name('ScaledObject', canary)}",
                "autoscaling/scaledobject.yaml.j2",
                ctx,
                p.input_hash,
            )
