"""The PromQL that autoscaling and monitoring share, built in one place.

KEDA's triggers and the PrometheusRules read the same series (vLLM, DCGM,
Istio, the cost recording rules); building the selectors here keeps the
ScaledObject and the alerts from drifting apart. Every function returns
PromQL text that `promql.check_expr` accepts.

Label assumptions, which the add-ons must keep true:
- vLLM pods are scraped by the model's PodMonitor, so their series carry the
  pod's `namespace` and `pod`.
- DCGM series carry the GPU's pod as `namespace`/`pod`: the gpu-operator's
  ServiceMonitor must set `honorLabels: true` (otherwise Prometheus renames
  them `exported_namespace`/`exported_pod`).
- Istio's standard metrics are scraped from the gateway and sidecars.
"""

from __future__ import annotations

import json

from llmgen.catalog import names

PROMETHEUS_URL = "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
MONITORING_NAMESPACE = "monitoring"

# Recording rules (level:metric:operations, the Prometheus naming convention).
MODEL_GPUS = "model:llmgen_gpus:count"
MODEL_USD_PER_HOUR = "model:llmgen_usd_per_hour:sum"
MODEL_GPU_HOURS_1D = "model:llmgen_gpu_hours:sum1d"
MODEL_USD_1D = "model:llmgen_usd:sum1d"
TEAM_USD_PER_HOUR = "team:llmgen_usd_per_hour:sum"
ENV_USD_PER_HOUR = "environment:llmgen_usd_per_hour:sum"
ENV_USD_PER_MONTH_PROJECTED = "environment:llmgen_usd_per_month:projected"
ENV_BUDGET_USD_PER_MONTH = "environment:llmgen_budget_usd_per_month:allotment"


def label(value: str) -> str:
    """A PromQL string literal (double-quoted, escaped) for a label value."""
    return json.dumps(value)


def _regex_literal(text: str) -> str:
    # RE2 needs '.' escaped; PromQL's string literal then needs the backslash escaped.
    return text.replace(".", "\\\\.")


def pods(deployment: str, group: bool = False) -> str:
    """A regex for the pods of one Deployment, and only that Deployment.

    Deployment pods are `<deployment>-<template hash>-<suffix>`; anchoring on
    exactly two more segments keeps `<model>-canary-...` out of `<model>`'s
    signals.

    With `group`, the leader pods of the LeaderWorkerSet `<deployment>`: its
    leader StatefulSet is named after the set and its pods `<set>-<group
    index>`; workers are `<set>-<group index>-<worker index>` (kubernetes-sigs/lws
    v0.10.0 pkg/controllers/leaderworkerset_controller.go
    `constructLeaderStatefulSetApplyConfiguration`, pod_controller.go
    `constructWorkerStatefulSetApplyConfiguration`). Only leaders run vLLM's
    API server and its /metrics.
    """
    if group:
        return f'"{_regex_literal(deployment)}-[0-9]+"'
    return f'"{_regex_literal(deployment)}-[a-z0-9]+-[a-z0-9]+"'


def selector(namespace: str, deployment: str, group: bool = False, **extra: str) -> str:
    """`{namespace="...", pod=~"..."}` plus any exact-match labels."""
    parts = [f"namespace={label(namespace)}", f"pod=~{pods(deployment, group)}"]
    parts += [f"{k}={label(v)}" for k, v in sorted(extra.items())]
    return "{" + ", ".join(parts) + "}"


def service_host(model: str) -> str:
    """The model Service's cluster-local name, as Istio reports `destination_service`."""
    return f"{model}.{names.model_namespace(model)}.svc.cluster.local"


def one(expr: str) -> str:
    """`expr` made to return exactly one element (0 when it has no data)."""
    return f"({expr}) or vector(0)"


def queue_waiting(ns: str, deployment: str, group: bool = False) -> str:
    return f"sum(vllm:num_requests_waiting{selector(ns, deployment, group)})"


def running_requests(ns: str, deployment: str, group: bool = False) -> str:
    """Sequences the replicas decode right now (the batch), summed."""
    return f"sum(vllm:num_requests_running{selector(ns, deployment, group)})"


def deployed_replicas(ns: str, deployment: str, group: bool = False) -> str:
    """Replicas the Deployment has (kube-state-metrics), ready or still warming up.

    With `group`: kube-state-metrics does not know LeaderWorkerSets; their
    leader StatefulSet, named after the set, has one pod per group.
    """
    if group:
        sel = f"namespace={label(ns)}, statefulset={label(deployment)}"
        return f"sum(kube_statefulset_status_replicas{{{sel}}})"
    sel = f"namespace={label(ns)}, deployment={label(deployment)}"
    return f"sum(kube_deployment_status_replicas{{{sel}}})"


def idle_when_scraped(expr: str, ns: str, deployment: str, group: bool = False) -> str:
    """`expr`, or 0 while the replicas' series exist; no data when they do not.

    For a query that is legitimately empty on an idle model (a latency
    quantile over no requests): idle reads 0, a lost scrape stays an error.
    """
    return f"({expr}) or (0 * {ready_replicas(ns, deployment, group)})"


def ready_replicas(ns: str, deployment: str, group: bool = False) -> str:
    """Replicas Prometheus sees serving: one `num_requests_running` series per pod."""
    return f"count(vllm:num_requests_running{selector(ns, deployment, group)})"


def gpu_utilization_sum(ns: str, deployment: str, group: bool = False) -> str:
    """Per-replica GPU utilisation (percent, averaged over its GPUs), summed over replicas."""
    return f"sum(avg by (pod) (DCGM_FI_DEV_GPU_UTIL{selector(ns, deployment, group)}))"


def kv_cache_sum(ns: str, deployment: str, group: bool = False) -> str:
    """Per-replica KV-cache usage (0..1), summed over replicas."""
    return f"sum(vllm:kv_cache_usage_perc{selector(ns, deployment, group)})"


def latency_histogram(task: str) -> str:
    """Time to first token for generation; whole-request latency for embeddings."""
    if task == "embed":
        return "vllm:e2e_request_latency_seconds_bucket"
    return "vllm:time_to_first_token_seconds_bucket"


def latency_p95(
    ns: str, deployment: str, task: str, window: str = "2m", group: bool = False
) -> str:
    """p95 latency with NaN (no requests in the window) dropped by `>= 0`."""
    hist = latency_histogram(task)
    sel = selector(ns, deployment, group)
    return f"histogram_quantile(0.95, sum by (le) (rate({hist}{sel}[{window}]))) >= 0"


def gateway_requests(model: str, window: str = "2m") -> str:
    """Requests per second sent to the model's Service, seen by the client side.

    Istio reports these even while the model has no pods (the gateway answers
    503), so this is the signal that can wake a model scaled to zero.
    """
    sel = f'reporter="source", destination_service={label(service_host(model))}'
    return f"sum(rate(istio_requests_total{{{sel}}}[{window}]))"


def error_ratio(model: str, window: str = "5m", reporter: str = "destination") -> str:
    """Share of the model's requests answered 5xx, as the server (destination)
    or its callers, the gateway included (source), report them.

    Only the source side sees what never reached a replica: the gateway's
    503 with no healthy endpoint, or after outlier ejection.
    """
    host = label(service_host(model))
    sel = f"reporter={label(reporter)}, destination_service={host}"
    return (
        f'sum(rate(istio_requests_total{{{sel}, response_code=~"5.."}}[{window}]))'
        f" / sum(rate(istio_requests_total{{{sel}}}[{window}]))"
    )


def environment_usd_per_hour(environment: str) -> str:
    return f"sum({ENV_USD_PER_HOUR}{{environment={label(environment)}}})"
