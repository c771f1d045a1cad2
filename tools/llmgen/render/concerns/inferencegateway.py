"""The cluster side of InferencePool routing: the inference Gateway, its entries, its CRDs.

In an environment with `routing.endpointPicking: inferencePool` the edge stays
what it is everywhere else (the Istio ingress gateway of the `gateway` chart:
TLS, the public load balancer and DNS, JWT authentication, the WAF, CORS, the
body-based router, `GET /v1/models`). Its route for a model sets
`x-llmgen-pool: <model>` and forwards to the Service `<model>-pool` in
`istio-ingress` instead of the model's Service. That Service selects the pods
of a second gateway, a Gateway API `Gateway` of class `istio` (Istio deploys
it as `llm-inference-istio`), and exists only on clusters where the model is
placed. There the model's HTTPRoute (inferencepool.py) matches the header and
sends to the model's InferencePools, where Istio asks the pool's endpoint
picker which replica serves the request.

Pools are cluster-local (a pool selects its own cluster's pods; the picker
scores only them). Cross-cluster failover happens one level up, exactly as
for models without pools: `<model>-pool` has endpoints in every cluster
running the model (namespace sameness over the multi-cluster mesh), the edge
prefers its own locality and fails over along `routing.failover_targets`
when outlier detection ejects the local entry (a pool with no ready replica
answers 503 through it), reaching the other cluster's inference gateway
through the east-west gateway, whose picker chooses among that cluster's
replicas (docs/inference-pools.md).

Into `infrastructure/configs/inference-gateway/`:
- the `Gateway`: one HTTPS listener terminating the mesh's own mTLS
  (`gateway.istio.io/tls-terminate-mode: ISTIO_MUTUAL`, Istio 1.28.0
  `pilot/pkg/config/kube/gateway/conversion.go` buildTLS): the Gateway API
  gateway's pods carry no `security.istio.io/tlsMode` label, so the edge
  originates mTLS explicitly (traffic.py's DestinationRule), which also lets
  it cross the east-west gateway (AUTO_PASSTHROUGH passes only mTLS); routes
  from the environment's model namespaces only; a ClusterIP Service;
- an `AuthorizationPolicy` on its pods: only the edge gateways' identity (the
  same in every cluster of the environment) may call it, so nothing skips
  the edge's JWT check and WAF.

Into each model's folder: the entry Service `<model>-pool` (istio-ingress).

Into `infrastructure/controllers/inference-crds/`: the Gateway API CRDs
(v1.4.0, the version Istio 1.28.0's go.mod builds against) and the Gateway API
Inference Extension CRDs (v1.3.0, InferencePool v1 and the x-k8s.io
InferenceObjective, InferenceModelRewrite, InferencePoolImport) from their
repositories' `config/crd` folders, applied by Flux Kustomizations. The
controllers layer health-checks the CRDs the models use (flux.py CRD_LAYER),
so no model applies before they are Established. They are never pruned:
deleting a CRD deletes every object of its kind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgen.render.concerns import (
    inferencemonitoring,
    inferencepolicies,
    inferencepool,
    istio,
)
from llmgen.render.types import Output, file_name

if TYPE_CHECKING:
    from llmgen.plan.build import ClusterPlan, Placement
    from llmgen.render.concerns.istio import MeshView

CONFIGS = "infrastructure/configs/inference-gateway"
CRDS = "infrastructure/controllers/inference-crds"
GATEWAY = inferencepool.GATEWAY
GATEWAY_CLASS = inferencepool.GATEWAY_CLASS
DEPLOYMENT = inferencepool.GATEWAY_DEPLOYMENT
GATEWAY_NAME_LABEL = inferencepool.GATEWAY_NAME_LABEL
LISTENER = inferencepool.LISTENER
PORT = 443
POOL_HEADER = inferencepool.POOL_HEADER
#: istiod's switch for InferencePool backends (1.28.0 pilot/pkg/features/experimental.go).
ISTIOD_ENV = "ENABLE_GATEWAY_API_INFERENCE_EXTENSION"

#: (name, repository, tag, path, API groups its CRDs serve)
CRD_SOURCES = (
    (
        "gateway-api",
        "https://github.com/kubernetes-sigs/gateway-api",
        "v1.4.0",
        "./config/crd/standard",
        ("gateway.networking.k8s.io",),
    ),
    (
        "gateway-api-inference-extension",
        "https://github.com/kubernetes-sigs/gateway-api-inference-extension",
        inferencepool.GIE_VERSION,
        "./config/crd",
        ("inference.networking.k8s.io", "inference.networking.x-k8s.io"),
    ),
)


def uses_pools(cp: ClusterPlan) -> bool:
    env = cp.environment
    return env is not None and env.endpoint_picking == "inferencePool" and bool(cp.placements)


def istiod_values(cp: ClusterPlan) -> dict[str, Any]:
    """What istiod needs for pools: the feature switch (off by default at 1.28.0),
    and the seccomp profile of the gateways it deploys. istio-ingress enforces
    Pod Security `restricted`, which requires one, and istiod's template for a
    Gateway API gateway (istio-discovery files/kube-gateway.yaml, 1.28.0) sets
    the pod's `seccompProfile` only from `gateways.seccompProfile` (default {}):
    without it the namespace refuses the inference gateway's pods."""
    if not uses_pools(cp):
        return {}
    return {
        "pilot": {"env": {ISTIOD_ENV: "true"}},
        "gateways": {"seccompProfile": {"type": "RuntimeDefault"}},
    }


def entry_name(model: str) -> str:
    """The model's entry Service in istio-ingress (its inference gateway pods)."""
    return f"{model}-pool"


def entry_host(model: str) -> str:
    return f"{entry_name(model)}.{istio.INGRESS_NAMESPACE}.svc.cluster.local"


def entry_output(mv: MeshView, p: Placement) -> Output:
    return Output(
        f"models/{p.name}/{file_name('Service', entry_name(p.name))}",
        "inference/service.yaml.j2",
        {
            "name": entry_name(p.name),
            "namespace": istio.INGRESS_NAMESPACE,
            "labels": p.labels,
            "annotations": {},
            "spec": {
                "type": "ClusterIP",
                "selector": {GATEWAY_NAME_LABEL: GATEWAY},
                "ports": [
                    {
                        # HTTP inside the mesh's mTLS (the edge's DestinationRule
                        # originates ISTIO_MUTUAL; the listener terminates it).
                        "name": "http",
                        "port": PORT,
                        "targetPort": PORT,
                        "protocol": "TCP",
                        "appProtocol": "http",
                    }
                ],
            },
        },
        p.input_hash,
    )


#: The ConfigMap Istio reads the gateway's Deployment, HPA and PDB overlays from
#: (`spec.infrastructure.parametersRef`; 1.28.0 deploymentcontroller.go
#: `fetchParameters`, `applyOverlay`: strategic merge patches under the keys
#: `deployment`, `horizontalPodAutoscaler`, `podDisruptionBudget`; the HPA and
#: PDB exist only when their key is set, else the Deployment runs one pod).
OPTIONS = f"{GATEWAY}-options"


def overlays() -> dict[str, str]:
    """As many pods as the edge gateway, spread over zones, never all evicted at once."""
    low, high = istio.GATEWAY_REPLICAS
    labels = {GATEWAY_NAME_LABEL: GATEWAY}
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": labels},
        }
    ]
    hpa = {
        "spec": {
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        }
    }
    return {
        "deployment": json.dumps(
            {"spec": {"template": {"spec": {"topologySpreadConstraints": spread}}}},
            sort_keys=True,
        ),
        "horizontalPodAutoscaler": json.dumps(hpa, sort_keys=True),
        "podDisruptionBudget": json.dumps({"spec": {"minAvailable": 1}}, sort_keys=True),
    }


def gateway_spec(mv: MeshView) -> dict[str, Any]:
    return {
        "gatewayClassName": GATEWAY_CLASS,
        "infrastructure": {"parametersRef": {"group": "", "kind": "ConfigMap", "name": OPTIONS}},
        "listeners": [
            {
                "name": LISTENER,
                "port": PORT,
                "protocol": "HTTPS",
                "tls": {
                    "mode": "Terminate",
                    "options": {"gateway.istio.io/tls-terminate-mode": "ISTIO_MUTUAL"},
                },
                "allowedRoutes": {
                    "namespaces": {
                        "from": "Selector",
                        "selector": {
                            "matchLabels": {
                                "app.kubernetes.io/managed-by": "llmgen",
                                "llmgen.io/environment": mv.cp.env_name,
                            }
                        },
                    },
                    "kinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                },
            }
        ],
    }


def cluster_outputs(mv: MeshView) -> Iterator[Output]:
    cp = mv.cp
    if not uses_pools(cp):
        return
    ns = istio.INGRESS_NAMESPACE
    base = {"namespace": ns, "labels": cp.labels, "annotations": {}}
    yield Output(
        f"{CONFIGS}/{file_name('Gateway', GATEWAY)}",
        "inference/gateway.yaml.j2",
        {
            **base,
            "name": GATEWAY,
            # Internal only: the edge gateway is the one public entry.
            "annotations": {"networking.istio.io/service-type": "ClusterIP"},
            "spec": gateway_spec(mv),
        },
        cp.input_hash,
    )
    yield Output(
        f"{CONFIGS}/{file_name('ConfigMap', OPTIONS)}",
        "inference/configmap.yaml.j2",
        {**base, "name": OPTIONS, "data": overlays()},
        cp.input_hash,
    )
    yield Output(
        f"{CONFIGS}/{file_name('AuthorizationPolicy', GATEWAY)}",
        "inference/authorizationpolicy.yaml.j2",
        {
            **base,
            "name": GATEWAY,
            "spec": {
                "selector": {"matchLabels": {GATEWAY_NAME_LABEL: GATEWAY}},
                "action": "ALLOW",
                "rules": [{"from": [{"source": {"principals": [mv.ingress_principal]}}]}],
            },
        },
        cp.input_hash,
    )


def crd_outputs(cp: ClusterPlan) -> Iterator[Output]:
    if not uses_pools(cp):
        return
    for name, url, tag, path, _groups in CRD_SOURCES:
        base = {
            "name": name,
            "namespace": istio.FLUX_NAMESPACE,
            "labels": cp.labels,
            "annotations": {},
        }
        yield Output(
            f"{CRDS}/{file_name('GitRepository', name)}",
            "inference/gitrepository.yaml.j2",
            {**base, "spec": {"interval": "1h", "url": url, "ref": {"tag": tag}}},
        )
        yield Output(
            f"{CRDS}/{file_name('Kustomization', name)}",
            "inference/kustomization.yaml.j2",
            {
                **base,
                "spec": {
                    "interval": "1h",
                    "sourceRef": {"kind": "GitRepository", "name": name},
                    "path": path,
                    "prune": False,
                    "wait": True,
                    "timeout": "5m",
                },
            },
        )


def outputs(mv: MeshView) -> Iterator[Output]:
    yield from cluster_outputs(mv)
    if inferencepool.enabled(mv):
        for p in mv.cp.placements:
            yield from inferencepool.model_outputs(mv, p)
            yield entry_output(mv, p)
            yield from inferencepolicies.model_policies(mv, p)
            yield from inferencemonitoring.model_outputs(mv, p)
