"""Platform add-ons: one Flux source and HelmRelease each, values from the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llmgen import render
from llmgen.catalog import Catalog
from llmgen.concerns import addons
from llmgen.load import load_catalog
from llmgen.plan import ClusterPlan, Plan, build_plan

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def plan() -> Plan:
    docs, _ = load_catalog(REPO)
    return build_plan(Catalog.build(docs))


@pytest.fixture(scope="module")
def files(plan: Plan) -> dict[str, bytes]:
    return render.render_plan(plan, REPO / "templates", REPO).files


def documents(files: dict[str, bytes], cluster: str) -> list[dict[str, Any]]:
    prefix = f"generated/clusters/{cluster}/infrastructure/controllers/"
    out: list[dict[str, Any]] = []
    for path, body in sorted(files.items()):
        if path.startswith(prefix) and not path.endswith("kustomization.yaml"):
            out += [d for d in yaml.safe_load_all(body) if d]
    return out


def releases(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "HelmRelease"}


def cluster(plan: Plan, cloud: str) -> ClusterPlan:
    return next(cp for cp in plan.clusters.values() if cp.provider.name == cloud)


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_every_addon_has_a_pinned_source_and_release(
    plan: Plan, files: dict[str, bytes], cloud: str
) -> None:
    cp = cluster(plan, cloud)
    docs = documents(files, cp.name)
    # The mesh concern adds its gateway releases to this layer; ours are named
    # after the platform's add-ons.
    rels = {n: r for n, r in releases(docs).items() if n in cp.platform.addons}
    expected = set(cp.platform.addons) - {"istio-gateway"}
    if cloud != "aws":
        expected -= {"karpenter"}
    assert set(rels) == expected
    sources = {(d["kind"], d["metadata"]["name"]): d for d in docs if "Repository" in d["kind"]}
    namespaces = [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"]
    assert len(namespaces) == len(set(namespaces))  # each namespace rendered once
    for name, rel in rels.items():
        addon = cp.platform.addons[name]
        spec = rel["spec"]
        assert spec["targetNamespace"] in namespaces
        assert spec["install"]["crds"] == spec["upgrade"]["crds"] == "CreateReplace"
        assert spec["install"]["remediation"]["retries"] > 0
        assert spec["upgrade"]["remediation"]["retries"] > 0
        if addon.repository.startswith("oci://"):
            src = sources[("OCIRepository", name)]
            assert spec["chartRef"]["kind"] == "OCIRepository"
            assert src["spec"]["ref"] == {"tag": addon.version}
            assert src["spec"]["url"] == f"{addon.repository}/{addon.chart}"
        else:
            src = sources[("HelmRepository", name)]
            assert spec["chart"]["spec"]["version"] == addon.version
            assert spec["chart"]["spec"]["chart"] == addon.chart
            assert src["spec"]["url"] == addon.repository


def test_karpenter_values_name_the_cluster(plan: Plan, files: dict[str, bytes]) -> None:
    cp = cluster(plan, "aws")
    values = releases(documents(files, cp.name))["karpenter"]["spec"]["values"]
    assert values["settings"]["clusterName"] == cp.name
    role = values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role.startswith(f"arn:aws:iam::{cp.cluster.cloud_settings['accountID']}:role/")


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_istio_and_dependencies(plan: Plan, files: dict[str, bytes], cloud: str) -> None:
    cp = cluster(plan, cloud)
    docs = documents(files, cp.name)
    rels = releases(docs)
    istiod = rels["istiod"]["spec"]
    assert istiod["dependsOn"] == [{"name": "istio-base"}]
    g = istiod["values"]["global"]
    assert g["meshID"] == cp.platform.mesh_id
    assert g["multiCluster"]["clusterName"] == cp.name
    assert g["network"] == cp.cluster.network
    ns = next(
        d for d in docs if d["kind"] == "Namespace" and d["metadata"]["name"] == "istio-system"
    )
    assert ns["metadata"]["labels"]["topology.istio.io/network"] == cp.cluster.network
    # ServiceMonitors need the Prometheus operator's CRDs first
    for name in ("keda", "gpu-operator", "cert-manager", "external-secrets"):
        assert {"name": "kube-prometheus-stack"} in rels[name]["spec"]["dependsOn"]
    # every dependsOn names a release that exists in this cluster
    for rel in rels.values():
        for dep in rel["spec"].get("dependsOn", []):
            assert dep["name"] in rels


@pytest.mark.parametrize(("cloud", "provider"), [("aws", "aws"), ("gcp", "google")])
def test_external_dns(plan: Plan, files: dict[str, bytes], cloud: str, provider: str) -> None:
    cp = cluster(plan, cloud)
    values = releases(documents(files, cp.name))["external-dns"]["spec"]["values"]
    assert values["provider"] == {"name": provider}
    assert values["sources"] == ["istio-gateway", "service"]
    assert values["policy"] == "upsert-only"
    assert values["txtOwnerId"] == cp.name
    assert cp.environment is not None and values["domainFilters"] == [cp.environment.domain]


def test_gpu_operator_follows_each_cloud(plan: Plan, files: dict[str, bytes]) -> None:
    aws_docs = documents(files, cluster(plan, "aws").name)
    gcp_docs = documents(files, cluster(plan, "gcp").name)
    aws_v = releases(aws_docs)["gpu-operator"]["spec"]["values"]
    gcp_v = releases(gcp_docs)["gpu-operator"]["spec"]["values"]
    for v in (aws_v, gcp_v):
        assert v["driver"] == {"enabled": False}  # AMI / GKE install the driver
        # honorLabels: DCGM series keep the GPU pod's namespace/pod labels
        assert v["dcgmExporter"]["serviceMonitor"] == {"enabled": True, "honorLabels": True}
    assert gcp_v["hostPaths"]["driverInstallDir"] == "/home/kubernetes/bin/nvidia"
    assert gcp_v["toolkit"]["installDir"] == "/home/kubernetes/bin/nvidia"
    assert aws_v["toolkit"] == {"enabled": False}
    quota = [d for d in gcp_docs if d["kind"] == "ResourceQuota"]
    assert [q["metadata"]["namespace"] for q in quota] == ["gpu-operator"]
    assert not [d for d in aws_docs if d["kind"] == "ResourceQuota"]
    ns = {d["metadata"]["name"]: d for d in gcp_docs if d["kind"] == "Namespace"}
    assert ns["gpu-operator"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "privileged"
    )
    assert ns["keda"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_merge_overrides_leaves_and_keeps_siblings() -> None:
    base = {"a": {"b": 1, "c": {"d": 2}}, "e": [1]}
    over = {"a": {"c": {"d": 3, "f": 4}}, "e": [2]}
    assert addons.merge(base, over) == {"a": {"b": 1, "c": {"d": 3, "f": 4}}, "e": [2]}
    assert base == {"a": {"b": 1, "c": {"d": 2}}, "e": [1]}  # inputs untouched
