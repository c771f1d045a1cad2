"""KEDA ScaledObjects: strict schema, the allocator's bounds, formula, scale to zero, budget."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from llmgen.plan.build import Plan
from llmgen.plan.promql import check_expr
from rendered import of_kind, render_repo

REPO = Path(__file__).resolve().parents[1]
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@pytest.fixture(scope="module")
def shipped() -> tuple[Plan, dict[str, list[dict[str, Any]]]]:
    return render_repo(REPO)


def test_every_scaledobject_is_valid_against_the_crd(shipped: Any, crd_schemas: Path) -> None:
    schema = json.loads((crd_schemas / "keda.sh" / "scaledobject_v1alpha1.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    found = of_kind(shipped[1], "ScaledObject")
    assert len(found) >= 20
    for cluster, doc in found:
        errors = [e.message for e in validator.iter_errors(doc)]
        assert not errors, (cluster, doc["metadata"]["name"], errors)


def test_bounds_are_the_allocators_and_no_deployment_has_replicas(shipped: Any) -> None:
    plan, docs = shipped
    for name, cp in plan.clusters.items():
        scaled = {d["metadata"]["name"]: d for c, d in of_kind(docs, "ScaledObject") if c == name}
        deployments = {
            d["metadata"]["name"]: d for c, d in of_kind(docs, "Deployment") if c == name
        }
        for p in cp.placements:
            so = scaled[p.name]["spec"]
            assert (so["minReplicaCount"], so["maxReplicaCount"]) == (
                p.min_replicas,
                p.max_replicas,
            )
            # A multi-node model's groups are a LeaderWorkerSet (tests/test_multinode.py).
            kind = ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")
            api, kind_name = kind if p.model.multi_node else ("apps/v1", "Deployment")
            assert so["scaleTargetRef"] == {"apiVersion": api, "kind": kind_name, "name": p.name}
            # GitOps and the autoscaler must not fight over the replica count.
            if p.name in deployments:
                assert "replicas" not in deployments[p.name]["spec"]


def test_triggers_are_identifiers_the_formula_uses_and_queries_return_one_element(
    shipped: Any,
) -> None:
    for _, doc in of_kind(shipped[1], "ScaledObject"):
        spec = doc["spec"]
        formula = spec["advanced"]["scalingModifiers"]["formula"]
        used = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", formula)) - {"max", "min"}
        names = {t["name"] for t in spec["triggers"]}
        assert all(IDENT.match(n) for n in names)
        assert used == names, (doc["metadata"]["name"], used ^ names)
        for t in spec["triggers"]:
            query = t["metadata"]["query"]
            assert check_expr(query) is None, query
            # One element: `or vector(0)` where absent means zero; elsewhere a
            # missing series is an error KEDA falls back on (ignoreNullValues).
            lenient = t["metadata"].get("ignoreNullValues") != "false"
            assert query.endswith(" or vector(0)") == lenient, query
            if "histogram_quantile" in query:
                assert ">= 0)" in query  # NaN (no requests) dropped


def test_scale_to_zero_only_where_the_model_allows_it_with_a_wake_signal(shipped: Any) -> None:
    plan, docs = shipped
    zero = 0
    for cluster, doc in of_kind(docs, "ScaledObject"):
        spec = doc["spec"]
        placement = next(
            p
            for p in plan.clusters[cluster].placements
            if doc["metadata"]["name"].startswith(p.name)
        )
        names = {t["name"] for t in spec["triggers"]}
        if spec["minReplicaCount"] == 0:
            zero += 1
            assert placement.model.scale_to_zero
            # vLLM's series vanish with its last pod; Istio's request count does not.
            assert "gateway_requests" in names
            assert spec["advanced"]["scalingModifiers"]["activationTarget"] == "0.5"
        else:
            assert "gateway_requests" not in names
    assert zero > 0  # the shipped catalog has qwen at min 0 in dev and prod


def test_budget_brake_compares_the_clusters_spend_with_its_allotment(shipped: Any) -> None:
    plan, docs = shipped
    for cluster, doc in of_kind(docs, "ScaledObject"):
        cp = plan.clusters[cluster]
        spec = doc["spec"]
        budget = next(t for t in spec["triggers"] if t["name"] == "budget_used")
        allotment = re.search(r"\* 730 / ([0-9.]+)\)", budget["metadata"]["query"])
        assert allotment is not None
        assert float(allotment.group(1)) == cp.monthly_budget_usd
        high = spec["maxReplicaCount"]
        assert spec["advanced"]["scalingModifiers"]["formula"].endswith(
            f", budget_used >= 1 ? deployed_replicas : {high})"
        )
    # The allotments of an environment's clusters add up to its budget.
    for env in plan.environments.values():
        total = sum(plan.clusters[c].monthly_budget_usd for c in env.environment.clusters)
        assert total == pytest.approx(env.environment.monthly_budget_usd, abs=0.05)


def test_canary_gets_its_own_scaledobject_with_its_own_pods(shipped: Any) -> None:
    plan, docs = shipped
    canaries = [
        (c, d)
        for c, d in of_kind(docs, "ScaledObject")
        if d["metadata"]["name"].endswith("-canary")
    ]
    assert {c for c, _ in canaries} == {"staging-aws-use1", "staging-gcp-usc1"}
    for _, doc in canaries:
        spec = doc["spec"]
        assert spec["scaleTargetRef"]["name"] == "mixtral-8x7b-instruct-canary"
        for t in spec["triggers"]:
            if "pod=~" in t["metadata"]["query"]:
                assert (
                    'pod=~"mixtral-8x7b-instruct-canary-[a-z0-9]+-[a-z0-9]+"'
                    in t["metadata"]["query"]
                )
    primary = next(
        d
        for c, d in of_kind(docs, "ScaledObject")
        if d["metadata"]["name"] == "mixtral-8x7b-instruct"
    )
    # The primary's pod regex cannot match `<model>-canary-<hash>-<suffix>` (three segments).
    regex = re.search(r'pod=~"([^"]+)"', primary["spec"]["triggers"][0]["metadata"]["query"])
    assert regex is not None
    assert not re.fullmatch(regex.group(1), "mixtral-8x7b-instruct-canary-7d9f8b6c5-x2x4z")
    assert re.fullmatch(regex.group(1), "mixtral-8x7b-instruct-7d9f8b6c5-x2x4z")


def test_suspended_environment_pauses_at_zero(scratch_repo: Path) -> None:
    env_file = scratch_repo / "catalog/environments/dev.yaml"
    env_file.write_text(
        env_file.read_text().replace(
            "  requirePinned: false\n", "  requirePinned: false\n  suspended: true\n"
        )
    )
    _, docs = render_repo(scratch_repo)
    found = of_kind({"dev-aws-use2": docs["dev-aws-use2"]}, "ScaledObject")
    assert found
    for _, doc in found:
        assert doc["metadata"]["annotations"] == {"autoscaling.keda.sh/paused-replicas": "0"}
    # Other environments keep scaling.
    assert all(
        "annotations" not in d["metadata"]
        for _, d in of_kind({"staging-aws-use1": docs["staging-aws-use1"]}, "ScaledObject")
    )


def test_behaviour_is_fast_up_slow_down_with_the_models_cooldown(shipped: Any) -> None:
    plan, docs = shipped
    for cluster, doc in of_kind(docs, "ScaledObject"):
        placement = next(
            p
            for p in plan.clusters[cluster].placements
            if doc["metadata"]["name"].startswith(p.name)
        )
        behavior = doc["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        # Short bursts do not buy nodes with a 10-30 min cold start.
        assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 120
        down = behavior["scaleDown"]
        assert down["stabilizationWindowSeconds"] == placement.model.cooldown_seconds
        assert down["policies"] == [
            {"type": "Pods", "value": 1, "periodSeconds": placement.model.cooldown_seconds}
        ]
        assert doc["spec"]["fallback"]["replicas"] >= 1
