"""Platform add-ons: one Flux source and HelmRelease each, values from the catalog."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmgen.plan.build import ClusterPlan, Plan
from llmgen.render.concerns import addons

REPO = Path(__file__).resolve().parents[1]


def documents(files: dict[str, bytes], cluster: str) -> list[dict[str, Any]]:
    # Add-ons: controllers; Istio's releases: istio; istio-system: mesh-ca.
    prefixes = tuple(
        f"generated/clusters/{cluster}/infrastructure/{layer}/"
        for layer in ("controllers", "istio", "mesh-ca")
    )
    out: list[dict[str, Any]] = []
    for path, body in sorted(files.items()):
        if path.startswith(prefixes) and not path.endswith("kustomization.yaml"):
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
        expected -= {"karpenter", "aws-load-balancer-controller"}
    if cloud != "aws" or not cp.mirror_items:
        # the ACK controllers run only on the AWS weights sync cluster
        expected -= {"ack-s3-controller", "ack-iam-controller"}
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
            repo = spec["chart"]["spec"]["sourceRef"]["name"]
            src = sources[("HelmRepository", repo)]
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
    # Sidecars are only redirected once the CNI node agent runs.
    assert istiod["dependsOn"] == [{"name": "istio-base"}, {"name": "istio-cni"}]
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


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_external_dns(plan: Plan, files: dict[str, bytes], cloud: str) -> None:
    cp = next(
        c
        for c in plan.clusters.values()
        if c.provider.name == cloud and c.environment is not None and c.environment.dns
    )
    values = releases(documents(files, cp.name))["external-dns"]["spec"]["values"]
    # Route 53 is the environment's one authority: both clouds write there.
    assert cp.environment is not None and cp.environment.dns is not None
    assert values["provider"] == {"name": "aws"}
    assert f"--zone-id-filter={cp.environment.dns.zone_id}" in values["extraArgs"]
    if cloud == "gcp":
        env = {e["name"]: e["value"] for e in values["env"]}
        assert env["AWS_ROLE_ARN"] == (
            f"arn:aws:iam::{cp.environment.dns.account_id}:role/{cp.name}-external-dns"
        )
        (volume,) = values["extraVolumes"]
        (source,) = volume["projected"]["sources"]
        assert source["serviceAccountToken"]["audience"] == "sts.amazonaws.com"
        (mount,) = values["extraVolumeMounts"]
        assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == f"{mount['mountPath']}/token"
    assert values["sources"] == ["service"]
    assert values["policy"] == "sync"
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
    # node-critical DaemonSets: the GPU operator's and the Istio CNI agent's
    assert sorted(q["metadata"]["namespace"] for q in quota) == ["gpu-operator", "istio-system"]
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


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_istio_cni_replaces_the_privileged_init_container(
    plan: Plan, files: dict[str, bytes], cloud: str
) -> None:
    clusters = [cp for cp in plan.clusters.values() if cp.provider.name == cloud]
    assert clusters
    for cp in clusters:
        docs = documents(files, cp.name)
        rels = releases(docs)
        cni = rels["istio-cni"]["spec"]
        istio = cp.platform.addons["istiod"]
        addon = cp.platform.addons["istio-cni"]
        assert addon.chart == "cni"
        assert (addon.repository, addon.version) == (istio.repository, istio.version)
        assert cni["targetNamespace"] == "istio-system"
        # istiod injects istio-validation (no NET_ADMIN) instead of istio-init
        assert rels["istiod"]["spec"]["values"]["pilot"]["cni"] == {"enabled": True}
        ns = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Namespace"}
        # the node agent is privileged; Pod Security must admit it where it runs
        labels = ns["istio-system"]["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
        quotas = [d["metadata"]["namespace"] for d in docs if d["kind"] == "ResourceQuota"]
        if cloud == "gcp":
            # GKE's CNI binaries live elsewhere, and system-node-critical pods
            # outside kube-system need a quota naming the priority class.
            assert cni["values"]["cni"]["cniBinDir"] == "/home/kubernetes/bin"
            assert "istio-system" in quotas
        else:
            assert "cniBinDir" not in cni["values"].get("cni", {})
            assert quotas == []


def lbc_args(values: dict[str, Any]) -> list[str]:
    """The VPC flags chart 1.14.0 passes (templates/deployment.yaml, lines 75-77 and 181-182)."""
    args = []
    if values.get("vpcId"):
        args.append(f"--aws-vpc-id={values['vpcId']}")
    if values.get("vpcTags"):
        csv = ",".join(f"{k}={v}" for k, v in values["vpcTags"].items())
        args.append(f"--aws-vpc-tags={csv}")
    return args


def lbc_vpc_lookup(values: dict[str, Any]) -> tuple[str, str]:
    """How aws-load-balancer-controller v2.14.0 finds its VPC from those flags.

    pkg/aws/cloud.go `getVpcID`: --aws-vpc-id wins; else, with --aws-vpc-tags,
    `inferVPCIDFromTags(ec2, cfg.VpcNameTagKey, cfg.VpcTags[cfg.VpcNameTagKey])`
    filters `tag:<key>` on that one value, the key being --aws-vpc-tag-key,
    default "Name" (pkg/aws/cloud_config.go:20); every other tag is ignored.
    Otherwise instance metadata, unreachable from pods at hop limit 1. A
    failed lookup makes main.go exit 1.
    """
    flags = dict(a.removeprefix("--").split("=", 1) for a in lbc_args(values))
    if flags.get("aws-vpc-id"):
        return ("id", flags["aws-vpc-id"])
    if "aws-vpc-tags" in flags:
        tags = dict(kv.split("=", 1) for kv in flags["aws-vpc-tags"].split(","))
        key = flags.get("aws-vpc-tag-key", "Name")
        value = tags.get(key, "")
        assert value, f"the controller filters tag:{key}={value!r}: no VPC matches; it exits"
        return ("tag:" + key, value)
    raise AssertionError("no VPC flags: the controller needs instance metadata, which pods lack")


def test_the_load_balancer_controller_finds_its_vpc_on_every_aws_cluster(
    plan: Plan, files: dict[str, bytes]
) -> None:
    for cp in plan.clusters.values():
        if cp.provider.name != "aws":
            continue
        values = releases(documents(files, cp.name))["aws-load-balancer-controller"]["spec"][
            "values"
        ]
        aws = cp.cluster.cloud_settings
        how, what = lbc_vpc_lookup(values)
        if aws.get("vpcID"):
            assert (how, what) == ("id", aws["vpcID"])
        else:
            assert (how, what) == ("tag:Name", aws["vpcName"])
    # Before issue 14: the Karpenter discovery tag, which v2.14 never reads.
    with pytest.raises(AssertionError, match="no VPC matches"):
        lbc_vpc_lookup({"vpcTags": {"karpenter.sh/discovery": "prod-aws-use1"}})


def test_aws_load_balancer_controller_only_on_aws(plan: Plan, files: dict[str, bytes]) -> None:
    aws = cluster(plan, "aws")
    rels = releases(documents(files, aws.name))
    spec = rels["aws-load-balancer-controller"]["spec"]
    addon = aws.platform.addons["aws-load-balancer-controller"]
    assert addon.repository == "https://aws.github.io/eks-charts"
    assert spec["chart"]["spec"]["version"] == addon.version
    values = spec["values"]
    assert values["clusterName"] == aws.name
    assert values["region"] == aws.cluster.region
    # no IMDS from pods: the controller must be told its VPC, the way v2.14 reads it
    assert lbc_vpc_lookup(values)[0] in ("id", "tag:Name")
    account = aws.cluster.cloud_settings["accountID"]
    role = values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role == f"arn:aws:iam::{account}:role/{aws.name}-aws-load-balancer-controller"
    # the ingress gateway's NLB is this controller's to create
    gateway = rels["istio-ingressgateway"]["spec"]
    assert {"name": "aws-load-balancer-controller", "namespace": "flux-system"} in (
        gateway["dependsOn"]
    )
    gcp = cluster(plan, "gcp")
    gcp_rels = releases(documents(files, gcp.name))
    assert "aws-load-balancer-controller" not in gcp_rels
    gcp_gateway = gcp_rels["istio-ingressgateway"]["spec"]
    assert [d["name"] for d in gcp_gateway["dependsOn"]] == ["istiod"]


@pytest.mark.parametrize(
    ("cloud", "annotation"),
    [("aws", "eks.amazonaws.com/role-arn"), ("gcp", "iam.gke.io/gcp-service-account")],
)
def test_cert_manager_gets_a_cloud_identity_for_dns01(
    plan: Plan, files: dict[str, bytes], cloud: str, annotation: str
) -> None:
    cp = cluster(plan, cloud)
    values = releases(documents(files, cp.name))["cert-manager"]["spec"]["values"]
    expected = cp.provider.workload_identity_annotations(cp.cluster, "cert-manager", "cert-manager")
    assert values["serviceAccount"]["annotations"] == expected
    assert annotation in expected


def test_istiod_injects_for_the_cni_only_where_the_agent_runs(plan: Plan) -> None:
    cp = cluster(plan, "gcp")
    with_cni = addons.generic_values("istiod", cp)
    assert with_cni["pilot"]["cni"] == {"enabled": True}
    others = {k: v for k, v in cp.platform.addons.items() if k != "istio-cni"}
    bare = dataclasses.replace(cp, platform=dataclasses.replace(cp.platform, addons=others))
    # without the node agent nothing would redirect traffic: keep istio-init
    assert addons.generic_values("istiod", bare)["pilot"]["cni"] == {"enabled": False}


# The pod-level settings these charts set themselves (runAsNonRoot, seccompProfile
# RuntimeDefault); container-level settings restricted namespaces demand that the
# chart leaves to the user, so llmgen must set them.
_RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_reloader_pods_are_admitted_by_a_restricted_namespace(
    plan: Plan, files: dict[str, bytes], cloud: str
) -> None:
    cp = cluster(plan, cloud)
    docs = documents(files, cp.name)
    namespace = next(
        d for d in docs if d["kind"] == "Namespace" and d["metadata"]["name"] == "reloader"
    )
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    values = releases(docs)["reloader"]["spec"]["values"]["reloader"]
    # The chart's containerSecurityContext defaults to {}; without these two
    # Pod Security rejects every Reloader pod and the release never gets ready.
    container = values["deployment"]["containerSecurityContext"]
    for key, want in _RESTRICTED_CONTAINER.items():
        assert container[key] == want
    assert values["readOnlyRootFileSystem"] is True


# What the gpu-operator chart tolerates when the values leave a list unset.
_CHART_DAEMONSET_TOLERATIONS = [
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
]
_CHART_NFD_WORKER_TOLERATIONS = [
    {
        "key": "node-role.kubernetes.io/master",
        "operator": "Equal",
        "value": "",
        "effect": "NoSchedule",
    },
    {
        "key": "node-role.kubernetes.io/control-plane",
        "operator": "Equal",
        "value": "",
        "effect": "NoSchedule",
    },
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
]
_GKE_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute"}


def _gpu_node_taints(files: dict[str, bytes], name: str) -> list[dict[str, str]]:
    """Every taint a GPU node of this cluster carries, read from its rendered node pools."""
    prefix = f"generated/clusters/{name}/infrastructure/node-pools/"
    taints: list[dict[str, str]] = []
    for path, body in files.items():
        if not path.startswith(prefix):
            continue
        for d in yaml.safe_load_all(body):
            if d and d["kind"] == "NodePool":  # Karpenter
                spec = d["spec"]["template"]["spec"]
                taints += spec.get("taints", []) + spec.get("startupTaints", [])
            elif d and d["kind"] == "ContainerNodePool":  # GKE, through Config Connector
                for t in d["spec"]["nodeConfig"].get("taint", []):
                    taints.append({**t, "effect": _GKE_EFFECTS[t["effect"]]})
    return taints


def _tolerated(taint: dict[str, str], tolerations: list[dict[str, str]]) -> bool:
    for t in tolerations:
        if t.get("effect") not in (None, taint["effect"]):
            continue
        if t.get("operator") == "Exists" and t.get("key") in (None, taint["key"]):
            return True
        if t.get("key") == taint["key"] and t.get("value", "") == taint.get("value", ""):
            return True
    return False


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_gpu_operator_and_nfd_run_on_tainted_gpu_nodes(
    plan: Plan, files: dict[str, bytes], cloud: str
) -> None:
    cp = cluster(plan, cloud)
    taints = _gpu_node_taints(files, cp.name)
    assert taints, "the cluster has GPU node pools"
    values = releases(documents(files, cp.name))["gpu-operator"]["spec"]["values"]
    operands = values.get("daemonsets", {}).get("tolerations", _CHART_DAEMONSET_TOLERATIONS)
    nfd = (
        values.get("node-feature-discovery", {})
        .get("worker", {})
        .get("tolerations", _CHART_NFD_WORKER_TOLERATIONS)
    )
    # Device plugin, DCGM exporter, toolkit, validator -- and NFD's worker, whose
    # PCI labels are how the operator finds GPU nodes at all: a taint either
    # misses leaves the node without nvidia.com/gpu (and, on EKS, the startup
    # taint never lifted).
    for taint in taints:
        assert _tolerated(taint, operands), (taint, operands)
        assert _tolerated(taint, nfd), (taint, nfd)


def test_one_helm_repository_per_url_and_cluster(plan: Plan, files: dict[str, bytes]) -> None:
    """The review's D23: four identical Istio HelmRepositories fetched one index
    four times. Now every HTTP repository URL has one object per cluster, in
    the earliest layer whose releases read it, and every release names it."""
    for name in plan.clusters:
        base = f"generated/clusters/{name}/"
        urls: dict[str, list[str]] = {}
        layer_of: dict[str, str] = {}
        refs: list[tuple[str, str]] = []
        for path, body in files.items():
            if not path.startswith(base + "infrastructure/"):
                continue
            layer = path[len(base) :].split("/")[1]
            for d in yaml.safe_load_all(body):
                if not d or "kind" not in d:
                    continue
                if d["kind"] == "HelmRepository":
                    urls.setdefault(d["spec"]["url"], []).append(d["metadata"]["name"])
                    layer_of[d["metadata"]["name"]] = layer
                elif d["kind"] == "HelmRelease" and "chart" in d["spec"]:
                    refs.append((layer, d["spec"]["chart"]["spec"]["sourceRef"]["name"]))
        assert all(len(v) == 1 for v in urls.values()), (name, urls)
        istio_repo = urls.get("https://istio-release.storage.googleapis.com/charts")
        assert istio_repo == ["istio-base"], name
        order = ["controllers", "istio"]
        for layer, repo in refs:
            assert repo in layer_of, (name, repo)
            assert order.index(layer_of[repo]) <= order.index(layer), (name, repo)


def _external_dns_plan(
    desired: set[str], current: dict[str, str], owner: str, policy: str
) -> tuple[set[str], set[str]]:
    """(created, deleted) names of one ExternalDNS run, as v0.19.0 decides them:
    plan/plan.go `Calculate` filters Delete by OwnerID (the TXT registry's owner
    of each record), and plan/policy.go `UpsertOnlyPolicy` drops every Delete.
    `current` maps each existing record name to its owner."""
    create = desired - set(current)
    delete = {n for n, o in current.items() if n not in desired and o == owner}
    return create, set() if policy == "upsert-only" else delete


def test_a_suspended_clusters_record_leaves_dns(plan: Plan, files: dict[str, bytes]) -> None:
    """The review's D22: `llmgen stop --cluster` (suspendedClusters) drops the
    environment's name from that cluster's gateway, and its ExternalDNS must
    then delete the record it published, and only its own."""
    cp = plan.clusters["prod-aws-usw2"]
    env = cp.environment
    assert env is not None
    values = releases(documents(files, cp.name))["external-dns"]["spec"]["values"]
    owner, policy = values["txtOwnerId"], values["policy"]
    owners = {
        releases(documents(files, c))["external-dns"]["spec"]["values"]["txtOwnerId"]
        for c in env.clusters
    }
    assert len(owners) == len(env.clusters)  # no cluster can delete another's record
    # Route 53 after serving: each cluster's record of the shared name (told
    # apart by set identifier) and its regional name, owned by that cluster.
    current = {f"{env.domain}#{c}": c for c in env.clusters}
    current |= {f"{c}.{env.domain}#": c for c in env.clusters}
    # What the gateway publishes once suspended (the record the render gives it)
    from llmgen.plan import routing

    stopped = dataclasses.replace(env, suspended_clusters=(cp.name,))
    peers = tuple(plan.clusters[c].cluster for c in env.clusters)
    record = routing.dns_records(stopped, peers, {"aws", "gcp"})[cp.name]
    suspended_desired = {f"{h}#{record.set_identifier or ''}" for h in record.hostnames}
    assert suspended_desired == {f"{cp.name}.{env.domain}#"}  # only its regional name
    _, deleted = _external_dns_plan(suspended_desired, current, owner, policy)
    assert deleted == {f"{env.domain}#{cp.name}"}
