"""The Flux objects of a cluster folder: one Kustomization per layer and per model.

`flux bootstrap … --path=clusters/<cluster>` (outside generated/) makes the
`flux-system` GitRepository and Kustomization; `llmgen bootstrap` scaffolds
`clusters/<cluster>/llmgen.yaml`, one Kustomization applying this folder's
root. Every Kustomization here reads the `flux-system` GitRepository, the one
bootstrap made: its URL scheme always matches the secret bootstrap wrote
(SSH key or HTTPS token), which a second GitRepository could not promise.

The graph (docs/layers.md) follows one rule: a layer depends on what must
exist before it applies, never on an unrelated add-on's health. Flux
(kustomize-controller v1.7 `checkDependencies`) only applies a Kustomization
whose dependencies are Ready on the current revision, and a dependency's
readiness is its health assessment. So a layer others depend on does not
`wait` for every object it applies (a failing add-on upgrade would then stop
every model change and `llmgen stop`); it health-checks exactly what its
dependents consume:

- the CRDs of every custom resource a dependent renders (kstatus: Current
  once `Established`);
- in mesh-ca, the `cacerts` Secret (kstatus: Current once it exists): istiod
  only uses a plugged-in CA it finds at its first start (Istio 1.27.3 and,
  rechecked for the 1.28.0 upgrade, unchanged at 1.28.0:
  pilot/pkg/bootstrap/istio_ca.go `createIstioCA`), so the Istio layer must
  not apply before the Secret exists;
- in istio, istiod's sidecar-injection webhook: a model pod created before it
  exists would run without a sidecar, unreachable under STRICT mTLS.

Leaves (node pools, gateway and policy, mesh identity, each model) `wait` for
all their objects: nothing depends on them, and their own status is what
`llmgen status` shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmgen.render.types import (
    INFRA_LAYERS,
    LAYER_DEPENDS,
    MODELS,
    OPTIONAL_LAYERS,
    WEIGHTS_ITEMS,
    Output,
    collection_of,
    layer_family,
    model_layer,
)

if TYPE_CHECKING:
    from llmgen.plan.build import ClusterPlan

#: The GitRepository `flux bootstrap` creates (and its secret, matching its URL).
SOURCE_NAME = "flux-system"
FLUX_NAMESPACE = "flux-system"
#: The Kustomization `llmgen bootstrap` scaffolds at clusters/<cluster>/llmgen.yaml.
ROOT_NAME = "llmgen"
ISTIO_SYSTEM = "istio-system"
CACERTS = "cacerts"
#: istiod's sidecar injector (istio-discovery chart, no revision):
#: templates/mutatingwebhook.yaml, `istio-sidecar-injector`.
INJECTOR_WEBHOOK = "istio-sidecar-injector"
ISTIOD = "istiod"

CONTROLLERS, MESH_CA, ISTIO = (
    "infrastructure/controllers",
    "infrastructure/mesh-ca",
    "infrastructure/istio",
)
#: API group -> the layer whose Helm releases install its CRDs. Other groups
#: are Kubernetes' own, Flux's (bootstrap installs them), or a cloud's managed
#: add-on (GKE ComputeClass, Config Connector), a prerequisite README lists.
CRD_LAYER = {
    "external-secrets.io": CONTROLLERS,
    "keda.sh": CONTROLLERS,
    "cert-manager.io": CONTROLLERS,
    "monitoring.coreos.com": CONTROLLERS,
    "karpenter.sh": CONTROLLERS,
    "karpenter.k8s.aws": CONTROLLERS,
    "leaderworkerset.x-k8s.io": CONTROLLERS,
    # ACK's charts install their CRDs (the weights layer on the AWS sync cluster)
    "s3.services.k8s.aws": CONTROLLERS,
    "iam.services.k8s.aws": CONTROLLERS,
    "networking.istio.io": ISTIO,
    "security.istio.io": ISTIO,
    "telemetry.istio.io": ISTIO,
    "extensions.istio.io": ISTIO,
    # Flux Kustomizations of upstream CRD folders (inferencegateway.py)
    "gateway.networking.k8s.io": CONTROLLERS,
    "inference.networking.k8s.io": CONTROLLERS,
    "inference.networking.x-k8s.io": CONTROLLERS,
}

# Per layer: how long Flux waits for health. Controllers covers the longest
# chained Helm timeouts (kube-prometheus-stack and gpu-operator: 15m); a
# model can take many minutes to pull weights and start.
_TIMEOUTS = {
    CONTROLLERS: "20m",
    MESH_CA: "10m",
    ISTIO: "15m",
    "infrastructure/node-pools": "10m",
    "infrastructure/configs": "10m",
    "infrastructure/mesh-identity": "15m",
    MODELS: "30m",
    # Health here is the Jobs having started (kstatus), not the copy finishing.
    "weights": "10m",
    WEIGHTS_ITEMS: "10m",
}
#: Layers others depend on: health = what dependents consume, not `wait`.
_PROVIDERS = frozenset(d for deps in LAYER_DEPENDS.values() for d in deps)

# kstatus ignores `Ready` on custom resources it does not know (it checks
# only observedGeneration and Reconciling/Stalled), so these say what Ready
# means for the ones a model's health depends on (Flux >= 2.5 healthCheckExprs).
# `exists`, not `all`: `all` is true on an object with no conditions yet.
_READY_IS = "has(status.conditions) && status.conditions.exists(e, e.type == 'Ready' && "
_READY = _READY_IS + "e.status == 'True')"
_NOT_READY = _READY_IS + "e.status == 'False')"
HEALTH_EXPRS: tuple[dict[str, str], ...] = (
    {"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret"},
    {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject"},
    {"apiVersion": "cert-manager.io/v1", "kind": "Certificate"},
)
#: A multi-node model's groups are healthy as units: the LWS controller sets
#: `Available` only when every group below `replicas` has its leader running
#: and ready and its worker StatefulSet ready, on the current revision (also
#: at 0 replicas), else `Progressing` or `UpdateInProgress` (lws v0.10.0
#: pkg/controllers/leaderworkerset_controller.go `updateConditions`). It
#: reports no failure condition, so a group that never comes up shows as the
#: Kustomization's health timeout.
LWS_HEALTH_EXPR = {
    "apiVersion": "leaderworkerset.x-k8s.io/v1",
    "kind": "LeaderWorkerSet",
    "current": "has(status.conditions) && status.conditions.exists(e, "
    "e.type == 'Available' && e.status == 'True')",
}
# The weights mirror's cloud resources (layer `weights`). ACK (runtime
# v0.58.1 and later, pkg/runtime/reconciler.go ensureConditions) sets `Ready`
# from ACK.ResourceSynced, False on ACK.Terminal or ACK.Recoverable; only a
# terminal error (the spec must change) counts as failed, a recoverable one
# (a missing permission being fixed, a reference not resolved yet) is still
# in progress. Config Connector sets `Ready`, False with reason
# `UpdateFailed` when the cloud refused the resource.
_ACK_FAILED = (
    "has(status.conditions) && status.conditions.exists(e, e.type == 'ACK.Terminal' && "
    "e.status == 'True')"
)
_CNRM_FAILED = _READY_IS + "e.status == 'False' && has(e.reason) && e.reason == 'UpdateFailed')"
HEALTH_EXPRS += tuple(
    {"apiVersion": api, "kind": kind, "current": _READY, "failed": _ACK_FAILED}
    for api, kind in (
        ("s3.services.k8s.aws/v1alpha1", "Bucket"),
        ("iam.services.k8s.aws/v1alpha1", "Role"),
        ("iam.services.k8s.aws/v1alpha1", "Policy"),
    )
) + tuple(
    {"apiVersion": api, "kind": kind, "current": _READY, "failed": _CNRM_FAILED}
    for api, kind in (
        ("storage.cnrm.cloud.google.com/v1beta1", "StorageBucket"),
        ("iam.cnrm.cloud.google.com/v1beta1", "IAMServiceAccount"),
        ("iam.cnrm.cloud.google.com/v1beta1", "IAMPolicyMember"),
    )
)


@dataclass(frozen=True)
class DocRef:
    """What the Flux objects need to know of one rendered document."""

    api_version: str
    kind: str
    namespace: str
    name: str
    #: an ExternalSecret's target Secret
    target: str = ""

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> DocRef:
        meta = doc.get("metadata") or {}
        target = ""
        if doc.get("kind") == "ExternalSecret":
            spec_target = (doc.get("spec") or {}).get("target") or {}
            target = str(spec_target.get("name") or meta.get("name", ""))
        return cls(
            str(doc.get("apiVersion", "")),
            str(doc.get("kind", "")),
            str(meta.get("namespace", "")),
            str(meta.get("name", "")),
            target,
        )

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]


_ES = re.compile(r"(s|x|z|ch|sh)\Z")


def crd_name(kind: str, group: str) -> str:
    """`AuthorizationPolicy`, `security.istio.io` -> `authorizationpolicies.security.istio.io`.

    The plural every CRD llmgen renders uses (their CRDs' `spec.names.plural`).
    """
    lower = kind.lower()
    if lower.endswith("y") and lower[-2:-1] not in ("a", "e", "o", "u"):
        plural = lower[:-1] + "ies"
    elif _ES.search(lower):
        plural = lower + "es"
    else:
        plural = lower + "s"
    return f"{plural}.{group}"


def layers_of(cp: ClusterPlan) -> tuple[str, ...]:
    """The infrastructure layers this cluster renders: every fixed one, and
    `weights` on a cloud's sync cluster."""
    return tuple(
        layer for layer in INFRA_LAYERS if layer not in OPTIONAL_LAYERS or bool(cp.mirror_items)
    )


def layer_name(layer: str) -> str:
    """`infrastructure/mesh-ca` -> `infrastructure-mesh-ca`; `models/llama` -> `model-llama`."""
    if layer.startswith(MODELS + "/"):
        return "model-" + layer[len(MODELS) + 1 :]
    return layer.replace("/", "-")


def depends_of(layer: str) -> tuple[str, ...]:
    return LAYER_DEPENDS[layer_family(layer)]


def rendered_depends(layer: str, index: Mapping[str, list[DocRef]]) -> list[str]:
    """`depends_of`, with a layer this cluster does not render replaced by its own
    dependencies (Flux would wait forever on a Kustomization that never exists)."""
    out: list[str] = []
    for dep in depends_of(layer):
        for found in [dep] if dep in index else rendered_depends(dep, index):
            if found not in out:
                out.append(found)
    return out


#: The weights mirror's shared cloud resources (layer `weights`), which each
#: model's `weights/<model>` folder uses: its Jobs upload into the bucket, its
#: ACK Roles name the boundary Policy (`permissionsBoundaryRef`).
MIRROR_PROVIDED = frozenset(
    {
        ("s3.services.k8s.aws/v1alpha1", "Bucket"),
        ("iam.services.k8s.aws/v1alpha1", "Policy"),
        ("storage.cnrm.cloud.google.com/v1beta1", "StorageBucket"),
    }
)


def health_checks(layer: str, index: Mapping[str, list[DocRef]]) -> list[dict[str, str]]:
    """What a layer others depend on must show before they apply."""
    dependents = [other for other in index if layer in rendered_depends(other, index)]
    crds = {
        crd_name(ref.kind, ref.group)
        for other in dependents
        for ref in index[other]
        if CRD_LAYER.get(ref.group) == layer
    }
    checks = [
        {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "name": n}
        for n in sorted(crds)
    ]
    for ref in index.get(layer, []):
        if (ref.api_version, ref.kind) in MIRROR_PROVIDED and dependents:
            checks.append(
                {
                    "apiVersion": ref.api_version,
                    "kind": ref.kind,
                    "name": ref.name,
                    "namespace": ref.namespace,
                }
            )
        if ref.kind == "ExternalSecret" and ref.namespace == ISTIO_SYSTEM and ref.target == CACERTS:
            checks.append(
                {"apiVersion": "v1", "kind": "Secret", "name": CACERTS, "namespace": ISTIO_SYSTEM}
            )
        if (
            ref.kind == "HelmRelease"
            and ref.name == ISTIOD
            and any(o.startswith(MODELS + "/") for o in dependents)
        ):
            checks.append(
                {
                    "apiVersion": "admissionregistration.k8s.io/v1",
                    "kind": "MutatingWebhookConfiguration",
                    "name": INJECTOR_WEBHOOK,
                }
            )
    return checks


def _context(
    cp: ClusterPlan, layer: str, index: Mapping[str, list[DocRef]], labels: Mapping[str, str]
) -> dict[str, Any]:
    provider = layer in _PROVIDERS and any(
        layer in rendered_depends(other, index) for other in index
    )
    timeout_key = layer_family(layer)
    checks = health_checks(layer, index) if provider else []
    # A provider's custom kinds it health-checks need the expressions too
    # (Flux applies healthCheckExprs to `healthChecks` as to `wait`).
    checked = {(c["apiVersion"], c["kind"]) for c in checks}
    return {
        "name": layer_name(layer),
        "namespace": FLUX_NAMESPACE,
        "labels": labels,
        "path": f"./generated/clusters/{cp.name}/{layer}",
        "source": SOURCE_NAME,
        "depends_on": [layer_name(d) for d in rendered_depends(layer, index)],
        "timeout": _TIMEOUTS[timeout_key],
        "interval": "10m",
        "retry_interval": "1m",
        "wait": not provider,
        "health_checks": checks,
        "health_exprs": [
            *(
                {
                    "apiVersion": e["apiVersion"],
                    "kind": e["kind"],
                    "current": e.get("current", _READY),
                    "failed": e.get("failed", _NOT_READY),
                }
                for e in HEALTH_EXPRS
                if (e["apiVersion"], e["kind"]) in checked
                or (
                    not provider
                    and any(
                        (r.api_version, r.kind) == (e["apiVersion"], e["kind"])
                        for r in index[layer]
                    )
                )
            ),
            *(
                [LWS_HEALTH_EXPR]
                if not provider
                and any(
                    (r.api_version, r.kind) == (LWS_HEALTH_EXPR["apiVersion"], "LeaderWorkerSet")
                    for r in index[layer]
                )
                else []
            ),
        ],
    }


def outputs(cp: ClusterPlan, index: Mapping[str, list[DocRef]]) -> Iterator[Output]:
    """The Flux Kustomizations of every layer and model this cluster renders.

    `index` maps each rendered layer folder to the documents in it.
    """
    for layer in INFRA_LAYERS:
        if layer in index:
            yield Output(
                f"kustomization-{layer_name(layer)}.yaml",
                "flux/kustomization.yaml.j2",
                _context(cp, layer, index, cp.labels),
            )
    placed = {model_layer(p.model.name): p for p in cp.placements}
    # A model placed here, or only routed by this cluster's gateway (its
    # VirtualService, DestinationRule and body-router ConfigMap; its replicas
    # are reached across the east-west gateway); a model's weights sync Jobs.
    for layer in sorted(k for k in index if collection_of(k)):
        p = placed.get(layer)
        yield Output(
            f"kustomization-{layer_name(layer)}.yaml",
            "flux/kustomization.yaml.j2",
            _context(cp, layer, index, p.labels if p else cp.labels),
            p.input_hash if p else "",
        )
