"""Monitoring: scrape vLLM, record GPU cost, alert on SLOs and budget.

Per model (in its folder): a PodMonitor for vLLM's /metrics and a
PrometheusRule with the model's cost recording rules and serving alerts.
Per cluster (infrastructure/configs): a PrometheusRule rolling cost up to
team and environment, projecting the month, and alerting on the
environment's budget thresholds. DCGM is scraped by the gpu-operator's own
ServiceMonitor (its values enable it), so nothing is rendered for it here.

Every number in a rule (prices, thresholds, budget) is decided here from the
plan; templates only lay the groups out. Every expression is parsed before
it is rendered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgen.catalog import names
from llmgen.plan import signals
from llmgen.plan.build import HOURS_PER_MONTH
from llmgen.plan.promql import require
from llmgen.plan.signals import label
from llmgen.render.concerns import group
from llmgen.render.concerns.istio import INGRESS_LABELS, INGRESS_NAMESPACE
from llmgen.render.types import Output, file_name

# Istio's merged Prometheus endpoint on every sidecar (pilot-agent: the app's
# /metrics plus Envoy's), served outside mTLS. No container declares 15020,
# and Kubernetes pod discovery only emits declared ports, so the PodMonitor
# selects the pod's declared `http` port (exactly one target per pod) and
# rewrites the address to 15020: the CRD's own advice for an undeclared port
# (monitoring.coreos.com PodMonitor podMetricsEndpoints[].portNumber).
ISTIO_MERGED_METRICS_PORT = 15020
ISTIO_MERGED_METRICS_PATH = "/stats/prometheus"
#: The port every Istio proxy declares (injection template, gateway chart):
#: Envoy's own stats, which on a gateway are the whole story.
ENVOY_PROM_PORT_NAME = "http-envoy-prom"
GATEWAY_MONITOR = "istio-ingressgateway"

if TYPE_CHECKING:
    from llmgen.catalog.model import Platform
    from llmgen.plan.build import ClusterPlan, Placement

SCRAPE_INTERVAL = "15s"
RULE_INTERVAL = "1m"
COST_RULE_NAME = "llmgen-cost"
# Serving alerts: how far past the model's own targets counts as trouble.
QUEUE_BACKLOG_FACTOR = 2
KV_CACHE_PRESSURE = 0.95
ERROR_RATIO = 0.05
# The budget forecast looks this far ahead along the last hours' spend trend.
FORECAST_HOURS = 72
FORECAST_WINDOW = "6h"


def merged_metrics_relabelings() -> list[dict[str, Any]]:
    """Point the target at the pod IP's merged-metrics port (IPv4, or bracketed IPv6)."""
    port = ISTIO_MERGED_METRICS_PORT
    return [
        {
            "sourceLabels": ["__meta_kubernetes_pod_ip"],
            "regex": "([0-9.]+)",
            "targetLabel": "__address__",
            "replacement": f"${{1}}:{port}",
        },
        {
            "sourceLabels": ["__meta_kubernetes_pod_ip"],
            "regex": "([0-9a-fA-F:]+:[0-9a-fA-F:]*)",
            "targetLabel": "__address__",
            "replacement": f"[${{1}}]:{port}",
        },
    ]


def runbook_base(platform: Platform) -> str:
    """The web page of docs/runbooks.md in the GitOps repository Flux pulls from."""
    url = platform.git_url
    # Any userinfo (`user@`, `user:password@`) stays out of the alert annotation.
    m = re.match(r"(?:ssh://)?git@([^:/]+)[:/](.+?)(?:\.git)?$", url) or re.match(
        r"https?://(?:[^/@]*@)?([^/@]+)/(.+?)(?:\.git)?$", url
    )
    if m is None:
        return "https://github.com/llmgen/llmgen/blob/main/docs/runbooks.md"
    return f"https://{m.group(1)}/{m.group(2)}/blob/{platform.git_branch}/docs/runbooks.md"


def _num(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _alert(
    base: str,
    name: str,
    expr: str,
    duration: str,
    severity: str,
    summary: str,
    description: str,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": require(expr, f"alert {name}"),
        "for": duration,
        "labels": {"severity": severity, **(labels or {})},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{base}#{name.lower()}",
        },
    }


#: the alert builder, for concerns with alerts of their own (weightsync)
alert_rule = _alert


def _record(name: str, expr: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"record": name, "expr": require(expr, f"recording rule {name}")}
    if labels:
        rule["labels"] = labels
    return rule


def cost_labels(p: Placement) -> dict[str, str]:
    return {
        "model": p.model.name,
        "team": p.model.team,
        "cost_center": p.model.cost_center,
        "environment": p.environment.name,
    }


def model_groups(cp: ClusterPlan, p: Placement) -> list[dict[str, Any]]:
    """The model's recording rules (cost) and serving alerts."""
    m, ns, t = p.model, p.namespace, p.model.targets
    base = runbook_base(cp.platform)
    keep = cost_labels(p)
    sel = f"{{model={label(m.name)}}}"
    ns_sel = f"{{namespace={label(ns)}}}"
    records = [
        # DCGM labels each GPU with the pod holding it: a count is GPUs in use.
        _record(signals.MODEL_GPUS, f"count(DCGM_FI_DEV_GPU_UTIL{ns_sel}) or vector(0)", keep),
        _record(
            signals.MODEL_USD_PER_HOUR,
            f"sum({signals.MODEL_GPUS}{sel}) * {_num(p.gpu_hourly_usd)}",
            keep,
        ),
        _record(
            signals.MODEL_GPU_HOURS_1D,
            f"sum(avg_over_time({signals.MODEL_GPUS}{sel}[1d])) * 24",
            keep,
        ),
        _record(
            signals.MODEL_USD_1D,
            f"sum(avg_over_time({signals.MODEL_USD_PER_HOUR}{sel}[1d])) * 24",
            keep,
        ),
    ]
    who = f"{m.name} in {cp.name}"
    alerts = []
    queue = t.queue_length or 1
    alerts.append(
        _alert(
            base,
            "LlmgenQueueBacklog",
            f"sum(vllm:num_requests_waiting{ns_sel})"
            f" / clamp_min(count(vllm:num_requests_running{ns_sel}), 1)"
            f" > {_num(QUEUE_BACKLOG_FACTOR * queue)}",
            "10m",
            "warning",
            f"Requests are queueing for {who}",
            f"More than {_num(QUEUE_BACKLOG_FACTOR * queue)} requests wait per replica "
            f"({_num(queue)} is the scaling target); value {{{{ $value | humanize }}}}.",
        )
    )
    if t.p95_latency_seconds:
        what = "end-to-end latency" if m.task == "embed" else "time to first token"
        p95 = signals.latency_p95(ns, m.name, m.task, "5m", m.multi_node)
        alerts.append(
            _alert(
                base,
                "LlmgenLatencySLOBreach",
                f"({p95}) > {_num(t.p95_latency_seconds)}",
                "10m",
                "critical",
                f"p95 {what} of {who} is over its {_num(t.p95_latency_seconds)}s target",
                f"p95 {what} has been {{{{ $value | humanizeDuration }}}} for 10 minutes "
                f"(target {_num(t.p95_latency_seconds)}s).",
            )
        )
    alerts += [
        _alert(
            base,
            "LlmgenMetricsAbsent",
            _absent(ns, m.name, m.multi_node),
            "10m",
            "critical",
            f"Prometheus has no vLLM metrics from {who}",
            "Replicas are available but none of their vLLM series is scraped (PodMonitor, "
            "sidecar or NetworkPolicy): autoscaling runs on KEDA's fallback and the "
            "serving alerts are blind.",
        ),
        _alert(
            base,
            "LlmgenKVCachePressure",
            f"max(vllm:kv_cache_usage_perc{ns_sel}) > {_num(KV_CACHE_PRESSURE)}",
            "10m",
            "warning",
            f"KV cache of {who} is nearly full",
            "A replica's KV cache is {{ $value | humanizePercentage }} full; vLLM preempts "
            "requests when it runs out.",
        ),
        _alert(
            base,
            "LlmgenHighErrorRate",
            f"{signals.error_ratio(m.name)} > {_num(ERROR_RATIO)}",
            "10m",
            "critical",
            f"{who} answers with 5xx errors",
            "{{ $value | humanizePercentage }} of requests fail (threshold "
            f"{_num(ERROR_RATIO * 100)}%).",
        ),
        _alert(
            base,
            "LlmgenGatewayErrorRate",
            f"{signals.error_ratio(m.name, reporter='source')} > {_num(ERROR_RATIO)}",
            "10m",
            "critical",
            f"Callers of {who} get 5xx errors",
            "{{ $value | humanizePercentage }} of requests fail as the gateway and other "
            "callers see them, including those no replica answered (no healthy endpoint), "
            f"threshold {_num(ERROR_RATIO * 100)}%.",
        ),
        _alert(
            base,
            "LlmgenReplicasPinnedAtMax",
            _pinned(ns, m.name),
            "30m",
            "warning",
            f"{who} has been at its maximum replicas for 30 minutes",
            "The autoscaler wants more replicas than the budget-capped maximum "
            f"({p.max_replicas} in this cluster) allows; see `llmgen plan`.",
        ),
    ]
    return [
        {"name": f"llmgen-{m.name}-cost", "interval": RULE_INTERVAL, "rules": records},
        {"name": f"llmgen-{m.name}-serving", "rules": alerts},
    ]


def _absent(ns: str, deployment: str, group: bool = False) -> str:
    """No vLLM series while the Deployment (or a LeaderWorkerSet's leader
    StatefulSet, named after the set) has available replicas."""
    running = f"vllm:num_requests_running{{namespace={label(ns)}}}"
    kind = "statefulset" if group else "deployment"
    sel = f"namespace={label(ns)}, {kind}={label(deployment)}"
    return f"absent({running}) and on() (sum(kube_{kind}_status_replicas_available{{{sel}}}) > 0)"


def _pinned(ns: str, deployment: str) -> str:
    hpa = f"{names.KEDA_HPA_PREFIX}{deployment}"
    sel = f"{{namespace={label(ns)}, horizontalpodautoscaler={label(hpa)}}}"
    return (
        f"kube_horizontalpodautoscaler_status_current_replicas{sel}"
        f" >= kube_horizontalpodautoscaler_spec_max_replicas{sel}"
    )


def cluster_groups(cp: ClusterPlan) -> list[dict[str, Any]]:
    """Cost roll-ups, the month's projection and budget alerts for the cluster."""
    env = cp.environment
    assert env is not None
    base = runbook_base(cp.platform)
    budget = cp.monthly_budget_usd
    env_sel = f"{{environment={label(env.name)}}}"
    keep = {"environment": env.name}
    records = [
        _record(
            signals.TEAM_USD_PER_HOUR,
            f"sum by (team, environment) ({signals.MODEL_USD_PER_HOUR})",
        ),
        _record(
            signals.ENV_USD_PER_HOUR,
            f"sum by (environment) ({signals.MODEL_USD_PER_HOUR})",
        ),
        _record(
            signals.ENV_USD_PER_MONTH_PROJECTED,
            f"avg_over_time({signals.ENV_USD_PER_HOUR}{env_sel}[1d]) * {_num(HOURS_PER_MONTH)}",
        ),
        _record(signals.ENV_BUDGET_USD_PER_MONTH, f"vector({_num(budget)})", keep),
    ]
    alerts = []
    for pct in sorted(set(env.alert_thresholds)):
        amount = budget * pct / 100
        alerts.append(
            _alert(
                base,
                "LlmgenBudgetThreshold",
                f"{signals.ENV_USD_PER_MONTH_PROJECTED}{env_sel} > {_num(amount)}",
                "30m",
                "critical" if pct >= 100 else "warning",
                f"{env.name} in {cp.name} is on course to spend over {_num(pct)}% of its budget",
                f"Projected monthly GPU spend is ${{{{ $value | humanize }}}}; {_num(pct)}% of "
                f"this cluster's ${_num(budget)} allotment of the environment budget is "
                f"${_num(amount)}.",
                {"threshold": _num(pct)},
            )
        )
    horizon = FORECAST_HOURS * 3600
    alerts.append(
        _alert(
            base,
            "LlmgenBudgetForecast",
            f"predict_linear({signals.ENV_USD_PER_HOUR}{env_sel}[{FORECAST_WINDOW}], {horizon})"
            f" * {_num(HOURS_PER_MONTH)} > {_num(budget)}",
            "1h",
            "warning",
            f"{env.name} in {cp.name} is trending over budget",
            f"At the last {FORECAST_WINDOW}' trend, spend in {FORECAST_HOURS}h would run at "
            f"${{{{ $value | humanize }}}} a month, over this cluster's ${_num(budget)} allotment.",
        )
    )
    return [
        {"name": "llmgen-cost-rollup", "interval": RULE_INTERVAL, "rules": records},
        {"name": "llmgen-budget", "rules": alerts},
    ]


def outputs(cp: ClusterPlan) -> Iterator[Output]:
    for p in cp.placements:
        folder = f"models/{p.name}"
        yield Output(
            f"{folder}/{file_name('PodMonitor', p.name)}",
            "monitoring/podmonitor.yaml.j2",
            {
                "name": p.name,
                "namespace": p.namespace,
                "labels": p.labels,
                # A group's leader serves vLLM's API and /metrics; workers run Ray only.
                "selector": {**p.selector_labels, **group.leader_labels(p)},
                # STRICT mTLS refuses Prometheus' plain-text scrape of the
                # serving port; the sidecar merges vLLM's /metrics with its own
                # (istio_requests_total) on 15020, outside mTLS.
                "port": "http",
                "relabelings": merged_metrics_relabelings(),
                "path": ISTIO_MERGED_METRICS_PATH,
                "interval": SCRAPE_INTERVAL,
            },
            p.input_hash,
        )
        yield Output(
            f"{folder}/{file_name('PrometheusRule', p.name)}",
            "monitoring/prometheusrule.yaml.j2",
            {
                "name": p.name,
                "namespace": p.namespace,
                "labels": p.labels,
                "groups": model_groups(cp, p),
            },
            p.input_hash,
        )
    if cp.environment is not None:
        # The ingress gateway's request counts wake scaled-to-zero models and
        # feed the error-rate alerts; its Envoy serves them on the same port.
        yield Output(
            f"infrastructure/configs/monitoring/{file_name('PodMonitor', GATEWAY_MONITOR)}",
            "monitoring/podmonitor.yaml.j2",
            {
                "name": GATEWAY_MONITOR,
                "namespace": INGRESS_NAMESPACE,
                "labels": cp.labels,
                "selector": INGRESS_LABELS,
                "port": ENVOY_PROM_PORT_NAME,
                "relabelings": [],
                "path": ISTIO_MERGED_METRICS_PATH,
                "interval": SCRAPE_INTERVAL,
            },
            cp.input_hash,
        )
    if cp.environment is not None and cp.monthly_budget_usd > 0:
        yield Output(
            f"infrastructure/configs/{file_name('PrometheusRule', COST_RULE_NAME)}",
            "monitoring/prometheusrule.yaml.j2",
            {
                "name": COST_RULE_NAME,
                "namespace": signals.MONITORING_NAMESPACE,
                "labels": cp.labels,
                "groups": cluster_groups(cp),
            },
            cp.input_hash,
        )
