"""KEDA ScaledObjects: one per model per cluster (and one per canary).

Each replica signal comes from Prometheus and is turned into "replicas
wanted" by `advanced.scalingModifiers.formula` (metricType AverageValue,
target 1, so the HPA asks for ceil(formula) replicas):

- queue:   waiting requests / the model's queueLength target per replica
- batch:   running requests / (BATCH_TARGET x --max-num-seqs) per replica
- KV:      summed per-replica KV-cache usage / kvCacheUsage target
- latency: ready replicas x p95 latency / p95LatencySeconds target
- wake:    1 while the gateway sends the model traffic (scale-to-zero only)

GPU duty cycle (DCGM_FI_DEV_GPU_UTIL) does not drive scaling: it reads near
100 % while a replica decodes a single stream (GKE's autoscaling best
practices for LLM inference), so it would ratchet every model to its maximum.

The formula takes the largest. Budget: when the cluster's spend, run for a
month, would pass its budget allotment, the formula holds the replicas the
Deployment has (kube-state-metrics, ready or warming up; scale-down still
works), and maxReplicaCount is the allocator's budget-capped maximum, so the
cap holds even without metrics.

A lost scrape is an error, not "no load" (for ScaledObjects with a minimum
of at least one): pod-derived queries carry no `or vector(0)` and set
`ignoreNullValues: "false"`, so the Prometheus scaler fails on an empty
result (pkg/scalers/prometheus_scaler.go at KEDA v2.18.1). After
FALLBACK_FAILURES failures KEDA's fallback takes over, and with
scalingModifiers it replaces the whole composite metric, not one term:
pkg/scaling/scale_handler.go passes the fallback metrics to
modifiers.HandleScalingModifiers, which returns fallbackMetrics[0]: the
modifiers' target x max(current replicas, fallback.replicas) for
`currentReplicasIfHigher` (pkg/fallback/fallback.go doFallback). Before the
threshold the HPA gets an error and keeps the current count. Fallback is
only honoured when scalingModifiers.target parses as an integer > 0
(HasValidFallback), hence target "1". Where absent really means zero (a
model at zero replicas waking on gateway traffic, the budget) `or vector(0)`
stays.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgen.catalog import names
from llmgen.plan import routing, signals
from llmgen.plan.build import HOURS_PER_MONTH
from llmgen.plan.promql import require
from llmgen.render.types import Output, file_name

if TYPE_CHECKING:
    from llmgen.plan.build import ClusterPlan, Placement

POLLING_SECONDS = 15
FALLBACK_FAILURES = 3
# Below half a replica of demand a scale-to-zero model counts as idle.
ACTIVATION_TARGET = "0.5"
#: Share of `--max-num-seqs` one replica should decode at once before another is wanted.
BATCH_TARGET = 0.75
#: Demand must persist this long before the HPA adds replicas.
SCALE_UP_WINDOW_SECONDS = 120
# HPA limits (autoscaling/v2): stabilisation <= 3600 s, policy period <= 1800 s.
_MAX_STABILIZATION = 3600
_MAX_PERIOD = 1800


#: What a ScaledObject scales: the Deployment, or a multi-node model's
#: LeaderWorkerSet. KEDA scales any kind through its `/scale` subresource
#: (keda-operator's ClusterRole grants `*/scale` on every group); the
#: LeaderWorkerSet CRD declares one (kubernetes-sigs/lws v0.10.0
#: config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml:
#: specReplicasPath .spec.replicas, labelSelectorPath .status.hpaPodSelector,
#: the leader pods), and `spec.replicas` counts groups.
TARGET_API = {
    False: ("apps/v1", "Deployment"),
    True: ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"),
}


def _number(value: float) -> str:
    """A target as KEDA reads it: a plain decimal string."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _max(terms: list[str]) -> str:
    """Nest expr's two-argument max() over any number of terms."""
    while len(terms) > 1:
        paired = [f"max({a}, {b})" for a, b in zip(terms[::2], terms[1::2], strict=False)]
        if len(terms) % 2:
            paired.append(terms[-1])
        terms = paired
    return terms[0]


def _trigger(
    name: str, query: str, threshold: float, where: str, strict: bool = False
) -> dict[str, Any]:
    metadata = {
        "serverAddress": signals.PROMETHEUS_URL,
        "query": require(query, f"{where} trigger {name}"),
        "threshold": _number(threshold),
    }
    if strict:
        # An empty result is an error (a lost target), which KEDA's fallback handles.
        metadata["ignoreNullValues"] = "false"
    return {
        "type": "prometheus",
        "name": name,
        # Explicit: KEDA's fallback needs AverageValue triggers.
        "metricType": "AverageValue",
        "metadata": metadata,
    }


def scaling(
    cp: ClusterPlan, p: Placement, deployment: str, wake: bool, high: int, low: int
) -> dict[str, Any]:
    """Triggers and formula for one Deployment of a placement."""
    m, ns, t = p.model, p.namespace, p.model.targets
    g = m.multi_node  # a LeaderWorkerSet: signals from its leader pods
    where = f"ScaledObject {ns}/{deployment}"
    # Pod-derived series are missing only when scraping fails, unless the
    # Deployment may sit at zero replicas (then "none" is a real zero).
    strict = low >= 1

    def pod_query(expr: str) -> str:
        return expr if strict else signals.one(expr)

    triggers: list[dict[str, Any]] = []
    terms: list[str] = []
    queue = t.queue_length or 1
    q = pod_query(signals.queue_waiting(ns, deployment, g))
    triggers.append(_trigger("queue_length", q, queue, where, strict))
    terms.append(f"queue_length / {_number(queue)}")
    batch = BATCH_TARGET * routing.max_num_seqs(m)
    q = pod_query(signals.running_requests(ns, deployment, g))
    triggers.append(_trigger("running_requests", q, batch, where, strict))
    terms.append(f"running_requests / {_number(batch)}")
    if t.kv_cache_usage:
        q = pod_query(signals.kv_cache_sum(ns, deployment, g))
        triggers.append(_trigger("kv_cache_usage", q, t.kv_cache_usage, where, strict))
        terms.append(f"kv_cache_usage / {_number(t.kv_cache_usage)}")
    if t.p95_latency_seconds:
        q = pod_query(signals.ready_replicas(ns, deployment, g))
        triggers.append(_trigger("ready_replicas", q, 1, where, strict))
        p95 = signals.latency_p95(ns, deployment, m.task, group=g)
        # No request in the window is NaN, dropped by `>= 0`: that reads 0
        # while the replicas are scraped, and stays an error when they are not.
        q = signals.idle_when_scraped(p95, ns, deployment, g) if strict else signals.one(p95)
        triggers.append(_trigger("latency_p95", q, t.p95_latency_seconds, where, strict))
        terms.append(f"ready_replicas * latency_p95 / {_number(t.p95_latency_seconds)}")
    if wake:
        q = signals.one(signals.gateway_requests(m.name))
        triggers.append(_trigger("gateway_requests", q, 1, where))
        terms.append("(gateway_requests > 0 ? 1 : 0)")
    demand = _max(terms)
    formula = demand
    if cp.monthly_budget_usd > 0 and cp.environment is not None:
        per_month = signals.environment_usd_per_hour(cp.environment.name)
        budget = _number(cp.monthly_budget_usd)
        q = signals.one(f"{per_month} * {_number(HOURS_PER_MONTH)} / {budget}")
        triggers.append(_trigger("budget_used", q, 1, where))
        # The Deployment's own count (kube-state-metrics), not the replicas
        # Prometheus scrapes: warming pods count, and a scrape outage does not
        # shrink the hold. It exists while the Deployment does: never empty.
        q = signals.deployed_replicas(ns, deployment, g)
        triggers.append(_trigger("deployed_replicas", q, 1, where, strict=True))
        # Over the allotment the ceiling drops to the replicas already deployed.
        formula = f"min({demand}, budget_used >= 1 ? deployed_replicas : {high})"
    modifiers: dict[str, Any] = {"formula": formula, "target": "1", "metricType": "AverageValue"}
    if wake:
        modifiers["activationTarget"] = ACTIVATION_TARGET
    return {"triggers": triggers, "modifiers": modifiers}


def behavior(cooldown: int) -> dict[str, Any]:
    """Up after a short wait (double or +2 pods a minute), down slowly (one pod per cooldown).

    A replica takes 10-30 minutes to serve (node, image, weights, load), so
    chasing a burst of a few seconds buys nodes that idle until
    consolidation; SCALE_UP_WINDOW_SECONDS makes the HPA act on the lowest
    recommendation of that window, i.e. on demand that persisted.
    """
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": SCALE_UP_WINDOW_SECONDS,
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
    sig = scaling(cp, p, deployment, wake, high, low)
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
        "target_api_version": TARGET_API[p.model.multi_node][0],
        "target_kind": TARGET_API[p.model.multi_node][1],
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
