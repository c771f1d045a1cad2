"""What the add-on charts and the clouds put on a cluster that the tree does not show.

Verify sees HelmReleases, not what Helm renders from them. The wiring checks
need three facts about the pinned charts, kept here with their evidence:

- `CRD_GROUPS`: which API groups a chart installs (a custom resource in a
  later layer may use them);
- `chart_pods`: the labels, ports and service account of the pods a chart
  runs, where other resources select them (PodMonitors, policies);
- `STARTUP_SECRETS`: Secrets a chart's controller reads once, at start-up,
  so a Secret produced after the controller started is silently ignored.

`PLATFORM_GROUPS` are API groups a managed cluster serves without any add-on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# chart name -> (API groups, condition on the values, as text for messages).
# kube-prometheus-stack, keda, external-secrets, karpenter, gpu-operator and
# the Istio `base` chart ship their CRDs (crds/ or templates, on by default);
# cert-manager only with `crds.enabled` (or the older `installCRDs`).
CRD_GROUPS: dict[str, tuple[str, ...]] = {
    "kube-prometheus-stack": ("monitoring.coreos.com",),
    "keda": ("keda.sh", "eventing.keda.sh"),
    "external-secrets": ("external-secrets.io", "generators.external-secrets.io"),
    "karpenter": ("karpenter.sh", "karpenter.k8s.aws"),
    "karpenter-crd": ("karpenter.sh", "karpenter.k8s.aws"),
    "gpu-operator": ("nvidia.com",),
    "base": (
        "networking.istio.io",
        "security.istio.io",
        "telemetry.istio.io",
        "extensions.istio.io",
    ),
    "cert-manager": ("cert-manager.io", "acme.cert-manager.io"),
    "external-dns": ("externaldns.k8s.io",),
    "aws-load-balancer-controller": ("elbv2.k8s.aws",),
    "gateway-api": ("gateway.networking.k8s.io",),
    # kubernetes-sigs/lws v0.10.0 charts/lws/crds/ (LeaderWorkerSet, DisaggregatedSet).
    "lws": ("leaderworkerset.x-k8s.io", "disaggregatedset.x-k8s.io"),
    # AWS Controllers for Kubernetes: each chart ships its service's CRDs in
    # helm/crds/ (s3-controller v1.4.0, iam-controller v1.8.1).
    "s3-chart": ("s3.services.k8s.aws",),
    "iam-chart": ("iam.services.k8s.aws",),
}

# Groups every cluster of a cloud serves: GKE ships ComputeClass and
# BackendConfig (cloud.google.com) in every Standard cluster from 1.30.
PLATFORM_GROUPS: dict[str, tuple[str, ...]] = {
    "gcp": ("cloud.google.com", "networking.gke.io", "monitoring.googleapis.com"),
    "aws": ("vpcresources.k8s.aws",),
}

# Kubernetes' own API groups (served by every API server).
BUILTIN_GROUPS = frozenset(
    {
        "",
        "apps",
        "batch",
        "policy",
        "autoscaling",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "scheduling.k8s.io",
        "coordination.k8s.io",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "certificates.k8s.io",
        "discovery.k8s.io",
        "node.k8s.io",
        "events.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "resource.k8s.io",
        "apiregistration.k8s.io",
        "authentication.k8s.io",
        "authorization.k8s.io",
    }
)
FLUX_SUFFIX = ".toolkit.fluxcd.io"  # installed by `flux bootstrap`, before any layer


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def chart_name(spec: dict[str, Any], oci_urls: dict[tuple[str, str], str], ns: str) -> str:
    """The chart a HelmRelease installs: `chart.spec.chart`, or the last path
    segment of the OCIRepository its `chartRef` names."""
    chart = _dict(_dict(spec.get("chart")).get("spec")).get("chart")
    if isinstance(chart, str):
        return chart.rsplit("/", 1)[-1]
    ref = _dict(spec.get("chartRef"))
    url = oci_urls.get((str(ref.get("namespace") or ns), str(ref.get("name"))), "")
    return url.rstrip("/").rsplit("/", 1)[-1]


def installs_crds(chart: str, spec: dict[str, Any]) -> tuple[str, ...]:
    """The API groups a HelmRelease of `chart` installs, given its values."""
    groups = CRD_GROUPS.get(chart, ())
    if not groups:
        return ()
    if _dict(spec.get("install")).get("crds") == "Skip":
        return ()
    values = _dict(spec.get("values"))
    if chart == "cert-manager":
        enabled = _dict(values.get("crds")).get("enabled") or values.get("installCRDs")
        return groups if enabled is True else ()
    if chart == "external-dns":
        return groups if _dict(values.get("crd")).get("create") is True else ()
    return groups


@dataclass(frozen=True, slots=True)
class ChartPods:
    """The pods one HelmRelease runs, as far as other resources select them."""

    namespace: str
    labels: dict[str, str]
    ports: tuple[tuple[str, int], ...]  # (name, containerPort)
    service_account: str


def chart_pods(
    chart: str, release: str, namespace: str, values: dict[str, Any]
) -> ChartPods | None:
    """Istio's `gateway` chart (1.27.3; rechecked at the pinned 1.28.0, whose
    selector labels and declared port are the same): pods labelled `app`/`istio` (from
    `values.labels`, else the release name and that name without `istio-`)
    plus every other `values.labels` entry; they declare one port, 15090
    `http-envoy-prom` (manifests/charts/gateway/templates/deployment.yaml,
    _helpers.tpl `gateway.selectorLabels`); the service account is
    `serviceAccount.name`, else the release name."""
    if chart != "gateway":
        return None
    name = str(values.get("name") or release)
    labels = {str(k): str(v) for k, v in _dict(values.get("labels")).items()}
    labels.setdefault("app", name)
    labels.setdefault("istio", name.removeprefix("istio-"))
    account = str(_dict(values.get("serviceAccount")).get("name") or name)
    return ChartPods(namespace, labels, (("http-envoy-prom", 15090),), account)


# chart -> Secrets (in the release's namespace) its controller reads only at
# start-up. istiod loads a plugged-in CA from `cacerts` when it starts and
# starts its file watcher only on that path; a `cacerts` that appears later
# is ignored until the next restart (istio/istio 1.27.3
# pilot/pkg/bootstrap/istio_ca.go: useSelfSignedCA / initCACertsAndCRLWatcher;
# rechecked at the pinned 1.28.0: the file's CA-loading code is unchanged).
STARTUP_SECRETS: dict[str, tuple[str, ...]] = {"istiod": ("cacerts",)}

# The injected istio-proxy (native sidecar) declares one port (1.27.3 and 1.28.0):
# manifests/charts/istio-control/istio-discovery/files/injection-template.yaml
# `containerPort: 15090, name: http-envoy-prom`.
SIDECAR_PORTS: tuple[tuple[str, int], ...] = (("http-envoy-prom", 15090),)


# Istio's Gateway API deployment controller (istio 1.28.0
# pilot/pkg/config/kube/gateway/deploymentcontroller.go and
# manifests/charts/istio-control/istio-discovery/files/kube-gateway.yaml)
# makes, for each Gateway of class `istio`, a Deployment, Service and
# ServiceAccount named `<gateway>-istio` (conversion.go getDefaultName) in the
# Gateway's namespace. The pods carry `gateway.networking.k8s.io/gateway-name`
# and declare 15021 (status) and 15090 (http-envoy-prom); the Service exposes
# every listener port and 15021.
ISTIO_GATEWAY_CLASS = "istio"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"


@dataclass(frozen=True, slots=True)
class GatewayObjects:
    name: str  # the Deployment, Service and ServiceAccount
    pods: ChartPods
    service_ports: tuple[int, ...]


def istio_gateway(name: str, namespace: str, spec: dict[str, Any]) -> GatewayObjects | None:
    """What Istio deploys for a Gateway API Gateway, or None for another class."""
    if spec.get("gatewayClassName") != ISTIO_GATEWAY_CLASS:
        return None
    made = f"{name}-{ISTIO_GATEWAY_CLASS}"
    listeners = [
        int(p)
        for p in (_dict(x).get("port") for x in spec.get("listeners") or [])
        if isinstance(p, int)
    ]
    pods = ChartPods(
        namespace,
        {GATEWAY_NAME_LABEL: name, "gateway.networking.k8s.io/gateway-class-name": "istio"},
        (("status-port", 15021), ("http-envoy-prom", 15090)),
        made,
    )
    return GatewayObjects(made, pods, (15021, *sorted(set(listeners))))


# Flux Kustomizations of upstream repositories that install CRDs:
# (repository URL, tag, path) -> the API groups of the CRDs in that folder.
# Read at those tags: kubernetes-sigs/gateway-api v1.4.0 config/crd/standard
# (GatewayClass, Gateway, GRPCRoute, HTTPRoute, ReferenceGrant,
# BackendTLSPolicy); kubernetes-sigs/gateway-api-inference-extension v1.3.0
# config/crd/kustomization.yaml (InferencePool in inference.networking.k8s.io,
# InferencePool, InferenceObjective, InferenceModelRewrite and
# InferencePoolImport in inference.networking.x-k8s.io).
GIT_CRD_SOURCES: dict[tuple[str, str, str], tuple[str, ...]] = {
    (
        "https://github.com/kubernetes-sigs/gateway-api",
        "v1.4.0",
        "config/crd/standard",
    ): ("gateway.networking.k8s.io",),
    (
        "https://github.com/kubernetes-sigs/gateway-api-inference-extension",
        "v1.3.0",
        "config/crd",
    ): ("inference.networking.k8s.io", "inference.networking.x-k8s.io"),
}


def git_source_key(repository: dict[str, Any], path: str) -> tuple[str, str, str]:
    """(url, tag, normalised path) of a Flux Kustomization over a GitRepository."""
    url = str(repository.get("url", "")).removesuffix(".git").rstrip("/")
    tag = str(_dict(repository.get("ref")).get("tag", ""))
    return url, tag, path.strip().removeprefix("./").strip("/")
