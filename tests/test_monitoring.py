"""PodMonitors and PrometheusRules: strict schemas, promtool check, promtool unit tests."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from llmgen.catalog import names
from llmgen.plan.build import Plan
from llmgen.plan.promql import check_expr
from rendered import of_kind, render_repo

REPO = Path(__file__).resolve().parents[1]
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool (Debian prometheus) not installed"
)

Docs = dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def shipped() -> tuple[Plan, Docs]:
    return render_repo(REPO)


def _rule(doc: dict[str, Any], name: str, threshold: str | None = None) -> dict[str, Any]:
    for group in doc["spec"]["groups"]:
        for rule in group["rules"]:
            if rule.get("alert", rule.get("record")) == name and (
                threshold is None or rule["labels"].get("threshold") == threshold
            ):
                return dict(rule)
    raise KeyError(name)


@pytest.mark.parametrize(
    ("kind", "schema"),
    [("PodMonitor", "podmonitor_v1.json"), ("PrometheusRule", "prometheusrule_v1.json")],
)
def test_documents_are_valid_against_the_crds(
    shipped: Any, crd_schemas: Path, kind: str, schema: str
) -> None:
    validator = jsonschema.Draft7Validator(
        json.loads((crd_schemas / "monitoring.coreos.com" / schema).read_text())
    )
    found = of_kind(shipped[1], kind)
    assert found
    for cluster, doc in found:
        errors = [e.message for e in validator.iter_errors(doc)]
        assert not errors, (cluster, doc["metadata"]["name"], errors)


def test_every_expression_parses_and_every_alert_has_a_runbook(shipped: Any) -> None:
    for _, doc in of_kind(shipped[1], "PrometheusRule"):
        for group in doc["spec"]["groups"]:
            for rule in group["rules"]:
                assert check_expr(rule["expr"]) is None, rule["expr"]
                if "alert" in rule:
                    assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
                    assert rule["annotations"]["runbook_url"].startswith(
                        "https://github.com/example-org/llm-platform/blob/main/docs/runbooks.md#"
                    )


def test_prices_and_thresholds_come_from_the_plan(shipped: Any) -> None:
    plan, docs = shipped
    for cluster, doc in of_kind(docs, "PrometheusRule"):
        cp = plan.clusters[cluster]
        if doc["metadata"]["namespace"] == names.WEIGHTS_NAMESPACE:
            continue  # the weights sync alerts (tests/test_weightsync.py)
        if doc["metadata"]["name"].endswith("-endpoint-picker"):
            continue  # the pickers' alerts (tests/test_inference_pools.py)
        if doc["metadata"]["namespace"] == "monitoring":
            env = cp.environment
            assert env is not None
            thresholds = [
                r
                for g in doc["spec"]["groups"]
                for r in g["rules"]
                if r.get("alert") == "LlmgenBudgetThreshold"
            ]
            assert [r["labels"]["threshold"] for r in thresholds] == [
                f"{t:g}" for t in sorted(env.alert_thresholds)
            ]
            for r in thresholds:
                amount = cp.monthly_budget_usd * float(r["labels"]["threshold"]) / 100
                assert float(r["expr"].rsplit(" > ", 1)[1]) == pytest.approx(amount)
            continue
        p = next(p for p in cp.placements if p.namespace == doc["metadata"]["namespace"])
        usd = _rule(doc, "model:llmgen_usd_per_hour:sum")
        assert float(usd["expr"].rsplit(" * ", 1)[1]) == pytest.approx(
            p.replica_hourly_usd / p.model.gpu_count
        )
        assert usd["labels"] == {
            "model": p.model.name,
            "team": p.model.team,
            "cost_center": p.model.cost_center,
            "environment": p.environment.name,
        }


@needs_promtool
def test_promtool_checks_every_rule_group(shipped: Any, tmp_path: Path) -> None:
    files = []
    for i, (_, doc) in enumerate(of_kind(shipped[1], "PrometheusRule")):
        path = tmp_path / f"rules-{i}.yaml"
        path.write_text(yaml.safe_dump(doc["spec"]))
        files.append(str(path))
    out = subprocess.run(
        [PROMTOOL, "check", "rules", *files], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _static(rules: dict[str, Any]) -> dict[str, Any]:
    """The rules with each alert's description dropped: it quotes $value, which the
    tests below do not restate; summary and runbook_url are still compared exactly."""
    groups = []
    for g in rules["groups"]:
        out = []
        for r in g["rules"]:
            r = dict(r)
            if "annotations" in r:
                r["annotations"] = {k: v for k, v in r["annotations"].items() if k != "description"}
            out.append(r)
        groups.append({**g, "rules": out})
    return {"groups": groups}


def _expected(rule: dict[str, Any], **labels: str) -> dict[str, Any]:
    notes = {k: v for k, v in rule["annotations"].items() if k != "description"}
    return {"exp_labels": {**rule["labels"], **labels}, "exp_annotations": notes}


def _promtool_test(
    tmp_path: Path, rules: dict[str, Any], tests: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_static(rules)))
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests})
    )
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )


@needs_promtool
def test_budget_alerts_fire_at_their_thresholds_and_not_below(shipped: Any, tmp_path: Path) -> None:
    plan, docs = shipped
    cluster = "staging-aws-use1"
    cp = plan.clusters[cluster]
    doc = next(
        d
        for c, d in of_kind(docs, "PrometheusRule")
        if c == cluster and d["metadata"]["name"] == "llmgen-cost"
    )
    allotment = cp.monthly_budget_usd
    # A steady hourly spend that projects to 90% of the allotment: over 80%, under 100%.
    steady = f"{allotment * 0.9 / 730}x600"
    labels = (
        'model:llmgen_usd_per_hour:sum{model="llama-3-1-8b-instruct", team="assistants",'
        ' environment="staging"}'
    )
    alert_80 = _rule(doc, "LlmgenBudgetThreshold", "80")
    forecast = _rule(doc, "LlmgenBudgetForecast")
    tests = [
        {
            "interval": "1m",
            "input_series": [{"series": labels, "values": steady}],
            "alert_rule_test": [
                {
                    "eval_time": "2h",
                    "alertname": "LlmgenBudgetThreshold",
                    # 90% is over the 80% threshold only: the 100% alert stays silent.
                    "exp_alerts": [_expected(alert_80, environment="staging")],
                },
                # Too early: the condition holds, but not yet for 30 minutes.
                {"eval_time": "20m", "alertname": "LlmgenBudgetThreshold", "exp_alerts": []},
                # The steady spend never trends upward: no forecast.
                {"eval_time": "8h", "alertname": "LlmgenBudgetForecast", "exp_alerts": []},
            ],
        },
        {
            # Spend doubles every few hours: the forecast warns while the projection is still low.
            "interval": "10m",
            "input_series": [{"series": labels, "values": f"0+{allotment / 730 / 40}x100"}],
            "alert_rule_test": [
                {
                    "eval_time": "10h",
                    "alertname": "LlmgenBudgetForecast",
                    "exp_alerts": [_expected(forecast, environment="staging")],
                },
                {"eval_time": "10h", "alertname": "LlmgenBudgetThreshold", "exp_alerts": []},
            ],
        },
    ]
    out = _promtool_test(tmp_path, doc["spec"], tests)
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_latency_slo_alert_fires_only_when_p95_is_over_target(shipped: Any, tmp_path: Path) -> None:
    plan, docs = shipped
    cluster = "prod-aws-use1"
    doc = next(
        d
        for c, d in of_kind(docs, "PrometheusRule")
        if c == cluster and d["metadata"]["name"] == "llama-3-3-70b-instruct"
    )
    rules = {"groups": [g for g in doc["spec"]["groups"] if g["name"].endswith("-serving")]}
    pod = 'namespace="llm-llama-3-3-70b-instruct", pod="llama-3-3-70b-instruct-6d4f9c7b8-k2x9p"'
    bucket = "vllm:time_to_first_token_seconds_bucket"

    def series(le: str, per_min: int) -> dict[str, str]:
        return {"series": f'{bucket}{{{pod}, le="{le}"}}', "values": f"0+{per_min}x60"}

    # Slow: 10 req/min, 8 of them over 5 s -> p95 ~ 9.5 s (> 3 s target).
    slow = [series("1", 1), series("2.5", 2), series("5", 2), series("10", 10), series("+Inf", 10)]
    # Fast: all 10 within 1 s -> p95 < 1 s.
    fast = [
        series("1", 10),
        series("2.5", 10),
        series("5", 10),
        series("10", 10),
        series("+Inf", 10),
    ]
    tests = [
        {
            "interval": "1m",
            "input_series": slow,
            "alert_rule_test": [
                {
                    "eval_time": "30m",
                    "alertname": "LlmgenLatencySLOBreach",
                    "exp_alerts": [_expected(_rule(doc, "LlmgenLatencySLOBreach"))],
                }
            ],
        },
        {
            "interval": "1m",
            "input_series": fast,
            "alert_rule_test": [
                {"eval_time": "30m", "alertname": "LlmgenLatencySLOBreach", "exp_alerts": []}
            ],
        },
        {
            # No traffic at all: the quantile is NaN, dropped, and nothing fires.
            "interval": "1m",
            "input_series": [{"series": f'{bucket}{{{pod}, le="+Inf"}}', "values": "0x60"}],
            "alert_rule_test": [
                {"eval_time": "30m", "alertname": "LlmgenLatencySLOBreach", "exp_alerts": []}
            ],
        },
    ]
    out = _promtool_test(tmp_path, rules, tests)
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_cost_recording_rules_multiply_gpus_by_the_plans_price(
    shipped: Any, tmp_path: Path
) -> None:
    plan, docs = shipped
    cluster = "prod-aws-use1"
    p = next(p for p in plan.clusters[cluster].placements if p.name == "llama-3-3-70b-instruct")
    doc = next(
        d
        for c, d in of_kind(docs, "PrometheusRule")
        if c == cluster and d["metadata"]["name"] == p.name
    )
    rules = {"groups": [g for g in doc["spec"]["groups"] if g["name"].endswith("-cost")]}
    # One replica: 4 GPUs held by the model's pod, one GPU of another namespace.
    gpus = [
        {
            "series": f'DCGM_FI_DEV_GPU_UTIL{{gpu="{i}", namespace="{p.namespace}", pod="x"}}',
            "values": "50x120",
        }
        for i in range(4)
    ] + [
        {"series": 'DCGM_FI_DEV_GPU_UTIL{gpu="4", namespace="other", pod="y"}', "values": "50x120"}
    ]
    keep = {"model": p.name, "team": "assistants", "cost_center": "cc-1042", "environment": "prod"}
    tests = [
        {
            "interval": "1m",
            "input_series": gpus,
            "promql_expr_test": [
                {
                    "expr": "model:llmgen_gpus:count",
                    "eval_time": "1h",
                    "exp_samples": [
                        {"labels": f"model:llmgen_gpus:count{_labels(keep)}", "value": 4}
                    ],
                },
                {
                    "expr": "model:llmgen_usd_per_hour:sum",
                    "eval_time": "1h",
                    "exp_samples": [
                        {
                            "labels": f"model:llmgen_usd_per_hour:sum{_labels(keep)}",
                            "value": 4 * p.gpu_hourly_usd,
                        }
                    ],
                },
            ],
        }
    ]
    out = _promtool_test(tmp_path, rules, tests)
    assert out.returncode == 0, out.stdout + out.stderr


def _labels(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def test_scrapes_go_through_istio_merged_metrics_past_strict_mtls(shipped: Any) -> None:
    # STRICT mTLS would refuse a plain-text scrape of the serving port; every
    # model PodMonitor selects the declared vLLM port and rewrites the address
    # to the sidecar's merged endpoint (15020, undeclared), which the model
    # namespaces' NetworkPolicies admit from the monitoring namespace.
    monitors = of_kind(shipped[1], "PodMonitor")
    assert monitors
    for _cluster, doc in monitors:
        (endpoint,) = doc["spec"]["podMetricsEndpoints"]
        assert endpoint["path"] == "/stats/prometheus" and "portNumber" not in endpoint
        if doc["metadata"]["namespace"] == "istio-ingress":
            assert endpoint["port"] == "http-envoy-prom"
            continue
        # An InferencePool's picker: its declared metrics port (tests/test_inference_pools.py).
        picker = doc["metadata"]["name"].endswith("-endpoint-picker")
        assert endpoint["port"] == ("metrics" if picker else "http")
        assert {r["replacement"] for r in endpoint["relabelings"]} == {
            "${1}:15020",
            "[${1}]:15020",
        }
    policies = of_kind(shipped[1], "NetworkPolicy")
    allow_scrape = [
        d
        for _c, d in policies
        if any(
            15020 in [p.get("port") for p in rule.get("ports", [])]
            for rule in d["spec"].get("ingress", [])
        )
    ]
    model_namespaces = {
        d["metadata"]["namespace"]
        for _c, d in monitors
        if d["metadata"]["namespace"].startswith("llm-")
    }
    assert model_namespaces <= {d["metadata"]["namespace"] for d in allow_scrape}
    # The sidecar only merges vLLM's metrics when the pod says where they are.
    deployments = of_kind(shipped[1], "Deployment")
    served = [d for _c, d in deployments if d["metadata"]["namespace"].startswith("llm-")]
    assert served
    for d in served:
        notes = d["spec"]["template"]["metadata"]["annotations"]
        assert notes["prometheus.io/scrape"] == "true"
        picker = d["metadata"]["name"].endswith("-epp")  # an InferencePool's picker: 9090
        assert notes["prometheus.io/port"] == ("9090" if picker else "8000")
        assert notes["prometheus.io/path"] == "/metrics"


def test_every_environment_cluster_scrapes_its_ingress_gateway(shipped: Any) -> None:
    plan, docs = shipped
    gateways = {
        c for c, d in of_kind(docs, "PodMonitor") if d["metadata"]["namespace"] == "istio-ingress"
    }
    assert gateways == {name for name, cp in plan.clusters.items() if cp.environment is not None}
    releases = {d["metadata"]["name"] for _c, d in of_kind(docs, "HelmRelease")}
    assert "istio-ingressgateway" in releases
