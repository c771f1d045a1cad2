"""KEDA formulas and trigger queries, as `llmgen simulate` reads them."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from llmgen.simulate import exprlang, promsignals
from llmgen.simulate.objects import read_rendered

RENDERED = (
    "min(max(max(max(queue_length / 6, gpu_utilization / 85), max(kv_cache_usage / 0.85, "
    "ready_replicas * latency_p95 / 2)), (gateway_requests > 0 ? 1 : 0)), "
    "budget_used >= 1 ? ready_replicas : 1)"
)


def test_the_rendered_formula_evaluates_like_expr_lang() -> None:
    f = exprlang.parse(RENDERED)
    env = dict(
        queue_length=12,
        gpu_utilization=50,
        kv_cache_usage=0.1,
        ready_replicas=1,
        latency_p95=0.5,
        gateway_requests=0.2,
        budget_used=0,
    )
    assert exprlang.evaluate(f, env) == 1.0  # demand 2 capped at maxReplicaCount 1
    assert exprlang.evaluate(f, {**env, "budget_used": 1.2, "ready_replicas": 0}) == 0.0
    assert (
        exprlang.evaluate(
            f,
            {
                **env,
                "queue_length": 0,
                "gateway_requests": 0,
                "gpu_utilization": 0,
                "kv_cache_usage": 0,
            },
        )
        == 0.25
    )


def test_precedence_and_operators() -> None:
    ev = exprlang.evaluate
    assert ev(exprlang.parse("1 + 2 * 3"), {}) == 7
    assert ev(exprlang.parse("2 ** 3 ** 2"), {}) == 512  # right-associative
    # expr-lang: a unary minus takes `**` into its operand (operator.go: "-" 90, "**" 100)
    assert ev(exprlang.parse("-2 ** 2"), {}) == -4
    assert ev(exprlang.parse("1 - 2 - 3"), {}) == -4
    assert ev(exprlang.parse("a > 1 && b < 1 ? 10 : 20"), {"a": 2, "b": 0}) == 10
    assert ev(exprlang.parse("a > 1 and not (b < 1) ? 10 : 20"), {"a": 2, "b": 0}) == 20
    assert ev(exprlang.parse("x % 4"), {"x": 10}) == 2
    assert ev(exprlang.parse("ceil(x / 3) + floor(x / 3) + abs(-1)"), {"x": 10}) == 8


def test_numbers_are_lifted_so_models_share_a_shape() -> None:
    a = exprlang.parse("max(queue_length / 4, kv / 0.8)")
    b = exprlang.parse("max(queue_length / 6, kv / 0.85)")
    assert a.shape == b.shape and a.constants != b.constants


@pytest.mark.parametrize("bad", ["foo(1)", "1 +", "a ? 1", "a $ b", "len('x')"])
def test_outside_the_subset_is_an_error(bad: str) -> None:
    with pytest.raises(exprlang.FormulaError):
        exprlang.parse(bad)


def _signals(**over: np.ndarray) -> dict[str, np.ndarray]:
    n = 3
    base = {k: np.zeros(n) for k in (
        "waiting_pp", "running_pp", "kv_pp", "ready", "scheduled", "pods", "desired", "unready",
        "gateway_rps", "served_rps", "shed_rps", "cluster_usd", "unit_usd", "unit_gpus",
        "cluster_budget", "duty_series", "gpu_series", "zero", "success_rps_pp", "gen_tps_pp",
        "prompt_tps_pp", "ttft_base", "ttft_mean", "e2e_base", "e2e_mean", "qwait_base",
        "qwait_mean")}  # fmt: skip
    base["one"] = np.ones(n)
    base["true"] = np.ones(n, dtype=bool)
    base["gpus_per_pod"] = np.full(n, 2.0)
    base.update(over)
    return base


def _run(query: str, s: dict[str, np.ndarray], ignore: bool = True) -> tuple[list, list]:
    q = promsignals.compile_query(query)
    consts = {f"#{i}": np.full(3, c) for i, c in enumerate(q.constants)}
    val, err = q.run({**s, **consts}, 3, np.full(3, ignore))
    return [round(float(v), 6) for v in val], [bool(e) for e in err]


def test_pod_sums_counts_and_empty_results() -> None:
    s = _signals(ready=np.array([0.0, 1.0, 3.0]), waiting_pp=np.array([0.0, 5.0, 2.0]))
    sel = '{namespace="llm-a", pod=~"a-[a-z0-9]+-[a-z0-9]+"}'
    assert _run(f"(sum(vllm:num_requests_waiting{sel})) or vector(0)", s) == (
        [0.0, 5.0, 6.0],
        [False] * 3,
    )
    assert _run(f"(count(vllm:num_requests_running{sel})) or vector(0)", s)[0] == [0, 1, 3]
    # No pods and no `or vector(0)`: an empty result, an error only without ignoreNullValues.
    assert _run(f"sum(vllm:num_requests_waiting{sel})", s, ignore=True)[1] == [False] * 3
    assert _run(f"sum(vllm:num_requests_waiting{sel})", s, ignore=False)[1] == [True, False, False]
    # One series per pod: more than one element is KEDA's error, whatever ignoreNullValues says.
    assert _run(f"vllm:num_requests_waiting{sel}", s)[1] == [False, False, True]


def test_dcgm_is_per_gpu_and_grouped_by_pod() -> None:
    s = _signals(
        scheduled=np.array([1.0, 2.0, 2.0]),
        gpu_series=np.array([2.0, 4.0, 4.0]),
        duty_series=np.array([50.0, 100.0, 0.0]),
    )
    q = '(sum(avg by (pod) (DCGM_FI_DEV_GPU_UTIL{namespace="n"}))) or vector(0)'
    assert _run(q, s)[0] == [50.0, 200.0, 0.0]
    assert _run('count(DCGM_FI_DEV_GPU_UTIL{namespace="n"})', s)[0] == [2.0, 4.0, 4.0]


def test_latency_quantile_drops_nan_and_reads_the_tail() -> None:
    s = _signals(
        ready=np.array([0.0, 1.0, 1.0]),
        served_rps=np.array([0.0, 0.0, 2.0]),
        ttft_base=np.array([0.1, 0.1, 0.1]),
        ttft_mean=np.array([0.1, 0.1, 0.1]),
    )
    q = (
        "(histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket"
        '{namespace="n"}[2m]))) >= 0) or vector(0)'
    )
    val, err = _run(q, s)
    assert val[:2] == [0.0, 0.0]  # no pod; no request in the window (NaN dropped by >= 0)
    assert val[2] == pytest.approx(0.1 + 0.1 * -np.log(0.05), rel=1e-4)


def test_budget_and_issue_13_style_triggers() -> None:
    s = _signals(
        cluster_usd=np.array([100.0, 200.0, 0.0]),
        ready=np.array([1.0, 2.0, 0.0]),
        running_pp=np.array([64.0, 128.0, 0.0]),
        pods=np.array([1.0, 3.0, 0.0]),
    )
    budget = '(sum(environment:llmgen_usd_per_hour:sum{environment="prod"}) * 730 / 73000)'
    assert _run(budget + " or vector(0)", s)[0] == [1.0, 2.0, 0.0]
    running = 'sum(vllm:num_requests_running{namespace="n"}) / 256'
    assert _run(running, s, ignore=False) == ([0.25, 1.0, 0.0], [False, False, True])
    assert _run('sum(kube_deployment_status_replicas{deployment="d"})', s)[0] == [1.0, 3.0, 0.0]


def test_unmodelled_metrics_are_named() -> None:
    with pytest.raises(promsignals.QueryError, match="node_cpu_seconds_total"):
        promsignals.compile_query("sum(rate(node_cpu_seconds_total[5m]))")


def test_every_rendered_trigger_of_the_shipped_catalog_is_simulated(
    files: dict[str, bytes],
) -> None:
    objects = read_rendered(files).scaled_objects
    assert len(objects) > 20
    for so in objects.values():
        exprlang.parse(so.formula)
        for t in so.triggers:
            promsignals.compile_query(t.query)


def test_latency_kept_at_zero_while_pods_are_scraped() -> None:
    # The form the model-side issue plans for min >= 1 models: no `or vector(0)`
    # (a lost scrape is an error KEDA falls back on), but an idle model reads 0.
    s = _signals(
        ready=np.array([0.0, 1.0, 2.0]),
        served_rps=np.array([0.0, 0.0, 1.0]),
        ttft_base=np.full(3, 0.2),
        ttft_mean=np.zeros(3),
    )
    sel = '{namespace="n", pod=~"m-[a-z0-9]+-[a-z0-9]+"}'
    q = (
        f"(histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket"
        f"{sel}[2m]))) >= 0) or 0 * count(vllm:num_requests_running{sel})"
    )
    val, err = _run(q, s, ignore=False)
    assert err == [True, False, False]  # no pod scraped: KEDA's error, then its fallback
    assert val[1:] == [0.0, 0.2]


def test_cached_parsing_agrees_with_parsing() -> None:
    for text in (
        RENDERED,
        RENDERED.replace("/ 6", "/ 4.5").replace(": 1)", ": 12)"),
        "max(q1 / 2e3, 3)",
    ):
        a, b = exprlang.parse(text), exprlang.parse_cached(text)
        assert (a.tree, a.constants, a.names) == (b.tree, b.constants, b.names)


def test_disk_throughput_from_the_rendered_pools(files: dict[str, bytes]) -> None:
    from llmgen.simulate.objects import disk_gibps

    # pd-balanced: 0.28 MiB/s per GiB, 140 MiB/s floor (review finding 8: ~250 at 900 GB).
    gke = {"nodeConfig": {"diskType": "pd-balanced", "diskSizeGb": 900}}
    assert disk_gibps("ContainerNodePool", gke) == pytest.approx(252 / 1024)
    gke["nodeConfig"]["diskSizeGb"] = 300
    assert disk_gibps("ContainerNodePool", gke) == pytest.approx(140 / 1024)
    gke["nodeConfig"]["ephemeralStorageLocalSsdConfig"] = {"localSsdCount": 2}
    assert disk_gibps("ContainerNodePool", gke) == pytest.approx(1.28)
    assert disk_gibps("EC2NodeClass", {"instanceStorePolicy": "RAID0"}) == 2.0
    rendered = read_rendered(files)
    # The rendered GKE pool puts emptyDirs (the weights) on the shape's local
    # SSDs: docs/simulate.md's 0.64 GiB/s each, at most 8 GiB/s a node.
    pool = "generated/clusters/prod-gcp-usc1/infrastructure/node-pools/nodepool-h100-x8.yaml"
    (node,) = [d for d in yaml.safe_load_all(files[pool]) if d["kind"] == "ContainerNodePool"]
    ssds = node["spec"]["nodeConfig"]["ephemeralStorageLocalSsdConfig"]["localSsdCount"]
    assert ssds > 0
    expected = min(ssds * 0.64, 8.0)
    assert rendered.disk_gibps[("prod-gcp-usc1", "h100-x8")] == pytest.approx(expected)
    assert rendered.disk_gibps[("prod-aws-use1", "h100-x8")] == 2.0
    assert rendered.empty_node_seconds[("prod-aws-use1", "h100-x8")] == 1800
