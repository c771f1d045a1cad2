"""Route by the request body's `model`, as every OpenAI client sends it.

Envoy picks a route from the request's headers before it reads the body, so
the gateway cannot match `{"model": "..."}` by itself. The Gateway API
Inference Extension's body-based router (BBR, kubernetes-sigs/
gateway-api-inference-extension `pkg/bbr`, image `bbr` v1.3.0) is the
standard part that bridges this: an Envoy external processor that reads the
request body, copies `model` into the `X-Gateway-Model-Name` header and the
base model it belongs to (from ConfigMaps labelled
`inference-gateway.k8s.io/managed: "true"`, data `baseModel` and `adapters`)
into `X-Gateway-Base-Model-Name`, and asks Envoy to clear its route cache so
the route is chosen again with those headers (`ClearRouteCache: true`,
`pkg/bbr/handlers/request.go`). Into `infrastructure/configs/body-router/`,
namespace `istio-ingress`, on every cluster that routes models:

- the router's Deployment (two replicas, spread over zones, PDB), Service,
  ServiceAccount and a Role that reads ConfigMaps in its own namespace only;
- one ConfigMap per served model naming it a base model (BBR answers an empty
  base-model header for names it has no ConfigMap for), in the model's own
  Flux folder (`models/<model>/`, beside its routes) so the router's folder
  does not grow with the catalog;
- an `EnvoyFilter` inserting `envoy.filters.http.ext_proc` into the ingress
  gateway's HTTP filter chain only (`workloadSelector`, `context: GATEWAY`),
  just before the router filter, so JWT authentication, the authorization
  policies and the WAF run first and an unauthenticated client never reaches
  the body parser. The processing mode is the upstream chart's
  (`config/charts/body-based-routing/templates/istio.yaml` at v1.3.0): request
  headers and body (full-duplex streamed, with `--streaming`) and request
  trailers are sent; responses are not touched (`response_body_mode: NONE`),
  so server-sent-event streams flow through unbuffered;
- a `DestinationRule` for the router: the router serves gRPC over TLS with a
  certificate it generates at start (`internal/tls`), which nothing could
  verify, so the gateway uses TLS without verification, as upstream does. The
  router pod is not injected (no sidecar would add mTLS around that TLS);
  the traffic never leaves the namespace.

`traffic.py` then matches the headers: per model its path prefix, the
`x-llmgen-model` header, then its base-model header; then the gateway's own
`GET /v1/models` and OpenAI-shaped errors for a model the environment does
not serve.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgen.catalog import images
from llmgen.render.concerns import istio
from llmgen.render.types import Output, file_name, model_layer

if TYPE_CHECKING:
    from llmgen.render.concerns.istio import MeshView

FOLDER = "infrastructure/configs/body-router"
NAME = "body-based-router"
#: The Platform's `spec.images.bodyRouter` overrides it (catalog/images.py).
IMAGE_KEY = "bodyRouter"
GRPC_PORT = 9004
HEALTH_PORT = 9005
#: distroless/static:nonroot, the router image's base (bbr.Dockerfile): UID
#: 65532 has a passwd entry there.
RUN_AS = 65532
REPLICAS = 2
API_PORT = 443

#: The headers the router sets (pkg/bbr/handlers/request.go, v1.3.0); Envoy
#: matches header names case-insensitively and Istio lower-cases them.
MODEL_NAME_HEADER = "x-gateway-model-name"
BASE_MODEL_HEADER = "x-gateway-base-model-name"
#: Only ConfigMaps with this label reach the router's cache (cmd/bbr/runner).
MANAGED_LABEL = "inference-gateway.k8s.io/managed"

RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}
RULES = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]

#: Envoy's ext_proc, as the upstream chart configures it for Istio. A router
#: error fails the request (failure_mode_allow false, as upstream): passing it
#: on without the header would answer "model not found" for a model that exists.
EXT_PROC = {
    "name": "envoy.filters.http.ext_proc",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
        "failure_mode_allow": False,
        "allow_mode_override": True,
        "processing_mode": {
            "request_header_mode": "SEND",
            "response_header_mode": "SKIP",
            "request_body_mode": "FULL_DUPLEX_STREAMED",
            "response_body_mode": "NONE",
            "request_trailer_mode": "SEND",
            "response_trailer_mode": "SKIP",
        },
        "grpc_service": {
            "envoy_grpc": {
                "cluster_name": (
                    f"outbound|{GRPC_PORT}||{NAME}.{istio.INGRESS_NAMESPACE}.svc.cluster.local"
                )
            }
        },
    },
}


def router_host() -> str:
    return f"{NAME}.{istio.INGRESS_NAMESPACE}.svc.cluster.local"


def envoy_patches() -> list[dict[str, Any]]:
    """Insert ext_proc just before the router filter of the gateway's listeners."""
    return [
        {
            "applyTo": "HTTP_FILTER",
            "match": {
                "context": "GATEWAY",
                "listener": {
                    "filterChain": {
                        "filter": {
                            "name": "envoy.filters.network.http_connection_manager",
                            "subFilter": {"name": "envoy.filters.http.router"},
                        }
                    }
                },
            },
            "patch": {"operation": "INSERT_BEFORE", "value": EXT_PROC},
        }
    ]


def base_model_data(served_name: str, adapters: tuple[str, ...] = ()) -> dict[str, str]:
    """A ConfigMap's data as the router parses it (pkg/bbr/datastore): `baseModel`
    and a YAML list of adapter names."""
    data = {"baseModel": served_name}
    if adapters:
        data["adapters"] = json.dumps(list(adapters))  # a JSON list is a YAML list
    return data


def outputs(mv: MeshView) -> Iterator[Output]:
    models = mv.served_models()
    if not models:
        return
    cp = mv.cp
    ns = istio.INGRESS_NAMESPACE
    labels = {**cp.labels, "app.kubernetes.io/name": NAME, "app.kubernetes.io/component": NAME}
    selector = {"app.kubernetes.io/name": NAME}
    base = {"name": NAME, "namespace": ns, "labels": labels}
    yield Output(
        f"{FOLDER}/{file_name('ServiceAccount', NAME)}",
        "mesh/bodyrouter-serviceaccount.yaml.j2",
        base,
    )
    yield Output(
        f"{FOLDER}/{file_name('Role', NAME)}",
        "mesh/bodyrouter-role.yaml.j2",
        {**base, "rules": RULES},
    )
    yield Output(
        f"{FOLDER}/{file_name('RoleBinding', NAME)}",
        "mesh/bodyrouter-rolebinding.yaml.j2",
        base,
    )
    yield Output(
        f"{FOLDER}/{file_name('Deployment', NAME)}",
        "mesh/bodyrouter-deployment.yaml.j2",
        {
            **base,
            "annotations": {
                "checkov.io/skip1": (
                    "CKV_K8S_43=Pinned by release tag unless the Platform's "
                    "spec.images.bodyRouter adds a digest (environments with "
                    "requirePinned require one)"
                ),
                "checkov.io/skip3": (
                    "CKV_K8S_11=No CPU limit: every gateway request waits on the router, "
                    "and CFS throttling would add its latency to each one"
                ),
                "checkov.io/skip4": (
                    "CKV_K8S_15=IfNotPresent: the release tag is immutable upstream, and a "
                    "registry outage must not stop a rescheduled router from starting"
                ),
                "checkov.io/skip2": (
                    "CKV_K8S_38=The router watches its ConfigMaps through the API "
                    "(a Role limited to ConfigMaps in istio-ingress)"
                ),
            },
            "replicas": REPLICAS,
            "selector": selector,
            # No sidecar: the router terminates its own TLS (see the module docstring).
            "pod_labels": {**labels, "sidecar.istio.io/inject": "false"},
            "spread": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": selector},
                },
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": selector},
                },
            ],
            "image": images.tool_image(cp.platform, IMAGE_KEY),
            "args": [
                "--streaming",
                f"--grpc-port={GRPC_PORT}",
                f"--grpc-health-port={HEALTH_PORT}",
            ],
            "grpc_port": GRPC_PORT,
            "health_port": HEALTH_PORT,
            "resources": RESOURCES,
            "run_as": RUN_AS,
        },
    )
    yield Output(
        f"{FOLDER}/{file_name('NetworkPolicy', NAME)}",
        "mesh/bodyrouter-networkpolicy.yaml.j2",
        {
            **base,
            "selector": selector,
            "gateway_labels": {"istio": istio.INGRESS_LABELS["istio"]},
            "grpc_port": GRPC_PORT,
            "health_port": HEALTH_PORT,
            "api_port": API_PORT,
        },
    )
    yield Output(
        f"{FOLDER}/{file_name('PodDisruptionBudget', NAME)}",
        "mesh/bodyrouter-pdb.yaml.j2",
        {**base, "selector": selector},
    )
    yield Output(
        f"{FOLDER}/{file_name('Service', NAME)}",
        "mesh/bodyrouter-service.yaml.j2",
        {**base, "selector": selector, "grpc_port": GRPC_PORT},
    )
    yield Output(
        f"{FOLDER}/{file_name('DestinationRule', NAME)}",
        "mesh/bodyrouter-destinationrule.yaml.j2",
        {
            **base,
            "host": router_host(),
            "export_to": ["."],
            "traffic_policy": {"tls": {"mode": "SIMPLE", "insecureSkipVerify": True}},
        },
    )
    yield Output(
        f"{FOLDER}/{file_name('EnvoyFilter', NAME)}",
        "mesh/bodyrouter-envoyfilter.yaml.j2",
        {
            **base,
            "workload_labels": {"istio": istio.INGRESS_LABELS["istio"]},
            "patches": envoy_patches(),
        },
    )
    for model in models:
        cm = f"{NAME}-{model.name}"
        yield Output(
            f"{model_layer(model.name)}/{file_name('ConfigMap', cm)}",
            "mesh/bodyrouter-configmap.yaml.j2",
            {
                "name": cm,
                "namespace": ns,
                "labels": {**mv.model_labels(model), MANAGED_LABEL: "true"},
                "data": base_model_data(
                    model.served_model_name, tuple(a.name for a in model.adapters)
                ),
            },
            mv.model_hash(model.name),
        )
