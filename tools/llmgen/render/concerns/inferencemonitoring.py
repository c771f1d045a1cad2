"""Scraping and alerting the endpoint pickers of InferencePool environments.

Per model, beside its pools (models/<model>/):

- a `PodMonitor` for its pickers. The picker serves controller-runtime's
  registry on its `metrics` port 9090 at `/metrics` (gateway-api-inference-
  extension v1.3.0 pkg/epp/server/options.go `MetricsPort`, the chart's
  ServiceMonitor path), authenticated by default; llmgen runs it with
  `--metrics-endpoint-auth=false` and the `prometheus.io/*` annotations, so
  the sidecar merges it into port 15020 outside mTLS, as for vLLM: the
  PodMonitor selects the declared `metrics` port and rewrites the address;
- a `PrometheusRule` with three alerts on the picker's own series
  (pkg/epp/metrics/metrics.go at v1.3.0: subsystem `inference_pool` gauges
  labelled `name` = the pool, `inference_objective_request_total` and
  `_request_error_total`):
  - LlmgenEndpointPickerDown: no available picker replica; the pool's
    requests fail (endpointPickerRef failureMode FailClose);
  - LlmgenInferencePoolEmpty: the picker sees no ready pod while the
    track's Deployment has available replicas (the pool's selector, target
    port, the picker's RBAC or its scrape of the pods is wrong);
  - LlmgenEndpointPickerErrors: more than 5% of the picker's requests fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgen.plan.signals import label
from llmgen.render.concerns import inferencepool, monitoring
from llmgen.render.types import Output, file_name

if TYPE_CHECKING:
    from llmgen.plan.build import Placement
    from llmgen.render.concerns.istio import MeshView

ERROR_RATIO = monitoring.ERROR_RATIO


def _available(ns: str, deployment: str) -> str:
    sel = f"namespace={label(ns)}, deployment={label(deployment)}"
    return f"sum(kube_deployment_status_replicas_available{{{sel}}})"


def picker_alerts(mv: MeshView, p: Placement) -> list[dict[str, Any]]:
    base = monitoring.runbook_base(mv.cp.platform)
    ns = p.namespace
    alerts: list[dict[str, Any]] = []
    for track in inferencepool.tracks(p):
        pool = inferencepool.pool_name(p.name, track)
        epp = inferencepool.epp_name(pool)
        who = f"InferencePool {pool} in {mv.cp.name}"
        keep = {"pool": pool, "namespace": ns}
        alerts.append(
            monitoring.alert_rule(
                base,
                "LlmgenEndpointPickerDown",
                f"({_available(ns, epp)} or vector(0)) < 1",
                "5m",
                "critical",
                f"No endpoint picker runs for {who}",
                "The pool's requests fail while its picker is unavailable (failureMode FailClose).",
                keep,
            )
        )
        ready = f"inference_pool_ready_pods{{namespace={label(ns)}, name={label(pool)}}}"
        alerts.append(
            monitoring.alert_rule(
                base,
                "LlmgenInferencePoolEmpty",
                f"max({ready}) == 0 and on() ({_available(ns, pool)} > 0)",
                "5m",
                "critical",
                f"The endpoint picker of {who} sees no ready replica",
                "The Deployment has available replicas but the picker counts none: check "
                "the pool's selector and target port, and the picker's access to the pods.",
                keep,
            )
        )
    sel = f"{{namespace={label(ns)}}}"
    alerts.append(
        monitoring.alert_rule(
            base,
            "LlmgenEndpointPickerErrors",
            f"sum(rate(inference_objective_request_error_total{sel}[5m]))"
            f" / sum(rate(inference_objective_request_total{sel}[5m])) > {ERROR_RATIO}",
            "10m",
            "warning",
            f"The endpoint picker of {p.name} in {mv.cp.name} fails requests",
            "More than 5% of the picker's requests failed over 10 minutes; "
            "value {{ $value | humanizePercentage }}.",
            {"namespace": ns},
        )
    )
    return alerts


def model_outputs(mv: MeshView, p: Placement) -> Iterator[Output]:
    folder = f"models/{p.name}"
    name = f"{p.name}-endpoint-picker"
    yield Output(
        f"{folder}/{file_name('PodMonitor', name)}",
        "monitoring/podmonitor.yaml.j2",
        {
            "name": name,
            "namespace": p.namespace,
            "labels": p.labels,
            "selector": {inferencepool.PICKER_OF_LABEL: p.name},
            "port": "metrics",
            "relabelings": monitoring.merged_metrics_relabelings(),
            "path": monitoring.ISTIO_MERGED_METRICS_PATH,
            "interval": monitoring.SCRAPE_INTERVAL,
        },
        p.input_hash,
    )
    yield Output(
        f"{folder}/{file_name('PrometheusRule', name)}",
        "monitoring/prometheusrule.yaml.j2",
        {
            "name": name,
            "namespace": p.namespace,
            "labels": p.labels,
            "groups": [{"name": f"llmgen-{name}", "rules": picker_alerts(mv, p)}],
        },
        p.input_hash,
    )
