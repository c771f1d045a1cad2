"""The model namespace's allows for InferencePool routing (docs/inference-pools.md).

- NetworkPolicy `allow-inference-pool`: the inference gateway's pods reach
  the vLLM port and the pickers' ext_proc port; the pickers reach the
  replicas' merged metrics port (15020, inferencepool.POD_METRICS_PORT).
- AuthorizationPolicy `<model>-inference-pool`: the inference gateway's
  identity (`llm-inference-istio`, the ServiceAccount Istio makes for the
  Gateway) with a verified token, as the edge is admitted by the model's own
  policy; `<pool>-epp`: only that identity calls the picker.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgen.render.concerns import inferencepool, istio
from llmgen.render.types import Output, file_name

if TYPE_CHECKING:
    from llmgen.plan.build import Placement
    from llmgen.render.concerns.istio import MeshView

GATEWAY = inferencepool.GATEWAY
GATEWAY_NAME_LABEL = inferencepool.GATEWAY_NAME_LABEL


def principal(mv: MeshView) -> str:
    """The inference gateway's identity (its ServiceAccount is Istio's `<gateway>-istio`)."""
    return istio.principal(
        istio.trust_domain(mv.cp), istio.INGRESS_NAMESPACE, inferencepool.GATEWAY_DEPLOYMENT
    )


def model_policies(mv: MeshView, p: Placement) -> Iterator[Output]:
    """The model namespace's allows for the pool: gateway -> pods and picker, picker -> pods."""
    folder = f"models/{p.name}"
    ns = p.namespace
    vllm = {"protocol": "TCP", "port": istio.VLLM_PORT}
    ext_proc = {"protocol": "TCP", "port": inferencepool.EXT_PROC_PORT}
    merged = {"protocol": "TCP", "port": inferencepool.POD_METRICS_PORT}
    gateway_pods = {
        "namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": istio.INGRESS_NAMESPACE}
        },
        "podSelector": {"matchLabels": {GATEWAY_NAME_LABEL: GATEWAY}},
    }
    pickers = {
        "podSelector": {
            "matchExpressions": [{"key": inferencepool.SELECTOR_LABEL, "operator": "Exists"}]
        }
    }
    yield Output(
        f"{folder}/{file_name('NetworkPolicy', 'allow-inference-pool')}",
        "inference/networkpolicy.yaml.j2",
        {
            "name": "allow-inference-pool",
            "namespace": ns,
            "labels": p.labels,
            "annotations": {},
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    {"from": [gateway_pods], "ports": [vllm, ext_proc]},
                    # The picker reads each replica's merged metrics (sidecar, no mTLS).
                    {"from": [pickers], "ports": [merged]},
                ],
                "egress": [
                    {
                        "to": [{"podSelector": {"matchLabels": dict(p.selector_labels)}}],
                        "ports": [merged],
                    }
                ],
            },
        },
        p.input_hash,
    )
    source: dict[str, Any] = {"principals": [principal(mv)]}
    if mv.environment.oidc is not None:
        # The edge forwards the client's token; the model checks it again.
        source["requestPrincipals"] = ["*"]
    yield Output(
        f"{folder}/{file_name('AuthorizationPolicy', p.name + '-inference-pool')}",
        "inference/authorizationpolicy.yaml.j2",
        {
            "name": p.name + "-inference-pool",
            "namespace": ns,
            "labels": p.labels,
            "annotations": {},
            "spec": {
                "selector": {"matchLabels": dict(p.selector_labels)},
                "action": "ALLOW",
                "rules": [
                    {
                        "from": [{"source": source}],
                        "to": [{"operation": {"ports": [str(istio.VLLM_PORT)]}}],
                    },
                ],
            },
        },
        p.input_hash,
    )
    for track in inferencepool.tracks(p):
        epp = inferencepool.epp_name(inferencepool.pool_name(p.name, track))
        yield Output(
            f"{folder}/{file_name('AuthorizationPolicy', epp)}",
            "inference/authorizationpolicy.yaml.j2",
            {
                "name": epp,
                "namespace": ns,
                "labels": p.labels,
                "annotations": {},
                "spec": {
                    # Istio's workload selector takes matchLabels only.
                    "selector": {"matchLabels": {inferencepool.SELECTOR_LABEL: epp}},
                    "action": "ALLOW",
                    "rules": [
                        {
                            "from": [{"source": {"principals": [principal(mv)]}}],
                            "to": [{"operation": {"ports": [str(inferencepool.EXT_PROC_PORT)]}}],
                        }
                    ],
                },
            },
            p.input_hash,
        )
