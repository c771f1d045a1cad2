"""GPU node pools: Karpenter on EKS, ComputeClass + Config Connector on GKE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llmgen.catalog import names
from llmgen.catalog.load import load_catalog
from llmgen.catalog.model import Catalog
from llmgen.plan.build import ClusterPlan, Plan

REPO = Path(__file__).resolve().parents[1]


def documents(files: dict[str, bytes], cluster: str) -> list[dict[str, Any]]:
    prefix = f"generated/clusters/{cluster}/infrastructure/configs/"
    out: list[dict[str, Any]] = []
    for path, body in sorted(files.items()):
        if path.startswith(prefix) and not path.endswith("kustomization.yaml"):
            out += [d for d in yaml.safe_load_all(body) if d]
    return out


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def clusters(plan: Plan, cloud: str) -> list[ClusterPlan]:
    found = [cp for cp in plan.clusters.values() if cp.provider.name == cloud]
    assert found, f"the shipped catalog has no {cloud} cluster"
    return found


def test_karpenter_pool_per_catalog_pool(plan: Plan, files: dict[str, bytes]) -> None:
    for cp in clusters(plan, "aws"):
        docs = documents(files, cp.name)
        pools, classes = by_kind(docs, "NodePool"), by_kind(docs, "EC2NodeClass")
        assert (
            set(pools)
            == set(classes)
            == {names.nodepool_name(p.name) for p in cp.cluster.node_pools}
        )
        for pool in cp.cluster.node_pools:
            np = pools[names.nodepool_name(pool.name)]["spec"]
            # the GPU limit bounds the pool at maxNodes full nodes
            # The budget-capped need from the plan, never above the catalog's ceiling.
            limit = np["limits"]["nvidia.com/gpu"]
            assert limit == cp.gpu_caps[pool.name]
            assert limit <= pool.max_nodes * pool.gpus_per_node
            assert limit % pool.gpus_per_node == 0
            reqs = {r["key"]: r["values"] for r in np["template"]["spec"]["requirements"]}
            # spot pools fall back to on-demand (Karpenter prefers spot)
            kinds = ["on-demand", "spot"] if pool.capacity_type == "spot" else ["on-demand"]
            assert reqs["karpenter.sh/capacity-type"] == kinds
            assert reqs["node.kubernetes.io/instance-type"] == sorted(pool.instance_types)
            assert reqs["topology.kubernetes.io/zone"] == sorted(pool.zones)
            taints = np["template"]["spec"]["taints"]
            assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"} in taints
            assert np["template"]["spec"]["startupTaints"]  # wait for the device plugin
            # busy GPU nodes are never consolidated away
            assert np["disruption"]["consolidationPolicy"] == "WhenEmpty"
            nc = classes[names.nodepool_name(pool.name)]["spec"]
            assert nc["amiSelectorTerms"][0]["alias"].startswith("al2023@v")  # pinned, not latest
            assert nc["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": cp.name}}]
            assert nc["metadataOptions"]["httpPutResponseHopLimit"] == 1


def test_catalog_spot_and_on_demand_both_exist() -> None:
    """The shipped catalog exercises both capacity types on both clouds."""
    docs, _ = load_catalog(REPO)
    cat = Catalog.build(docs)
    for cloud in ("aws", "gcp"):
        kinds = {
            p.capacity_type for c in cat.clusters.values() if c.cloud == cloud for p in c.node_pools
        }
        assert kinds == {"spot", "on-demand"}


def test_gke_pools_follow_the_catalog(plan: Plan, files: dict[str, bytes]) -> None:
    for cp in clusters(plan, "gcp"):
        docs = documents(files, cp.name)
        pools, classes = by_kind(docs, "ContainerNodePool"), by_kind(docs, "ComputeClass")
        assert (
            set(pools)
            == set(classes)
            == {names.nodepool_name(p.name) for p in cp.cluster.node_pools}
        )
        for pool in cp.cluster.node_pools:
            name = names.nodepool_name(pool.name)
            spec = pools[name]["spec"]
            spot = pool.capacity_type == "spot"
            assert spec["nodeConfig"]["spot"] is spot
            assert spec["nodeConfig"]["machineType"] == pool.instance_types[0]
            accel = spec["nodeConfig"]["guestAccelerator"][0]
            assert accel["count"] == pool.gpus_per_node
            assert accel["type"] == cp.gpus[pool.gpu].offers["gcp"].label
            assert accel["gpuDriverInstallationConfig"] == {"gpuDriverVersion": "DEFAULT"}
            total_max = spec["autoscaling"]["totalMaxNodeCount"]
            assert total_max == max(cp.node_caps[pool.name], pool.min_nodes, 1)
            assert total_max <= pool.max_nodes
            assert spec["autoscaling"]["totalMinNodeCount"] == pool.min_nodes
            assert spec["nodeLocations"] == sorted(pool.zones)
            assert spec["clusterRef"] == {"external": cp.name}
            # the pool serves its ComputeClass: label and taint of the class
            assert spec["nodeConfig"]["labels"]["cloud.google.com/compute-class"] == name
            cc = classes[name]["spec"]
            assert cc["priorities"][0] == {"nodepools": [name]}
            if spot:  # spot first (the pool), then on-demand of the same shape
                fallback = cc["priorities"][1]
                assert fallback["spot"] is False
                assert fallback["machineType"] == pool.instance_types[0]
                assert fallback["gpu"]["count"] == pool.gpus_per_node
                assert cc["nodePoolAutoCreation"] == {"enabled": True}
            else:  # on-demand only: bounded by the catalog's maxNodes
                assert len(cc["priorities"]) == 1
                assert cc["nodePoolAutoCreation"] == {"enabled": False}
            assert cc["whenUnsatisfiable"] == "DoNotScaleUp"


def test_karpenter_only_on_aws(plan: Plan, files: dict[str, bytes]) -> None:
    for cp in plan.clusters.values():
        docs = documents(files, cp.name)
        kinds = {d["kind"] for d in docs}
        if cp.provider.name == "aws":
            assert {"NodePool", "EC2NodeClass"} <= kinds
            assert not {"ComputeClass", "ContainerNodePool"} & kinds
        else:
            assert not {"NodePool", "EC2NodeClass"} & kinds
            assert {"ComputeClass", "ContainerNodePool"} <= kinds
