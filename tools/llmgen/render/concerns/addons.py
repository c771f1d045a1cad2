"""Platform add-ons (layer infrastructure/controllers): a Flux source and HelmRelease each.

Every add-on in platform.yaml becomes a HelmRepository (or, for `oci://`
repositories, an OCIRepository that the HelmRelease names in `chartRef`) and
a `helm.toolkit.fluxcd.io/v2` HelmRelease in flux-system that installs the
pinned chart version into the add-on's own namespace (rendered here too).
Releases retry and roll back on failure, create and replace their CRDs, and
wait for the add-ons whose CRDs or webhooks they need (`dependsOn`).

Values are generic here and cloud-specific in the provider
(`CloudProvider.addon_values`), merged over them. Add-ons a provider lists in
`cloud_addons` run only on that provider's clusters (Karpenter and the AWS
Load Balancer Controller on AWS).
The Istio gateways (`istio-gateway`) belong to the mesh concern.

One HelmRepository per repository URL and cluster (`source_names`): the four
Istio charts share one index, which source-controller then fetches once per
interval instead of four times. It is named after the first add-on using it
(earliest layer, then name) and lives in that add-on's layer, so no release
refers to a source in a later layer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmgen.clouds import registered
from llmgen.render.concerns import inferencegateway, istio
from llmgen.render.types import PRUNE_DISABLED, Output, file_name

if TYPE_CHECKING:
    from llmgen.catalog.model import Addon
    from llmgen.plan.build import ClusterPlan

LAYER = "infrastructure/controllers"
#: Istio's own releases apply after the mesh CA Secret exists (docs/layers.md).
ISTIO_LAYER = "infrastructure/istio"
ISTIO_ADDONS = frozenset({"istio-base", "istio-cni", "istiod"})
#: istio-system is created with the mesh CA, before any Istio release.
MESH_CA_LAYER = "infrastructure/mesh-ca"
MESH_NAMESPACE = "istio-system"
FLUX_NAMESPACE = "flux-system"
#: Rendered by the mesh concern (ingress and east-west gateways).
SKIPPED = frozenset({"istio-gateway"})
#: Releases a prune must never uninstall (review D14): the Istio CRDs holding
#: every security policy (their CRDs carry `helm.sh/resource-policy: keep` in
#: Istio 1.27.3's base chart, files/crd-all.gen.yaml, but istiod's validation
#: and the policies' enforcement go with the release), cert-manager
#: (certificates stop renewing) and External Secrets (secrets stop syncing).
KEEP_RELEASES = frozenset({"istio-base", "cert-manager", "external-secrets"})
#: Istio's CNI node agent; istiod injects for it only where it runs.
CNI_ADDON = "istio-cni"
ISTIOD_REPLICAS = 2
#: Helm charts stored in OCI registries are single-layer artifacts of this type.
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


@dataclass(frozen=True)
class AddonSpec:
    namespace: str
    #: add-ons whose CRDs or webhooks this one's chart uses
    depends_on: tuple[str, ...] = ()
    #: runs host-level DaemonSets (hostPath, hostPID, privileged): Pod Security `privileged`
    privileged: bool = False
    #: runs pods with the system-node-critical priority class
    node_critical: bool = False
    timeout: str = "10m"
    #: runs only where the weights layer does (a cloud's weights sync cluster)
    sync_cluster_only: bool = False


# ServiceMonitors need kube-prometheus-stack's CRDs.
_MONITORED = ("kube-prometheus-stack",)
SPECS: dict[str, AddonSpec] = {
    "istio-base": AddonSpec("istio-system"),
    # The CNI node agent (hostNetwork, host CNI paths, system-node-critical)
    # makes istio-system `privileged`, as Istio documents for Pod Security.
    "istio-cni": AddonSpec("istio-system", privileged=True, node_critical=True),
    # Sidecars injected before the node agent runs would not be redirected.
    "istiod": AddonSpec("istio-system", ("istio-base", "istio-cni")),
    "kube-prometheus-stack": AddonSpec("monitoring", privileged=True, timeout="15m"),
    "keda": AddonSpec("keda", _MONITORED),
    "external-secrets": AddonSpec("external-secrets", _MONITORED),
    "cert-manager": AddonSpec("cert-manager", _MONITORED),
    "gpu-operator": AddonSpec(
        "gpu-operator", _MONITORED, privileged=True, node_critical=True, timeout="15m"
    ),
    "karpenter": AddonSpec("karpenter"),
    "aws-load-balancer-controller": AddonSpec("aws-load-balancer-controller", _MONITORED),
    "external-dns": AddonSpec("external-dns"),
    "reloader": AddonSpec("reloader"),
    # Its mutating pod webhook (failurePolicy Fail, pods with the set's label
    # only) must serve before a group's pods are created: model layers wait
    # for the CRD in the controllers layer (flux.py CRD_LAYER).
    "leaderworkerset": AddonSpec("lws-system", _MONITORED),
    # AWS Controllers for Kubernetes: the mirror bucket and the sync roles
    # (render/concerns/mirror_aws.py), on the AWS weights sync cluster only.
    "ack-s3-controller": AddonSpec("ack-system", sync_cluster_only=True),
    "ack-iam-controller": AddonSpec("ack-system", sync_cluster_only=True),
}


#: kube-prometheus-stack's Prometheus: replicas, how long it keeps data, and the
#: volume each replica gets (the cluster's default StorageClass; a README prerequisite).
PROMETHEUS_REPLICAS = 2
PROMETHEUS_RETENTION = "15d"
PROMETHEUS_STORAGE = "100Gi"


def spec_of(name: str) -> AddonSpec:
    """Known add-ons have a spec; any other runs in a namespace of its own name."""
    return SPECS.get(name, AddonSpec(name))


def generic_values(name: str, cp: ClusterPlan) -> dict[str, Any]:
    """Helm values every cloud shares, decided from the catalog."""
    cluster, platform = cp.cluster, cp.platform
    if name == "istiod":
        return {
            "global": {
                "meshID": platform.mesh_id,
                "multiCluster": {"clusterName": cluster.name},
                "network": cluster.network,
            },
            "meshConfig": {"trustDomain": istio.trust_domain(cp)},
            "pilot": {
                # Inject the unprivileged istio-validation init container instead
                # of istio-init (NET_ADMIN), which `restricted` namespaces reject;
                # only where the CNI node agent runs to do istio-init's work.
                "cni": {"enabled": CNI_ADDON in platform.addons},
                # The sidecar as a native (init) sidecar: the weights-fetching
                # init containers then run with the mesh's networking up.
                "env": {"ENABLE_NATIVE_SIDECARS": "true"},
                # Two istiods, spread over zones: the chart's single replica with
                # PDB minAvailable 1 blocks every node drain and is a single point
                # of failure for certificate issuance (istio-discovery 1.27.3
                # values: autoscaleMin 1; `pilot.*` is copied to the top level
                # by templates/zzy_descope_legacy.yaml; both rechecked, the
                # same at the pinned 1.28.0).
                "autoscaleMin": ISTIOD_REPLICAS,
                "replicaCount": ISTIOD_REPLICAS,
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": {"app": "istiod"}},
                    }
                ],
            },
        }
    if name == "kube-prometheus-stack":
        # Pick up every ServiceMonitor, PodMonitor and PrometheusRule, not only
        # the chart's own (llmgen renders them next to each model).
        return {
            "prometheus": {
                "prometheusSpec": {
                    "serviceMonitorSelectorNilUsesHelmValues": False,
                    "podMonitorSelectorNilUsesHelmValues": False,
                    "ruleSelectorNilUsesHelmValues": False,
                    "externalLabels": {"cluster": cluster.name},
                    # Autoscaling and the budget brake read this Prometheus:
                    # two replicas (KEDA falls back only while both are down)
                    # and a volume each, so a restart keeps the [1d] and [6h]
                    # windows of the budget rules and projections.
                    "replicas": PROMETHEUS_REPLICAS,
                    "retention": PROMETHEUS_RETENTION,
                    "storageSpec": {
                        "volumeClaimTemplate": {
                            "spec": {
                                "accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": PROMETHEUS_STORAGE}},
                            }
                        }
                    },
                }
            }
        }
    if name == "keda":
        monitor = {"enabled": True, "serviceMonitor": {"enabled": True}}
        return {"prometheus": {"metricServer": monitor, "operator": monitor}}
    if name == "external-secrets":
        return {"installCRDs": True, "serviceMonitor": {"enabled": True}}
    if name == "cert-manager":
        # keep: uninstalling the chart must not delete every Certificate.
        return {
            "crds": {"enabled": True, "keep": True},
            "prometheus": {"enabled": True, "servicemonitor": {"enabled": True}},
        }
    if name == "gpu-operator":
        return {
            "devicePlugin": {"enabled": True},
            # honorLabels keeps DCGM's namespace/pod labels (of the pod using
            # the GPU) instead of renaming them exported_*; the GPU trigger and
            # cost rules select on them.
            "dcgmExporter": {
                "enabled": True,
                "serviceMonitor": {"enabled": True, "honorLabels": True},
            },
        }
    if name == "external-dns":
        values: dict[str, Any] = {
            # The gateway Services carry the hostnames; the Istio Gateways opt
            # out (`controller: none`), so the istio-gateway source only cost
            # RBAC and watches (review D22).
            "sources": ["service"],
            # sync, not upsert-only: a suspended cluster's gateway drops the
            # environment's name and its record must go, or DNS keeps sending
            # clients to it (UpsertOnlyPolicy drops every Delete, v0.19.0
            # plan/policy.go). Deletes are limited to records this cluster
            # owns by its TXT registry entry (plan/plan.go Calculate filters
            # Delete/Update by OwnerID), so another cluster's or a person's
            # record survives.
            "policy": "sync",
            "registry": "txt",
            "txtOwnerId": cluster.name,
        }
        if cp.environment is not None:
            values["domainFilters"] = [cp.environment.domain]
            if cp.environment.dns is not None:
                # Only the environment's authoritative zone, never a private
                # zone of the same name.
                values["extraArgs"] = [
                    f"--zone-id-filter={cp.environment.dns.zone_id}",
                    "--aws-zone-type=public",
                ]
        return values
    if name == "leaderworkerset":
        # The chart's default is the `main` tag, pulled Always (lws v0.10.0
        # charts/lws/values.yaml); the release process rewrites it to the
        # version (hack/push-chart.sh), which is pinned here all the same.
        # Its podSecurityContext sets only runAsNonRoot, which Pod Security
        # `restricted` (the namespace's level) rejects without a seccomp profile.
        return {
            "image": {
                "manager": {
                    "tag": f"v{cp.platform.addons[name].version}",
                    "pullPolicy": "IfNotPresent",
                }
            },
            "podSecurityContext": {
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "enablePrometheus": True,
        }
    if name == "reloader":
        # The chart's containerSecurityContext defaults to `{}` (its flag adds
        # only readOnlyRootFilesystem), which Pod Security `restricted` rejects:
        # without these the namespace admits no Reloader pod at all.
        return {
            "reloader": {
                "readOnlyRootFileSystem": True,
                "deployment": {
                    "containerSecurityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    }
                },
            }
        }
    return {}


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` merged into `base`: mappings recursively, anything else replaced."""
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = merge(old, value)
        else:
            out[key] = value
    return out


def addons_for(cp: ClusterPlan) -> list[Addon]:
    """The add-ons this cluster runs: all but skipped ones and other clouds' own."""
    other_clouds: set[str] = set()
    for cls in registered():
        if cls.name != cp.provider.name:
            other_clouds |= cls.cloud_addons
    mine = cp.provider.cloud_addons
    return [
        a
        for name, a in sorted(cp.platform.addons.items())
        if name not in SKIPPED
        and (name in mine or name not in other_clouds)
        and (bool(cp.mirror_items) or not spec_of(name).sync_cluster_only)
    ]


def _layer_rank(name: str) -> int:
    return 0 if name not in ISTIO_ADDONS and name not in SKIPPED else 1


def source_names(cp: ClusterPlan) -> dict[str, str]:
    """Add-on -> the Flux source its release reads: one HelmRepository per URL
    among the add-ons this cluster renders (the gateways' chart included); an
    OCIRepository is one chart, so each OCI add-on keeps its own."""
    used = [*addons_for(cp)]
    gateway_addon = cp.platform.addons.get(istio.GATEWAY_ADDON)
    if gateway_addon is not None:
        used.append(gateway_addon)
    owner: dict[str, str] = {}
    for a in sorted(used, key=lambda a: (_layer_rank(a.name), a.name)):
        if not a.repository.startswith("oci://"):
            owner.setdefault(a.repository, a.name)
    return {
        a.name: a.name if a.repository.startswith("oci://") else owner[a.repository] for a in used
    }


def outputs(cp: ClusterPlan) -> Iterator[Output]:
    addons = addons_for(cp)
    sources = source_names(cp)
    present = {a.name for a in addons}
    namespaces_done: set[str] = set()
    for addon in addons:
        spec = spec_of(addon.name)
        folder = f"{ISTIO_LAYER if addon.name in ISTIO_ADDONS else LAYER}/{addon.name}"
        labels = {**cp.labels, "app.kubernetes.io/component": addon.name}
        ns = spec.namespace
        ns_folder = f"{MESH_CA_LAYER}/{ns}" if ns == MESH_NAMESPACE else folder
        if ns not in namespaces_done:
            namespaces_done.add(ns)
            ns_labels = dict(cp.labels)
            sharing = [a for a in addons if spec_of(a.name).namespace == ns]
            privileged = any(spec_of(a.name).privileged for a in sharing)
            ns_labels["pod-security.kubernetes.io/enforce"] = (
                "privileged" if privileged else "restricted"
            )
            if ns == "istio-system":
                # Multi-network mesh: istiod labels its workloads with this network.
                ns_labels["topology.istio.io/network"] = cp.cluster.network
            yield Output(
                f"{ns_folder}/{file_name('Namespace', ns)}",
                "addons/namespace.yaml.j2",
                {"name": ns, "labels": ns_labels, "annotations": PRUNE_DISABLED},
            )
            if cp.provider.critical_pods_need_quota and any(
                spec_of(a.name).node_critical for a in sharing
            ):
                yield Output(
                    f"{ns_folder}/{file_name('ResourceQuota', 'critical-pods')}",
                    "addons/resourcequota.yaml.j2",
                    {"name": "critical-pods", "namespace": ns, "labels": cp.labels},
                )
        oci = addon.repository.startswith("oci://")
        source_kind = "OCIRepository" if oci else "HelmRepository"
        if sources[addon.name] == addon.name:
            yield Output(
                f"{folder}/{file_name(source_kind, addon.name)}",
                "addons/ocirepository.yaml.j2" if oci else "addons/helmrepository.yaml.j2",
                {
                    "name": addon.name,
                    "namespace": FLUX_NAMESPACE,
                    "labels": labels,
                    # An OCIRepository is one chart: repository + chart name, at the tag.
                    "url": f"{addon.repository.rstrip('/')}/{addon.chart}"
                    if oci
                    else addon.repository,
                    "version": addon.version,
                    "layer_media_type": HELM_CHART_LAYER,
                },
            )
        values = merge(generic_values(addon.name, cp), cp.provider.addon_values(addon.name, cp))
        if addon.name == istio.ISTIOD_ADDON:
            values = merge(values, inferencegateway.istiod_values(cp))
        yield Output(
            f"{folder}/{file_name('HelmRelease', addon.name)}",
            "addons/helmrelease.yaml.j2",
            {
                "name": addon.name,
                "namespace": FLUX_NAMESPACE,
                "labels": labels,
                "target_namespace": ns,
                "chart": addon.chart,
                "version": addon.version,
                "oci": oci,
                "source_kind": source_kind,
                "source_name": sources[addon.name],
                "depends_on": [d for d in spec.depends_on if d in present],
                "annotations": PRUNE_DISABLED if addon.name in KEEP_RELEASES else {},
                "timeout": spec.timeout,
                "values": values,
            },
        )
    yield from inferencegateway.crd_outputs(cp)
