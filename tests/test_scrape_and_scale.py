"""Metrics reach Prometheus; scaling signals mean what they say (issue 13: 1, 4, 6, 7, 10).

Where the consumer can run here it does: promtool evaluates the trigger
queries and alerts against series (idle, absent); Python's `re` applies the
PodMonitor relabelling the way Prometheus does (anchored RE2-compatible
regexes). KEDA's handling of the rendered fields is asserted against its
source at the pinned version (see render/concerns/autoscaling.py's docstring:
pkg/fallback/fallback.go, pkg/scaling/modifiers/formula.go,
pkg/scalers/prometheus_scaler.go at v2.18.1).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmgen.catalog.validate import validate
from llmgen.plan.build import Plan
from llmgen.render.concerns import monitoring
from llmgen.verify.manifests import Manifest, split_documents
from llmgen.verify.wiring import check_scrape_targets

REPO = Path(__file__).resolve().parents[1]
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")


def cluster_docs(files: dict[str, bytes], cluster: str) -> list[dict[str, Any]]:
    prefix = f"generated/clusters/{cluster}/"
    return [
        d
        for path, body in sorted(files.items())
        if path.startswith(prefix) and not path.endswith("kustomization.yaml")
        for d in yaml.safe_load_all(body)
        if d
    ]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


# ---------------------------------------------------------------- point 1


def manifests(files: dict[str, bytes]) -> list[Manifest]:
    return [
        d
        for path, body in sorted(files.items())
        if path.startswith("generated/clusters/")
        for d in split_documents(body.decode(), path)
        if isinstance(d, Manifest)
    ]


def test_every_pod_monitor_port_is_declared_by_its_pods(files: dict[str, bytes]) -> None:
    """Pod discovery emits targets only for declared ports (PodMonitor CRD, `portNumber`).

    The check is verify's own (`check_scrape_targets`, counting the injected
    istio-proxy's http-envoy-prom and the gateway chart's pods), run on the
    rendered tree; the same tree with the old `portNumber: 15020` fails it.
    """
    docs = manifests(files)
    assert any(m.kind == "PodMonitor" for m in docs)
    assert check_scrape_targets(docs) == []
    old = {
        path: body.replace(b"- port: http\n", b"- portNumber: 15020\n")
        for path, body in files.items()
        if path.startswith("generated/clusters/prod-aws-use1/models/")
    }
    found = check_scrape_targets(manifests({**files, **old}))
    assert found and all(d.path.endswith("portNumber") for d in found)


def _relabel(rules: list[dict[str, Any]], meta: dict[str, str]) -> dict[str, str]:
    """Prometheus `replace` relabelling: anchored regex on the joined sources."""
    labels = dict(meta)
    for r in rules:
        value = ";".join(labels.get(s, "") for s in r["sourceLabels"])
        m = re.fullmatch(r["regex"], value)
        if m is None:
            continue
        out = r["replacement"]
        for i, group in enumerate(m.groups(), start=1):
            out = out.replace(f"${{{i}}}", group)
        labels[r["targetLabel"]] = out
    return labels


@pytest.mark.parametrize(
    ("pod_ip", "address"),
    [("10.20.3.4", "10.20.3.4:15020"), ("fd00:10:20::3", "[fd00:10:20::3]:15020")],
)
def test_model_targets_scrape_the_merged_metrics_port(
    files: dict[str, bytes], pod_ip: str, address: str
) -> None:
    docs = cluster_docs(files, "prod-aws-use1")
    pm = next(d for d in of_kind(docs, "PodMonitor") if d["metadata"]["name"] == "bge-m3")
    (ep,) = pm["spec"]["podMetricsEndpoints"]
    assert ep["path"] == monitoring.ISTIO_MERGED_METRICS_PATH
    got = _relabel(
        ep["relabelings"], {"__meta_kubernetes_pod_ip": pod_ip, "__address__": f"{pod_ip}:8000"}
    )
    assert got["__address__"] == address


# ---------------------------------------------------------------- point 6


def scaled_objects(plan: Plan, files: dict[str, bytes]) -> list[dict[str, Any]]:
    return [
        d
        for cp in plan.clusters.values()
        for d in of_kind(cluster_docs(files, cp.name), "ScaledObject")
    ]


#: Triggers whose absence really means zero (kept `or vector(0)`, nulls ignored).
ZERO_WHEN_ABSENT = {"budget_used", "gateway_requests"}


def test_gpu_duty_cycle_does_not_drive_scaling(plan: Plan, files: dict[str, bytes]) -> None:
    for so in scaled_objects(plan, files):
        formula = so["spec"]["advanced"]["scalingModifiers"]["formula"]
        assert "gpu_utilization" not in formula
        assert "running_requests" in formula
        for t in so["spec"]["triggers"]:
            assert "DCGM_FI_DEV_GPU_UTIL" not in t["metadata"]["query"]


def test_a_lost_scrape_is_an_error_keda_falls_back_on(plan: Plan, files: dict[str, bytes]) -> None:
    strict = lenient = 0
    for so in scaled_objects(plan, files):
        spec = so["spec"]
        for t in spec["triggers"]:
            meta = t["metadata"]
            if t["name"] in ZERO_WHEN_ABSENT:
                assert "or vector(0)" in meta["query"] and "ignoreNullValues" not in meta
            elif spec["minReplicaCount"] >= 1 or t["name"] == "deployed_replicas":
                # KEDA's Prometheus scaler: an empty result is an error only when
                # ignoreNullValues is false (default true).
                assert meta["ignoreNullValues"] == "false", t["name"]
                assert "vector(0)" not in meta["query"], t["name"]
                strict += 1
            else:
                # At zero replicas no pod exports anything: absent means idle.
                assert "or vector(0)" in meta["query"], t["name"]
                lenient += 1
        # KEDA v2.18.1 fallback with scalingModifiers: HasValidFallback needs an
        # integer target > 0; the composite becomes target x max(current, replicas).
        mods = spec["advanced"]["scalingModifiers"]
        assert mods["metricType"] == "AverageValue" and int(mods["target"]) == 1
        assert spec["fallback"]["behavior"] == "currentReplicasIfHigher"
        assert spec["fallback"]["replicas"] >= 1
        assert all(t["metricType"] == "AverageValue" for t in spec["triggers"])
        # A burst must persist before capacity with a 10-30 min cold start is bought.
        up = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]
        assert 60 <= up["stabilizationWindowSeconds"] <= 300
    assert strict and lenient


def test_the_asserted_keda_behaviour_is_the_pinned_version() -> None:
    platform = yaml.safe_load((REPO / "catalog" / "platform.yaml").read_text())
    assert platform["spec"]["addons"]["keda"]["version"] == "2.18.1"


def _promtool(
    tmp_path: Path, tests: list[dict[str, Any]], rules: dict[str, Any] | None = None
) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules or {"groups": []}))
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests})
    )
    assert PROMTOOL is not None
    out = subprocess.run(
        [PROMTOOL, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


POD = "llama-3-3-70b-instruct-7d4b9c-x2k4p"
NS = "llm-llama-3-3-70b-instruct"
DEP = f'namespace="{NS}", deployment="llama-3-3-70b-instruct"'


def _vllm_series(running: str, waiting: str = "0x20") -> list[dict[str, str]]:
    sel = f'namespace="{NS}", pod="{POD}"'
    return [
        {"series": f"vllm:num_requests_running{{{sel}}}", "values": running},
        {"series": f"vllm:num_requests_waiting{{{sel}}}", "values": waiting},
        {"series": f"vllm:kv_cache_usage_perc{{{sel}}}", "values": "0x20"},
        {
            "series": f'vllm:time_to_first_token_seconds_bucket{{{sel}, le="+Inf"}}',
            "values": "0x20",
        },
        {
            "series": f"kube_deployment_status_replicas{{{DEP}}}",
            "values": "2x20",
        },
    ]


@needs_promtool
def test_trigger_queries_read_zero_when_idle_and_nothing_when_lost(
    plan: Plan, files: dict[str, bytes], tmp_path: Path
) -> None:
    """Idle replicas read 0 (latency's NaN included); no series reads no sample (a KEDA error)."""
    so = next(
        d
        for d in of_kind(cluster_docs(files, "prod-aws-use1"), "ScaledObject")
        if d["metadata"]["name"] == "llama-3-3-70b-instruct"
    )
    queries = {
        t["name"]: t["metadata"]["query"]
        for t in so["spec"]["triggers"]
        if t["name"] not in ZERO_WHEN_ABSENT
    }
    assert set(queries) >= {
        "queue_length",
        "running_requests",
        "kv_cache_usage",
        "latency_p95",
        "ready_replicas",
    }
    idle_value = {"ready_replicas": 1.0, "deployed_replicas": 2.0}
    idle = [
        {
            "expr": q,
            "eval_time": "10m",
            "exp_samples": [{"labels": "{}", "value": idle_value.get(n, 0.0)}],
        }
        for n, q in queries.items()
    ]
    lost_series = [s for s in _vllm_series("0x20") if s["series"].startswith("kube_")]
    lost = [
        {
            "expr": q,
            "eval_time": "10m",
            "exp_samples": [] if n != "deployed_replicas" else [{"labels": "{}", "value": 2.0}],
        }
        for n, q in queries.items()
    ]
    _promtool(
        tmp_path,
        [
            {"interval": "1m", "input_series": _vllm_series("0x20"), "promql_expr_test": idle},
            {"interval": "1m", "input_series": lost_series, "promql_expr_test": lost},
        ],
    )


@needs_promtool
def test_metrics_absent_alert(plan: Plan, files: dict[str, bytes], tmp_path: Path) -> None:
    rule_doc = next(
        d
        for d in of_kind(cluster_docs(files, "prod-aws-use1"), "PrometheusRule")
        if d["metadata"]["name"] == "llama-3-3-70b-instruct"
    )
    rules = {
        "groups": [
            {
                "name": g["name"],
                "rules": [r for r in g["rules"] if r.get("alert") == "LlmgenMetricsAbsent"],
            }
            for g in rule_doc["spec"]["groups"]
        ]
    }
    rules["groups"] = [g for g in rules["groups"] if g["rules"]]
    (alert,) = rules["groups"][0]["rules"]
    available = {
        "series": f"kube_deployment_status_replicas_available{{{DEP}}}",
        "values": "1x30",
    }
    fired = {
        "exp_labels": {"namespace": NS, **alert["labels"]},
        "exp_annotations": alert["annotations"],
    }
    _promtool(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": [available],
                "alert_rule_test": [
                    {"eval_time": "20m", "alertname": "LlmgenMetricsAbsent", "exp_alerts": [fired]}
                ],
            },
            {
                "interval": "1m",
                "input_series": [available, *_vllm_series("1x30")],
                "alert_rule_test": [
                    {"eval_time": "20m", "alertname": "LlmgenMetricsAbsent", "exp_alerts": []}
                ],
            },
        ],
        rules,
    )


def test_gpu_utilization_target_is_flagged_where_it_is_set(scratch_repo: Path) -> None:
    path = scratch_repo / "catalog" / "models" / "bge-m3.yaml"
    path.write_text(
        path.read_text().replace(
            "      queueLength: 32\n", "      queueLength: 32\n      gpuUtilization: 80\n"
        )
    )
    (d,) = [d for d in validate(scratch_repo).diagnostics if "duty cycle" in str(d)]
    assert str(d).startswith(
        "catalog/models/bge-m3.yaml:33:23: warning: spec.scaling.targets.gpuUtilization:"
    )


# ---------------------------------------------------------------- point 10


def test_prometheus_keeps_its_data_and_has_two_replicas(
    plan: Plan, files: dict[str, bytes]
) -> None:
    for cp in plan.clusters.values():
        (hr,) = [
            d
            for d in of_kind(cluster_docs(files, cp.name), "HelmRelease")
            if d["metadata"]["name"] == "kube-prometheus-stack"
        ]
        spec = hr["spec"]["values"]["prometheus"]["prometheusSpec"]
        assert spec["replicas"] == 2
        claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
        assert (
            claim["accessModes"] == ["ReadWriteOnce"] and claim["resources"]["requests"]["storage"]
        )


def test_budget_brake_holds_deployed_replicas(plan: Plan, files: dict[str, bytes]) -> None:
    checked = 0
    for so in scaled_objects(plan, files):
        formula = so["spec"]["advanced"]["scalingModifiers"]["formula"]
        if "budget_used" not in formula:
            continue
        assert "budget_used >= 1 ? deployed_replicas :" in formula
        q = next(t for t in so["spec"]["triggers"] if t["name"] == "deployed_replicas")["metadata"][
            "query"
        ]
        # A LeaderWorkerSet's leader StatefulSet, named after the set, has
        # one pod per group (tests/test_multinode.py).
        assert q.startswith(
            (
                "sum(kube_deployment_status_replicas{",
                f'sum(kube_statefulset_status_replicas{{namespace="{so["metadata"]["namespace"]}", '
                f'statefulset="{so["spec"]["scaleTargetRef"]["name"]}"}})',
            )
        )
        if q.startswith("sum(kube_statefulset"):
            assert so["spec"]["scaleTargetRef"]["kind"] == "LeaderWorkerSet"
        checked += 1
    assert checked


# ---------------------------------------------------------------- points 4 and 7 (GKE)


def test_gke_node_pools_have_a_config_connector_context(
    plan: Plan, files: dict[str, bytes], crd_schemas: Path
) -> None:
    import json

    import jsonschema

    schema = json.loads(
        (
            crd_schemas / "core.cnrm.cloud.google.com" / "configconnectorcontext_v1beta1.json"
        ).read_text()
    )
    for cp in plan.clusters.values():
        docs = cluster_docs(files, cp.name)
        pools = of_kind(docs, "ContainerNodePool")
        # the GCP weights sync cluster has its own, in llmgen-weights (tests/test_mirror_store.py)
        contexts = [
            c
            for c in of_kind(docs, "ConfigConnectorContext")
            if c["metadata"]["namespace"] != "llmgen-weights"
        ]
        if cp.provider.name != "gcp":
            assert not pools and not contexts
            continue
        (ctx,) = contexts
        jsonschema.validate(ctx, schema)
        assert ctx["metadata"]["name"] == "configconnectorcontext.core.cnrm.cloud.google.com"
        assert {p["metadata"]["namespace"] for p in pools} == {ctx["metadata"]["namespace"]}
        assert ctx["spec"]["googleServiceAccount"].endswith(".iam.gserviceaccount.com")


def test_gke_weights_land_on_local_ssds(plan: Plan, files: dict[str, bytes]) -> None:
    want = {"a3-highgpu-8g": 16, "a2-ultragpu-2g": 2, "g2-standard-8": 1, "g2-standard-48": 4}
    seen = set()
    for cp in plan.clusters.values():
        for pool in of_kind(cluster_docs(files, cp.name), "ContainerNodePool"):
            cfg = pool["spec"]["nodeConfig"]
            machine = cfg["machineType"]
            assert cfg["ephemeralStorageLocalSsdConfig"]["localSsdCount"] == want[machine]
            seen.add(machine)
    assert seen == set(want)


@needs_promtool
def test_gateway_side_503s_alert(plan: Plan, files: dict[str, bytes], tmp_path: Path) -> None:
    """No healthy endpoint: the gateway answers 503 and no replica ever reports the request."""
    rule_doc = next(
        d
        for d in of_kind(cluster_docs(files, "prod-aws-use1"), "PrometheusRule")
        if d["metadata"]["name"] == "llama-3-3-70b-instruct"
    )
    names = {"LlmgenGatewayErrorRate", "LlmgenHighErrorRate"}

    def static(r: dict[str, Any]) -> dict[str, Any]:
        # descriptions quote $value; summary and runbook are compared exactly
        notes = {k: v for k, v in r["annotations"].items() if k != "description"}
        return {**r, "annotations": notes}

    groups = [
        {"name": g["name"], "rules": [static(r) for r in g["rules"] if r.get("alert") in names]}
        for g in rule_doc["spec"]["groups"]
    ]
    rules = {"groups": [g for g in groups if g["rules"]]}
    alert = next(
        r for g in rules["groups"] for r in g["rules"] if r["alert"] == "LlmgenGatewayErrorRate"
    )
    host = "llama-3-3-70b-instruct.llm-llama-3-3-70b-instruct.svc.cluster.local"
    series = [
        {
            "series": f'istio_requests_total{{reporter="source", destination_service="{host}", '
            'response_code="503"}',
            "values": "0+60x30",
        },
        {
            "series": f'istio_requests_total{{reporter="source", destination_service="{host}", '
            'response_code="200"}',
            "values": "0+60x30",
        },
    ]
    _promtool(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "25m",
                        "alertname": "LlmgenGatewayErrorRate",
                        "exp_alerts": [
                            {"exp_labels": alert["labels"], "exp_annotations": alert["annotations"]}
                        ],
                    },
                    # the replicas never saw these requests: the server-side alert stays silent
                    {"eval_time": "25m", "alertname": "LlmgenHighErrorRate", "exp_alerts": []},
                ],
            }
        ],
        rules,
    )
