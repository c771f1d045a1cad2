"""Inference-aware endpoint picking (`routing.endpointPicking: inferencePool`).

For an environment that asks for it, each model placed in a cluster gets, per
track (stable, and canary where the plan runs one), in its own folder:

- an `InferencePool` (inference.networking.k8s.io/v1) selecting exactly that
  track's vLLM pods (the Deployment's selector) on the vLLM port;
- its endpoint picker (EPP), as the upstream `inferencepool` chart renders it
  at gateway-api-inference-extension v1.3.0 (config/charts/inferencepool):
  Deployment `<pool>-epp` (one replica, `Recreate`: the prefix-cache index is
  per replica), Service (`grpc-ext-proc` 9002, `http-metrics` 9090),
  ServiceAccount, Role and RoleBinding (read pods, the pool, objectives), and
  the ConfigMap with the chart's default `EndpointPickerConfig`: the
  `queue-scorer` (weight 2), `kv-cache-utilization-scorer` (2) and
  `prefix-cache-scorer` (3) plugins, plus `lora-affinity-scorer` (2) for a
  model with LoRA adapters (a request naming an adapter goes to a replica
  that has it loaded);
- an `HTTPRoute` whose parent is the cluster's inference `Gateway`
  (render/concerns/inferencegateway.py) and whose backends are the model's
  pools, weighted by the environment's canary split;
- the namespace's extra allows: the inference gateway and the picker reach
  the vLLM port (NetworkPolicy and AuthorizationPolicy), the gateway reaches
  the picker.

Deviations from the chart, each because of the mesh: the picker runs with a
sidecar and `--secure-serving=false` (the mesh's mTLS replaces the picker's
self-signed TLS, so no `DestinationRule` with `insecureSkipVerify`), and with
`--metrics-endpoint-auth=false` (Prometheus reads the sidecar's merged port
15020, outside mTLS, as for every model pod; the chart's token Secret and
metrics ClusterRole are not needed).

Evidence for what the controllers do with these fields:
- Istio 1.28.0 `pilot/pkg/config/kube/gateway/inferencepool_collection.go`:
  a pool is only programmed when an HTTPRoute accepted by an Istio Gateway
  names it; it makes a shadow Service `<pool>-ip-<hash>` selecting
  `spec.selector.matchLabels` with `targetPorts[*].number` as target ports,
  and requires `endpointPickerRef.port`; `conversion.go` refuses the backend
  unless istiod runs with ENABLE_GATEWAY_API_INFERENCE_EXTENSION=true.
- GIE v1.3.0 `pkg/epp/server/options.go`: `--pool-name`, `--pool-namespace`,
  `--pool-group` (default inference.networking.k8s.io), `--secure-serving`
  and `--metrics-endpoint-auth` (both default true), metrics port 9090,
  gRPC 9002, health 9003; the vLLM metrics it reads by default
  (`vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc`,
  `vllm:lora_requests_info`) are vLLM V1's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgen.catalog import images, names
from llmgen.plan import routing
from llmgen.render.concerns import istio
from llmgen.render.concerns.security import restricted_container
from llmgen.render.types import Output, file_name

if TYPE_CHECKING:
    from llmgen.plan.build import Placement
    from llmgen.render.concerns.istio import MeshView

#: The Platform's `spec.images.endpointPicker` overrides it (catalog/images.py).
IMAGE_KEY = "endpointPicker"
GIE_VERSION = "v1.3.0"
POOL_API = "inference.networking.k8s.io/v1"
POOL_GROUP = "inference.networking.k8s.io"
EXT_PROC_PORT = 9002
HEALTH_PORT = 9003
METRICS_PORT = 9090
CONFIG_FILE = "default-plugins.yaml"
#: The chart's ConfigMap `default-plugins.yaml` (templates/epp-config.yaml, v1.3.0):
#: (plugin type, weight in the default scheduling profile).
SCORERS = (
    ("queue-scorer", 2),
    ("kv-cache-utilization-scorer", 2),
    ("prefix-cache-scorer", 3),
)
#: For a model with LoRA adapters: prefer a replica that has the requested
#: adapter loaded, then one with room to load it (pkg/epp/scheduling/framework/
#: plugins/scorer/lora_affinity.go, registered in cmd/epp/runner/runner.go at
#: v1.3.0; it reads vLLM's `vllm:lora_requests_info`, the picker's default
#: --lora-info-metric). Not in the chart's default config.
LORA_SCORER = ("lora-affinity-scorer", 2)


def plugins_config(with_adapters: bool) -> str:
    """The picker's EndpointPickerConfig (the file named by --config-file)."""
    scorers = (*SCORERS, LORA_SCORER) if with_adapters else SCORERS
    lines = [
        "apiVersion: inference.networking.x-k8s.io/v1alpha1",
        "kind: EndpointPickerConfig",
        "plugins:",
        *(f"- type: {name}" for name, _ in scorers),
        "schedulingProfiles:",
        "- name: default",
        "  plugins:",
    ]
    for name, weight in scorers:
        lines += [f"  - pluginRef: {name}", f"    weight: {weight}"]
    return "\n".join(lines) + "\n"


#: The chart's Role (templates/rbac.yaml) for a v1 pool.
RULES = [
    {
        "apiGroups": ["inference.networking.x-k8s.io"],
        "resources": ["inferenceobjectives", "inferencemodelrewrites"],
        "verbs": ["get", "watch", "list"],
    },
    {"apiGroups": [POOL_GROUP], "resources": ["inferencepools"], "verbs": ["get", "watch", "list"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch", "list"]},
]
RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
#: distroless/static:nonroot, the picker image's base: UID 65532.
RUN_AS = 65532
#: Where the picker reads each replica's vLLM metrics: the sidecar's merged
#: endpoint (pilot-agent, outside mTLS; the injector excludes it from capture),
#: not vLLM's own port. Under STRICT mTLS a scrape of the pod IP on 8000 is
#: plain text from the picker's sidecar (no Service host matches a pod IP:
#: Envoy's passthrough) and the replica's sidecar refuses it. The picker's
#: `--model-server-metrics-port` (deprecated but honoured at v1.3.0 for a pool
#: with one target port, pkg/epp/datastore/datastore.go) and
#: `--model-server-metrics-path` point it there; the vLLM pods carry the
#: prometheus.io annotations that make the sidecar merge vLLM's /metrics.
POD_METRICS_PORT = 15020
POD_METRICS_PATH = "/stats/prometheus"
#: The chart's grace period: as long as the longest pod of the pool may drain.
GRACE_SECONDS = 130
#: The label telling a picker's pods apart (the chart's `inferencepool: <name>-epp`).
SELECTOR_LABEL = "inferencepool"
#: Every picker pod of a model carries this (its PodMonitor selects it).
PICKER_OF_LABEL = "llmgen.io/endpoint-picker-of"
#: The cluster's inference Gateway (inferencegateway.py) and its listener.
GATEWAY = "llm-inference"
GATEWAY_CLASS = "istio"
#: Istio names the Deployment, Service and ServiceAccount `<gateway>-<class>`
#: (1.28.0 pilot/pkg/config/kube/gateway/conversion.go getDefaultName).
GATEWAY_DEPLOYMENT = f"{GATEWAY}-{GATEWAY_CLASS}"
#: The label Istio puts on the gateway's pods (istio-discovery files/kube-gateway.yaml).
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
LISTENER = "mesh"
#: Set by the edge's route (traffic.py), matched by the model's HTTPRoute.
POOL_HEADER = "x-llmgen-pool"


def enabled(mv: MeshView) -> bool:
    return mv.environment.endpoint_picking == "inferencePool"


def pool_name(model: str, track: str) -> str:
    return model if track == routing.STABLE else names.canary_name(model)


def epp_name(pool: str) -> str:
    """`<pool>-epp`, the chart's name for the picker's objects. The chart also cuts
    the pool name to 40 characters first; llmgen does not, or a long model's stable
    and canary pickers would share one name (model names leave room: catalog/names.py)."""
    return pool + "-epp"


def tracks(p: Placement) -> tuple[str, ...]:
    return (routing.STABLE, routing.CANARY) if p.has_canary else (routing.STABLE,)


def pool_spec(p: Placement, track: str) -> dict[str, Any]:
    """Select the track's pods exactly as its Deployment does, on the vLLM port."""
    return {
        "selector": {"matchLabels": {**p.selector_labels, istio.TRACK_LABEL: track}},
        "targetPorts": [{"number": istio.VLLM_PORT}],
        "endpointPickerRef": {
            "kind": "Service",
            "name": epp_name(pool_name(p.name, track)),
            "port": {"number": EXT_PROC_PORT},
            # No picker, no request: sending a request to a pod the picker
            # did not choose would hide an outage of the picker.
            "failureMode": "FailClose",
        },
    }


def epp_args(pool: str, namespace: str) -> list[str]:
    """The chart's container args (templates/epp-deployment.yaml, v1.3.0), one replica."""
    return [
        "--pool-name",
        pool,
        "--pool-namespace",
        namespace,
        "--zap-encoder",
        "json",
        "--config-file",
        f"/config/{CONFIG_FILE}",
        "--v",
        "1",
        "--tracing=false",
        "--model-server-metrics-port",
        str(POD_METRICS_PORT),
        "--model-server-metrics-path",
        POD_METRICS_PATH,
        "--metrics-endpoint-auth=false",
        "--secure-serving=false",
    ]


def epp_pod_spec(mv: MeshView, pool: str, namespace: str) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "epp",
        "image": images.tool_image(mv.cp.platform, IMAGE_KEY),
        "imagePullPolicy": "IfNotPresent",
        "args": epp_args(pool, namespace),
        "ports": [
            {"name": "grpc", "containerPort": EXT_PROC_PORT, "protocol": "TCP"},
            {"name": "grpc-health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "livenessProbe": {
            "grpc": {"port": HEALTH_PORT, "service": "inference-extension"},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
        },
        "readinessProbe": {
            "grpc": {"port": HEALTH_PORT, "service": "inference-extension"},
            "periodSeconds": 2,
        },
        "env": [
            {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "resources": RESOURCES,
        "securityContext": restricted_container(RUN_AS),
        "volumeMounts": [{"name": "plugins-config-volume", "mountPath": "/config"}],
    }
    return {
        "serviceAccountName": epp_name(pool),
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": GRACE_SECONDS,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "plugins-config-volume", "configMap": {"name": epp_name(pool)}}],
    }


def epp_deployment_spec(mv: MeshView, model: str, pool: str, namespace: str) -> dict[str, Any]:
    selector = {SELECTOR_LABEL: epp_name(pool)}
    return {
        "replicas": 1,
        "strategy": {"type": "Recreate"},
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {
                "labels": {**selector, PICKER_OF_LABEL: model},
                # Istio merges these into the sidecar's port 15020 (the PodMonitor's).
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(METRICS_PORT),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": epp_pod_spec(mv, pool, namespace),
        },
    }


def epp_service_spec(pool: str) -> dict[str, Any]:
    return {
        "type": "ClusterIP",
        "selector": {SELECTOR_LABEL: epp_name(pool)},
        "ports": [
            {
                "name": "grpc-ext-proc",
                "port": EXT_PROC_PORT,
                "targetPort": EXT_PROC_PORT,
                "protocol": "TCP",
                "appProtocol": "http2",
            },
            {
                "name": "http-metrics",
                "port": METRICS_PORT,
                "targetPort": METRICS_PORT,
                "protocol": "TCP",
            },
        ],
    }


def route_spec(mv: MeshView, p: Placement) -> dict[str, Any]:
    """Requests the edge gateway marked for this model, to its pools by the canary split."""
    ts = tracks(p)
    stable, canary = routing.canary_split(mv.canary_weight(p.name) if len(ts) > 1 else None)
    weights = {routing.STABLE: stable, routing.CANARY: canary}
    return {
        "parentRefs": [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": GATEWAY,
                "namespace": istio.INGRESS_NAMESPACE,
                "sectionName": LISTENER,
            }
        ],
        "rules": [
            {
                "matches": [
                    {
                        "path": {"type": "PathPrefix", "value": "/"},
                        "headers": [{"type": "Exact", "name": POOL_HEADER, "value": p.name}],
                    }
                ],
                "backendRefs": [
                    {
                        "group": POOL_GROUP,
                        "kind": "InferencePool",
                        "name": pool_name(p.name, t),
                        "weight": weights[t],
                    }
                    for t in ts
                ],
                "timeouts": {"request": f"{routing.route_timeout_seconds(p.model)}s"},
            }
        ],
    }


def model_outputs(mv: MeshView, p: Placement) -> Iterator[Output]:
    folder = f"models/{p.name}"
    ns = p.namespace
    for track in tracks(p):
        pool = pool_name(p.name, track)
        epp = epp_name(pool)
        labels = {**p.labels, "app.kubernetes.io/component": "endpoint-picker"}
        base = {"namespace": ns, "labels": labels, "annotations": {}}
        yield Output(
            f"{folder}/{file_name('InferencePool', pool)}",
            "inference/inferencepool.yaml.j2",
            {**base, "name": pool, "labels": p.labels, "spec": pool_spec(p, track)},
            p.input_hash,
        )
        yield Output(
            f"{folder}/{file_name('ConfigMap', epp)}",
            "inference/configmap.yaml.j2",
            {**base, "name": epp, "data": {CONFIG_FILE: plugins_config(bool(p.model.adapters))}},
            p.input_hash,
        )
        for kind, template in (
            ("ServiceAccount", "inference/serviceaccount.yaml.j2"),
            ("RoleBinding", "inference/rolebinding.yaml.j2"),
        ):
            yield Output(
                f"{folder}/{file_name(kind, epp)}", template, {**base, "name": epp}, p.input_hash
            )
        yield Output(
            f"{folder}/{file_name('Role', epp)}",
            "inference/role.yaml.j2",
            {**base, "name": epp, "rules": RULES},
            p.input_hash,
        )
        yield Output(
            f"{folder}/{file_name('Service', epp)}",
            "inference/service.yaml.j2",
            {**base, "name": epp, "spec": epp_service_spec(pool)},
            p.input_hash,
        )
        yield Output(
            f"{folder}/{file_name('Deployment', epp)}",
            "inference/deployment.yaml.j2",
            {
                **base,
                "name": epp,
                "annotations": {
                    "checkov.io/skip1": (
                        "CKV_K8S_43=Pinned by release tag unless the Platform's "
                        "spec.images.endpointPicker adds a digest (requirePinned requires one)"
                    ),
                    "checkov.io/skip2": (
                        "CKV_K8S_38=The picker watches its pool and the pool's pods "
                        "through the API (a Role in its own namespace)"
                    ),
                    "checkov.io/skip3": (
                        "CKV_K8S_11=No CPU limit: every request of the pool waits on the picker"
                    ),
                    "checkov.io/skip4": (
                        "CKV_K8S_15=IfNotPresent: the release tag is immutable upstream"
                    ),
                },
                "spec": epp_deployment_spec(mv, p.name, pool, ns),
            },
            p.input_hash,
        )
    yield Output(
        f"{folder}/{file_name('HTTPRoute', p.name)}",
        "inference/httproute.yaml.j2",
        {
            "name": p.name,
            "namespace": ns,
            "labels": p.labels,
            "annotations": {},
            "spec": route_spec(mv, p),
        },
        p.input_hash,  # its own route only: other models do not touch it
    )
