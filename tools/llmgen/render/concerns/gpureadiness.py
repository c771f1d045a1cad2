"""GPU readiness on EKS (layer infrastructure/node-pools): lift the startup taint.

Every Karpenter GPU NodePool launches its nodes with a startup taint
(`clouds.aws.STARTUP_TAINT`) so no pod lands before the NVIDIA device plugin
advertises `nvidia.com/gpu`. Karpenter expects "some other system" to remove
it, and neither the device plugin nor the GPU operator does, so this concern
renders that system: a DaemonSet on GPU nodes only, tolerating exactly the
taints the pools set, whose shell loop waits until its own node reports
`status.allocatable["nvidia.com/gpu"] > 0`, removes the startup taint (and no
other) with a JSON patch guarded by `test` operations, and then sleeps. A
replaced node gets a new pod, so the loop never needs to run twice on a node.

GKE clusters get nothing: GKE's own device-plugin flow handles readiness.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgen.catalog import images
from llmgen.clouds.aws import STARTUP_TAINT, AwsProvider
from llmgen.render.types import Output, file_name

if TYPE_CHECKING:
    from llmgen.plan.build import ClusterPlan

FOLDER = "infrastructure/node-pools/gpu-readiness"
NAME = "gpu-readiness"
NAMESPACE = "llmgen-system"
#: Shell plus kubectl: alpine/k8s (Alpine, busybox sh, kubectl, version-tagged
#: per Kubernetes release). registry.k8s.io/kubectl has no shell, and
#: bitnami/kubectl's version tags left Docker Hub in 2025 (bitnamilegacy only).
#: kubectl 1.33 matches the clusters' minor; get and patch on Nodes are stable
#: across the +/-1 minor skew kubectl supports.
IMAGE = images.default("gpuReadiness")  # spec.images.gpuReadiness overrides it
#: Every GPU NodePool labels its nodes with this key (clouds/aws.py gpu_node_labels).
GPU_NODE_LABEL = "llmgen.io/gpu"
#: Seconds between checks of the node while its GPUs are not yet advertised.
POLL_SECONDS = 5
#: The port the API server's endpoints listen on (EKS: 443).
API_PORT = 443
#: Non-root IDs outside the range of host users (checkov CKV_K8S_40 asks >= 10000).
RUN_AS = 10001
RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "10m", "memory": "64Mi"},
    "limits": {"cpu": "100m", "memory": "128Mi"},
}
#: Node access this pod needs: read its node, then patch one taint away.
#: list/watch are not granted: the loop polls one named node with GET.
RULES: list[dict[str, list[str]]] = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]},
]
#: RBAC cannot scope `patch nodes` to one node: this ValidatingAdmissionPolicy
#: (admissionregistration.k8s.io/v1, GA in Kubernetes 1.30) lets the pod's
#: service account change only the node its token was issued on
#: (`authentication.kubernetes.io/node-name`, from the bound token's node
#: claim: ServiceAccountTokenPodNodeInfo, on by default since 1.30; the
#: pattern of kubernetes/kubernetes test/e2e/auth/e2edata/
#: per_node_validatingadmissionpolicy.yaml), and there only remove taints.
POLICY_NAME = f"llmgen-{NAME}-own-node"
NODE_CLAIM = "authentication.kubernetes.io/node-name"
VALIDATIONS: list[dict[str, str]] = [
    {
        "expression": f"'{NODE_CLAIM}' in request.userInfo.extra && "
        f"request.userInfo.extra['{NODE_CLAIM}'][0] == object.metadata.name",
        "message": f"{NAME} may change only the node its pod runs on",
    },
    {
        "expression": "(has(object.metadata.labels) ? object.metadata.labels : {}) == "
        "(has(oldObject.metadata.labels) ? oldObject.metadata.labels : {})",
        "message": f"{NAME} may not change node labels",
    },
    {
        "expression": "!has(object.spec.taints) || object.spec.taints.all(t, "
        "has(oldObject.spec.taints) && oldObject.spec.taints.exists(o, "
        "o.key == t.key && o.effect == t.effect))",
        "message": f"{NAME} may remove taints, never add them",
    },
]


def _match_conditions() -> list[dict[str, str]]:
    user = f"system:serviceaccount:{NAMESPACE}:{NAME}"
    return [
        {
            "name": "gpu-readiness-service-account",
            "expression": f"request.userInfo.username == '{user}'",
        }
    ]


# Deliberate checkov findings, with the reason a reviewer needs.
CHECKOV_SKIPS = (
    "CKV_K8S_8=The container is a shell loop that then sleeps; a liveness probe has "
    "nothing to observe, and a stuck loop only delays pods on one new node",
    "CKV_K8S_9=Nothing connects to this pod; readiness gates no traffic",
    "CKV_K8S_38=The pod reads and patches its node through the API server: it needs "
    "its service account token",
    "CKV_K8S_43=Pinned by version tag (alpine/k8s tracks kubectl releases); pin a "
    "digest through an overlay where the registry is mirrored",
)


def applies(cp: ClusterPlan) -> bool:
    """Only EKS clusters with GPU pools carry the startup taint this pod removes."""
    return isinstance(cp.provider, AwsProvider) and bool(cp.cluster.node_pools)


def tolerations(cp: ClusterPlan) -> list[dict[str, str]]:
    """One toleration per (key, effect) the GPU pools taint nodes with, startup taint included."""
    taints = [dict(STARTUP_TAINT)]
    for pool in cp.cluster.node_pools:
        taints += cp.provider.gpu_taints(pool)
    keys = sorted({(t["key"], t["effect"]) for t in taints})
    return [{"key": k, "operator": "Exists", "effect": e} for k, e in keys]


def affinity(cp: ClusterPlan) -> dict[str, Any]:
    """Nodes of the GPU pools only: they all carry GPU_NODE_LABEL."""
    for pool in cp.cluster.node_pools:
        labels = cp.provider.gpu_node_labels(cp.cluster, pool, cp.gpus[pool.gpu])
        if GPU_NODE_LABEL not in labels:
            # A code change, not a catalog input: fail rather than never untaint.
            raise RuntimeError(f"node pool {pool.name} no longer labels its nodes {GPU_NODE_LABEL}")
    term = {"matchExpressions": [{"key": GPU_NODE_LABEL, "operator": "Exists"}]}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
        }
    }


def outputs(cp: ClusterPlan) -> Iterator[Output]:
    if not applies(cp):
        return
    labels = {**cp.labels, "app.kubernetes.io/name": NAME, "app.kubernetes.io/component": NAME}
    base = {"name": NAME, "namespace": NAMESPACE, "labels": labels}
    yield Output(
        f"{FOLDER}/{file_name('Namespace', NAMESPACE)}",
        "nodepools/aws/gpu-readiness-namespace.yaml.j2",
        {
            "name": NAMESPACE,
            "labels": {**cp.labels, "pod-security.kubernetes.io/enforce": "restricted"},
        },
    )
    yield Output(
        f"{FOLDER}/{file_name('ServiceAccount', NAME)}",
        "nodepools/aws/gpu-readiness-serviceaccount.yaml.j2",
        base,
    )
    yield Output(
        f"{FOLDER}/{file_name('ClusterRole', NAME)}",
        "nodepools/aws/gpu-readiness-clusterrole.yaml.j2",
        {**base, "rules": RULES},
    )
    yield Output(
        f"{FOLDER}/{file_name('ClusterRoleBinding', NAME)}",
        "nodepools/aws/gpu-readiness-clusterrolebinding.yaml.j2",
        base,
    )
    policy = {"name": POLICY_NAME, "labels": labels}
    yield Output(
        f"{FOLDER}/{file_name('ValidatingAdmissionPolicy', POLICY_NAME)}",
        "nodepools/aws/gpu-readiness-vap.yaml.j2",
        {**policy, "match_conditions": _match_conditions(), "validations": VALIDATIONS},
    )
    yield Output(
        f"{FOLDER}/{file_name('ValidatingAdmissionPolicyBinding', POLICY_NAME)}",
        "nodepools/aws/gpu-readiness-vapbinding.yaml.j2",
        policy,
    )
    yield Output(
        f"{FOLDER}/{file_name('NetworkPolicy', NAME)}",
        "nodepools/aws/gpu-readiness-networkpolicy.yaml.j2",
        {**base, "selector": {"app.kubernetes.io/name": NAME}, "api_port": API_PORT},
    )
    yield Output(
        f"{FOLDER}/{file_name('DaemonSet', NAME)}",
        "nodepools/aws/gpu-readiness-daemonset.yaml.j2",
        {
            **base,
            "selector": {"app.kubernetes.io/name": NAME},
            "annotations": {f"checkov.io/skip{i}": why for i, why in enumerate(CHECKOV_SKIPS, 1)},
            "image": images.tool_image(cp.platform, "gpuReadiness"),
            "affinity": affinity(cp),
            "tolerations": tolerations(cp),
            # On EKS system-node-critical is admitted in any namespace (only
            # GKE limits it to kube-system unless a ResourceQuota admits it):
            # the pod must not be preempted before it has untainted the node.
            "priority_class": "system-node-critical",
            "env": [
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "TAINT_KEY", "value": STARTUP_TAINT["key"]},
                {"name": "TAINT_EFFECT", "value": STARTUP_TAINT["effect"]},
                {"name": "POLL_SECONDS", "value": str(POLL_SECONDS)},
                # kubectl writes its discovery cache under $HOME; the root fs is read-only.
                {"name": "HOME", "value": "/tmp"},
            ],
            "resources": RESOURCES,
            "run_as": RUN_AS,
        },
    )
