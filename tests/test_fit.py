"""Node fit: allocatable per cloud, packing by GPU, CPU and memory, and the validate rule."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

from llmgen.catalog import fit
from llmgen.catalog.model import InstanceType
from llmgen.plan.build import Plan

G6_2XL = InstanceType("g6.2xlarge", 1, 0.978, 0.4277, vcpus=8, memory_gib=32, max_pods=58)
G2_STD_8 = InstanceType("g2-standard-8", 1, 0.8536, 0.3414, vcpus=8, memory_gib=32)


def test_karpenter_allocatable_of_g6_2xlarge() -> None:
    """32 GiB less 7.5 % VM overhead, 11 MiB x 58 pods + 255 MiB kube-reserved, 100Mi eviction."""
    r = fit.reserved("aws", G6_2XL)
    expected = 32 * 0.075 + (11 * 58 + 255) / 1024 + 100 / 1024
    assert r.memory_gib == pytest.approx(expected)
    # CPU: 6 % of the first core, 1 % of the second, 0.5 % of the next two, 0.25 % above.
    assert r.cpu == pytest.approx(0.06 + 0.01 + 2 * 0.005 + 4 * 0.0025)
    assert 28.5 < 32 - r.memory_gib < 28.7  # the review's "about 28.6 GiB"


def test_gke_allocatable_of_g2_standard_8() -> None:
    """GKE's table: 25 % of 4, 20 % of 4, 10 % of 8, 6 % of 16 GiB, plus 100 MiB eviction."""
    r = fit.reserved("gcp", G2_STD_8)
    assert r.memory_gib == pytest.approx(1 + 0.8 + 0.8 + 0.06 * 16 + 100 / 1024)
    assert 28.2 < 32 - r.memory_gib < 28.4  # the review's "about 28.3 GiB"


def test_gke_large_node_reserves_two_percent_above_128() -> None:
    a3 = InstanceType("a3-highgpu-8g", 8, 1, 1, vcpus=208, memory_gib=1872)
    r = fit.reserved("gcp", a3)
    assert r.memory_gib == pytest.approx(
        1 + 0.8 + 0.8 + 0.06 * 112 + 0.02 * (1872 - 128) + 100 / 1024
    )


def test_daemonset_overhead_counts_gpu_readiness_as_rendered() -> None:
    """The fit table and the rendered gpu-readiness DaemonSet ask the same."""
    from llmgen.render.concerns import gpureadiness

    entry = next(d for d in fit.LLMGEN_DAEMONSETS if d.name == "gpu-readiness")
    assert f"{int(entry.cpu * 1000)}m" == gpureadiness.RESOURCES["requests"]["cpu"]
    assert f"{int(entry.memory_mib)}Mi" == gpureadiness.RESOURCES["requests"]["memory"]


def _model(plan: Plan, name: str):  # type: ignore[no-untyped-def]
    return next(
        p.model for cp in plan.clusters.values() for p in cp.placements if p.model.name == name
    )


def test_thirty_gib_request_does_not_fit_an_l4_x1_node(plan: Plan) -> None:
    """The review's defect 3: 28 GiB + 2 GiB /dev/shm + the sidecar on a 32 GiB node."""
    model = dataclasses.replace(_model(plan, "llama-3-1-8b-instruct"), memory_gib=28)
    assert fit.per_node(model, G6_2XL, "aws") == 0
    assert fit.per_node(model, G2_STD_8, "gcp") == 0


def test_every_shipped_placement_fits_its_pool(plan: Plan) -> None:
    for cp in plan.clusters.values():
        for p in cp.placements:
            n = fit.replicas_per_node(p.model, p.pool, p.gpu, cp.cluster.cloud)
            assert n >= 1, (cp.name, p.model.name, p.pool.name)


def test_packing_takes_cpu_and_memory_into_account() -> None:
    """Two 104 GiB replicas do not share a 192 GiB node even though it has 4 GPUs."""
    node = InstanceType("g2-standard-48", 4, 4.0, 1.6, vcpus=48, memory_gib=192)
    room = fit.allocatable("gcp", node)
    assert room.memory_gib < 2 * (104 + 0.125)
    assert math.floor(room.memory_gib / (104 + 0.125)) == 1


_MEMORY_UNITS = {"Ki": 2**-20, "Mi": 2**-10, "Gi": 1.0, "Ti": 2**10}


def _quantity_gib(text: str) -> float:
    """A Kubernetes memory quantity (binary suffixes, as llmgen renders them) in GiB."""
    for suffix, gib in _MEMORY_UNITS.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * gib
    raise AssertionError(f"not a binary memory quantity: {text}")


def _quantity_cpu(text: str) -> float:
    """A Kubernetes CPU quantity (cores, or millicores with `m`) in cores."""
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _request(container: dict[str, Any]) -> fit.Resources:
    r = container["resources"]["requests"]
    return fit.Resources(_quantity_cpu(r["cpu"]), _quantity_gib(r["memory"]))


def test_quantities_parse_as_kubernetes_reads_them() -> None:
    assert _quantity_gib("128Mi") == pytest.approx(0.125)
    assert _quantity_gib("2Gi") == 2.0
    assert _quantity_cpu("50m") == pytest.approx(0.05)
    assert _quantity_cpu("4") == 4.0
    with pytest.raises(AssertionError):
        _quantity_gib("128M")  # decimal megabytes: llmgen never renders them


def test_rendered_requests_are_what_fit_packs(plan: Plan, files: dict[str, bytes]) -> None:
    """The pod's effective request, as the scheduler computes it, is exactly fit's.

    Kubernetes: max(sum of the regular containers and the sidecars, the
    largest init container plus the sidecars started before it), per
    resource. Istio's sidecar (fit.SIDECAR) is injected at admission; counted
    beside every init container as well (a native sidecar starts first).
    """
    import yaml

    checked_inits = set()
    for cp in plan.clusters.values():
        prefix = f"generated/clusters/{cp.name}/models/"
        specs: dict[str, list[dict[str, Any]]] = {}
        for path, body in files.items():
            if not path.startswith(prefix):
                continue
            for d in yaml.safe_load_all(body):
                if d and d["kind"] == "Deployment":
                    specs[d["metadata"]["name"]] = [d["spec"]["template"]["spec"]]
                elif d and d["kind"] == "LeaderWorkerSet":
                    # Every pod of a multi-node group: leader and workers alike.
                    lwt = d["spec"]["leaderWorkerTemplate"]
                    specs[d["metadata"]["name"]] = [
                        lwt["leaderTemplate"]["spec"],
                        lwt["workerTemplate"]["spec"],
                    ]
        for p, spec in ((q, s) for q in cp.placements for s in specs[q.name]):
            (vllm,) = spec["containers"]
            req = vllm["resources"]["requests"]
            need = fit.pod_request(p.model) - fit.SIDECAR
            assert _quantity_gib(req["memory"]) == need.memory_gib
            assert float(req["cpu"]) == pytest.approx(need.cpu)
            inits = spec.get("initContainers", [])
            # fit counts no rendered sidecar: every init container runs to completion.
            assert all(i.get("restartPolicy") != "Always" for i in inits), p.name
            regular = _request(vllm) + fit.SIDECAR
            cpu, memory = regular.cpu, regular.memory_gib
            for init in inits:
                during = _request(init) + fit.SIDECAR
                cpu, memory = max(cpu, during.cpu), max(memory, during.memory_gib)
                checked_inits.add(init["name"].rstrip("0123456789"))
            want = fit.pod_request(p.model)
            assert (cpu, memory) == (pytest.approx(want.cpu), pytest.approx(want.memory_gib)), (
                cp.name,
                p.name,
            )
    # The weights and adapter init containers are all among those checked.
    assert {"wait-for-mirror", "fetch-weights", "verify-weights"} <= checked_inits
    assert {"fetch-adapter-", "verify-adapter-"} <= checked_inits


def test_node_counts_and_gpu_limits_follow_packing(scratch_repo: Path) -> None:
    """qwen at 96 GiB fits once per 4-GPU L4 node: nodes, GPU limits and price double."""
    from llmgen.plan.build import build_plan
    from llmgen.render.pipeline import checked_catalog

    def qwen_plan() -> tuple[int, int, int, float]:
        cat, _ = checked_catalog(scratch_repo)
        cp = build_plan(cat).clusters["prod-gcp-usc1"]
        (p,) = [p for p in cp.placements if p.model.name == "qwen2-5-32b-instruct-awq"]
        return (
            p.replicas_per_node,
            cp.node_caps["l4-x4"],
            cp.gpu_caps["l4-x4"],
            p.replica_hourly_usd,
        )

    per, nodes, gpus, price = qwen_plan()
    assert per == 2
    path = scratch_repo / "catalog" / "models" / "qwen2-5-32b-instruct-awq.yaml"
    path.write_text(path.read_text().replace("memoryGiB: 64", "memoryGiB: 96"))
    per96, nodes96, gpus96, price96 = qwen_plan()
    assert per96 == 1
    assert price96 == pytest.approx(2 * price)  # the replica strands two L4s and pays for them
    assert nodes96 >= nodes and gpus96 == nodes96 * 4
