"""Mesh security: mTLS, OIDC at the gateway and at each model, default-deny networking.

Into `infrastructure/configs/security/`:

- `PeerAuthentication/default` in istio-system (the root namespace): STRICT
  mTLS mesh-wide.
- Where the environment has OIDC, on the ingress gateway: a
  `RequestAuthentication` (issuer, JWKS, audiences; invalid tokens get 401)
  and a DENY `AuthorizationPolicy` for every request without a valid token
  except CORS preflights. DENY, not ALLOW, so no route added later can slip
  past it: it has no path condition at all.

Into `models/<model>/` (the model namespace exists only where the model is
placed):

- `RequestAuthentication` + ALLOW `AuthorizationPolicy`: the model accepts
  only the ingress gateways' identity (from any cluster of the mesh) and,
  with OIDC, only with a valid token (the gateway forwards it), plus GET
  /health. Kubelet probes never meet this policy: Istio rewrites them to the
  sidecar agent, which calls the app over localhost.
- `NetworkPolicy`: default deny in and out, then exactly what serving needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgen.render.concerns import group, istio
from llmgen.render.concerns.istio import MeshView
from llmgen.render.types import Output, file_name

if TYPE_CHECKING:
    from llmgen.catalog.model import Oidc
    from llmgen.plan.build import Placement


def restricted_container(uid: int) -> dict[str, Any]:
    """A container's securityContext under Pod Security `restricted` (every llmgen
    namespace enforces it): no privilege escalation, no capabilities, read-only
    root, a numeric non-root user and group, the runtime's seccomp profile."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


CONFIGS = "infrastructure/configs/security"

# Cloud object stores (weights) and STS/OAuth endpoints have no stable IPs,
# and core NetworkPolicy has no FQDN rules: HTTPS egress is open by port.
HTTPS_ANYWHERE = {"ipBlock": {"cidr": "0.0.0.0/0"}}
KUBE_DNS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}


def _ns(name: str) -> dict[str, Any]:
    return {"matchLabels": {"kubernetes.io/metadata.name": name}}


def jwt_rules(oidc: Oidc, forward: bool) -> list[dict[str, Any]]:
    rule: dict[str, Any] = {"issuer": oidc.issuer, "jwksUri": oidc.jwks_uri}
    if oidc.audiences:
        rule["audiences"] = list(oidc.audiences)
    if forward:
        # The model's sidecar verifies the token again (defence in depth).
        rule["forwardOriginalToken"] = True
    return [rule]


def gateway_deny_rules() -> list[dict[str, Any]]:
    """Deny everything without a verified token, except CORS preflights (no token by design)."""
    return [
        {
            "from": [{"source": {"notRequestPrincipals": ["*"]}}],
            "to": [{"operation": {"notMethods": ["OPTIONS"]}}],
        }
    ]


def model_allow_rules(mv: MeshView, oidc: Oidc | None) -> list[dict[str, Any]]:
    """What reaches a model: the ingress gateways (with a token where OIDC is on), and /health."""
    source: dict[str, Any] = {"principals": [mv.ingress_principal]}
    if oidc is not None:
        source["requestPrincipals"] = ["*"]
    return [
        {"from": [{"source": source}], "to": [{"operation": {"ports": [str(istio.VLLM_PORT)]}}]},
        {"to": [{"operation": {"methods": ["GET"], "paths": [istio.HEALTH_PATH]}}]},
    ]


def cluster_outputs(mv: MeshView) -> Iterator[Output]:
    cp = mv.cp
    labels = cp.labels
    yield Output(
        f"{CONFIGS}/{file_name('PeerAuthentication', 'default')}",
        "mesh/peerauthentication.yaml.j2",
        {"name": "default", "namespace": istio.ISTIO_SYSTEM, "labels": labels, "mode": "STRICT"},
        cp.input_hash,
    )
    oidc = mv.environment.oidc
    if oidc is None:
        return
    selector = {"istio": istio.INGRESS_LABELS["istio"]}
    yield Output(
        f"{CONFIGS}/{file_name('RequestAuthentication', 'gateway-jwt')}",
        "mesh/requestauthentication.yaml.j2",
        {
            "name": "gateway-jwt",
            "namespace": istio.INGRESS_NAMESPACE,
            "labels": labels,
            "selector": selector,
            "jwt_rules": jwt_rules(oidc, forward=True),
        },
        cp.input_hash,
    )
    yield Output(
        f"{CONFIGS}/{file_name('AuthorizationPolicy', 'gateway-require-jwt')}",
        "mesh/authorizationpolicy.yaml.j2",
        {
            "name": "gateway-require-jwt",
            "namespace": istio.INGRESS_NAMESPACE,
            "labels": labels,
            "selector": selector,
            "action": "DENY",
            "rules": gateway_deny_rules(),
        },
        cp.input_hash,
    )


def network_policies(
    cp_provider_egress: list[dict[str, Any]], node_dns_ips: tuple[str, ...] = ()
) -> dict[str, dict[str, Any]]:
    """The model namespace's NetworkPolicies by name: default deny, then the needed allows.

    DNS goes to kube-dns pods and to the node-local resolvers of the cloud
    (`node_dns_ips`: NodeLocal DNSCache, GKE Cloud DNS), which are no pods,
    so a pod selector alone would drop every lookup there (tektoncd/operator#4000).
    """
    vllm = {"protocol": "TCP", "port": istio.VLLM_PORT}
    return {
        "default-deny": {
            "pod_selector": {},
            "policy_types": ["Ingress", "Egress"],
            "ingress": None,
            "egress": None,
        },
        "allow-serving": {
            "pod_selector": {},
            "policy_types": ["Ingress"],
            "ingress": [
                {
                    # Requests: this cluster's ingress gateway, and other
                    # clusters' gateways through this network's east-west gateway.
                    "from": [
                        {
                            "namespaceSelector": _ns(istio.INGRESS_NAMESPACE),
                            "podSelector": {"matchLabels": dict(istio.INGRESS_LABELS)},
                        },
                        {
                            "namespaceSelector": _ns(istio.ISTIO_SYSTEM),
                            "podSelector": {"matchLabels": dict(istio.EASTWEST_LABELS)},
                        },
                    ],
                    "ports": [vllm],
                },
                {
                    # Prometheus: vLLM metrics and the sidecar's merged metrics.
                    "from": [{"namespaceSelector": _ns(istio.MONITORING_NAMESPACE)}],
                    "ports": [vllm]
                    + [{"protocol": "TCP", "port": p} for p in istio.SIDECAR_METRICS_PORTS],
                },
            ],
            "egress": None,
        },
        "allow-egress": {
            "pod_selector": {},
            "policy_types": ["Egress"],
            "ingress": None,
            "egress": [
                {
                    "to": [KUBE_DNS] + [{"ipBlock": {"cidr": f"{ip}/32"}} for ip in node_dns_ips],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
                {
                    # The sidecar's xDS and certificates (the webhook port
                    # 15017 is called by the API server, not by pods).
                    "to": [
                        {
                            "namespaceSelector": _ns(istio.ISTIO_SYSTEM),
                            "podSelector": {"matchLabels": dict(istio.ISTIOD_LABELS)},
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": istio.ISTIOD_XDS_PORT}],
                },
                {
                    # Weights from the cloud object store, cloud credentials.
                    "to": [HTTPS_ANYWHERE],
                    "ports": [{"protocol": "TCP", "port": 443}],
                },
                *cp_provider_egress,
            ],
        },
    }


def group_policy(lws: str) -> dict[str, Any]:
    """A multi-node model's pods reach each other on any port: Ray (GCS,
    object and node managers, workers) and NCCL pick their ports at run time.

    Selected by the LeaderWorkerSet controller's set-name label, which every
    pod of the set carries (render/concerns/group.py).
    """
    same_set = {"podSelector": {"matchLabels": {group.SET_NAME_LABEL: lws}}}
    return {
        "pod_selector": {"matchLabels": {group.SET_NAME_LABEL: lws}},
        "policy_types": ["Ingress", "Egress"],
        "ingress": [{"from": [same_set]}],
        "egress": [{"to": [same_set]}],
    }


def model_outputs(mv: MeshView, p: Placement) -> Iterator[Output]:
    folder = f"models/{p.name}"
    ns = p.namespace
    labels = p.labels
    oidc = mv.environment.oidc
    selector = dict(p.selector_labels)
    if oidc is not None:
        yield Output(
            f"{folder}/{file_name('RequestAuthentication', p.name)}",
            "mesh/requestauthentication.yaml.j2",
            {
                "name": p.name,
                "namespace": ns,
                "labels": labels,
                "selector": selector,
                "jwt_rules": jwt_rules(oidc, forward=False),
            },
            p.input_hash,
        )
    yield Output(
        f"{folder}/{file_name('AuthorizationPolicy', p.name)}",
        "mesh/authorizationpolicy.yaml.j2",
        {
            "name": p.name,
            "namespace": ns,
            "labels": labels,
            "selector": selector,
            "action": "ALLOW",
            "rules": model_allow_rules(mv, oidc),
        },
        p.input_hash,
    )
    extra = mv.cp.provider.workload_identity_egress(mv.cp.cluster)
    dns_ips = mv.cp.provider.node_dns_ips
    policies = network_policies(extra, dns_ips)
    if p.model.multi_node:
        policies["allow-group"] = group_policy(p.name)
    for name, spec in policies.items():
        yield Output(
            f"{folder}/{file_name('NetworkPolicy', name)}",
            "mesh/networkpolicy.yaml.j2",
            {"name": name, "namespace": ns, "labels": labels, **spec},
            p.input_hash,
        )


def outputs(mv: MeshView) -> Iterator[Output]:
    yield from cluster_outputs(mv)
    for p in mv.cp.placements:
        yield from model_outputs(mv, p)
