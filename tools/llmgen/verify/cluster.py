"""One cluster's rendered objects, indexed for the wiring checks.

Flux on a cluster applies the root folder (from `flux bootstrap`), then each
Flux Kustomization's path in `dependsOn` order: a *layer*. An object belongs
to the Kustomization whose path holds its file; `before(a, b)` says layer `a`
is applied, and healthy, before layer `b` starts.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from llmgen.verify import charts
from llmgen.verify.apiserver import containers, pod_spec
from llmgen.verify.flux_refs import cluster_folder
from llmgen.verify.manifests import Manifest
from llmgen.verify.schemas import split_api_version

BOOTSTRAP = "flux-system"  # the layer `flux bootstrap` applies: the cluster folder itself
_CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterSecretStore",
    "ClusterIssuer",
    "NodePool",
    "EC2NodeClass",
    "ComputeClass",
    "CustomResourceDefinition",
    "PriorityClass",
    "StorageClass",
    "ClusterExternalSecret",
    "ValidatingAdmissionPolicy",
    "ClusterPolicy",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "NodeClaim",
}


#: What the mesh checks (`routes`) read of a cluster and of its peers, besides
#: pods: per kind, the parts of each object they read (`_keep`; True: whole).
_DESTINATION = [{"route": [{"destination": {"host": True, "port": True, "subset": True}}]}]
_ROUTE_SHAPES: dict[str, Any] = {
    "Service": {"spec": {"selector": True, "ports": True}},
    "ServiceAccount": True,
    "DestinationRule": {"spec": {"host": True, "subsets": [{"name": True, "labels": True}]}},
    "VirtualService": {"spec": {"http": _DESTINATION, "tcp": _DESTINATION, "tls": _DESTINATION}},
    "AuthorizationPolicy": {
        "spec": {"rules": [{"from": [{"source": {"principals": True, "notPrincipals": True}}]}]}
    },
    "HTTPRoute": {"spec": {"rules": [{"backendRefs": True}]}},
    "GRPCRoute": {"spec": {"rules": [{"backendRefs": True}]}},
    "HelmRelease": True,
    "OCIRepository": True,
}


def _keep(value: Any, shape: Any) -> Any:
    """The parts of `value` that `shape` names: a dict shape keeps those keys, a
    one-item list shape applies its item to every element (indexes kept, so
    findings keep their paths), True keeps the value whole. A value of another
    type than the shape expects is kept whole: the checks read it as they would."""
    if isinstance(shape, dict) and isinstance(value, dict):
        return {k: _keep(value[k], sub) for k, sub in shape.items() if k in value}
    if isinstance(shape, list) and isinstance(value, list):
        return [_keep(v, shape[0]) for v in value]
    return value


def _compact(m: Manifest) -> Manifest:
    """`m` with only the data the mesh checks read (its text stays: findings locate in it)."""
    shape = _ROUTE_SHAPES[m.kind]
    if shape is True:
        return m
    names = {k: m.data[k] for k in ("apiVersion", "kind", "metadata") if k in m.data}
    return replace(m, data=names | _keep(m.data, shape))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class PoolFit:
    """A node pool as pods select it, and what each of its machine shapes can give pods."""

    name: str  # the rendered pool name (`gpu-l4-x1`), the value of the pods' nodeSelector
    shapes: tuple[tuple[str, float, float], ...]  # (shape, allocatable CPU, allocatable GiB)


@dataclass(frozen=True, slots=True)
class ClusterFacts:
    """What the catalog says about a cluster that the tree does not."""

    cloud: str = ""
    kubernetes_version: tuple[int, int] = (1, 33)
    # API groups (`group`) or kinds (`group/Kind`) present before Flux runs.
    prerequisites: tuple[str, ...] = ()
    catalog_file: str = ""
    pools: tuple[PoolFit, ...] = ()


@dataclass
class Pods:
    """The pods of one workload (or one chart), as selectors see them."""

    namespace: str
    labels: dict[str, str]
    ports: list[tuple[str, int, str]]  # (name, number, container)
    service_account: str
    layer: str
    owner: Manifest | None  # None for a chart's pods
    label: str  # "Deployment/ns/name" or "HelmRelease/ns/name (chart gateway)"
    sidecar: bool = False
    spec: dict[str, Any] = field(default_factory=dict)

    def declares(self, *, name: str | None = None, number: int | None = None) -> bool:
        return any(
            (name is None or p[0] == name) and (number is None or p[1] == number)
            for p in self.ports
        )

    def port_list(self) -> str:
        shown = [
            f"{num} {nm}" + (" (istio-proxy)" if c == "istio-proxy" else "")
            for nm, num, c in self.ports
        ]
        return ", ".join(shown) or "no ports"


class Cluster:
    """Objects of one cluster folder by kind and name, their layers and pods."""

    def __init__(
        self,
        name: str,
        manifests: Iterable[Manifest],
        facts: ClusterFacts | None = None,
        folder_namespaces: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.facts = facts or ClusterFacts()
        self.folder_namespaces = folder_namespaces or {}
        self.docs: list[Manifest] = [m for m in manifests if isinstance(m.data, dict) and m.kind]
        self._namespaces: dict[int, str] = {}  # id(manifest) -> namespace; docs outlive it
        self.objects: dict[tuple[str, str, str], Manifest] = {}
        self.by_kind: dict[str, list[Manifest]] = defaultdict(list)
        for m in self.docs:
            self.objects[(m.kind, self.namespace_of(m), m.name)] = m
            self.by_kind[m.kind].append(m)
        self.layer_paths: dict[str, str] = {}
        self.depends: dict[str, set[str]] = {}
        # layer -> (kind, namespace, name) its Flux Kustomization health-checks
        self.health_checks: dict[str, set[tuple[str, str, str]]] = {}
        self._layer_cache: dict[str, str] = {}
        self._layers()
        self.releases_in: dict[str, list[Manifest]] = defaultdict(list)
        self.pods: list[Pods] = []
        self._pods()
        self.peers: set[str] = self._peers()
        self.remote: list[Cluster] = []  # the peers' views, set by the caller
        self._accounts: set[tuple[str, str]] | None = None

    def _peers(self) -> set[str]:
        """Clusters whose API servers this cluster's istiod reads (remote secrets):
        their Services and pods are part of this cluster's mesh."""
        found: set[str] = set()
        for m in [*self.by_kind.get("Secret", []), *self.by_kind.get("ExternalSecret", [])]:
            meta = m.metadata
            if m.kind == "ExternalSecret":
                target = _dict(_dict(m.data.get("spec")).get("target"))
                meta = _dict(_dict(target.get("template")).get("metadata"))
            if str(_dict(meta.get("labels")).get("istio/multiCluster")) == "true":
                peer = _dict(meta.get("annotations")).get("networking.istio.io/cluster")
                if isinstance(peer, str):
                    found.add(peer)
        return found

    def for_routes(self) -> Cluster:
        """This cluster as the mesh checks read it, here and from its peers: the
        parts of `_ROUTE_SHAPES` objects they read, and each workload's pods
        without their spec and owning document. Verify keeps this view of every
        cluster, not the whole tree, until every peer has been read (peak
        memory); the routes checks find exactly what they find on the full
        cluster."""
        view = Cluster(
            self.name,
            [_compact(m) for m in self.docs if m.kind in _ROUTE_SHAPES],
            self.facts,
            self.folder_namespaces,
        )
        view.pods = [
            p if p.owner is None else replace(p, spec={}, owner=_stub(p.owner)) for p in self.pods
        ]
        view.peers = set(self.peers)
        return view

    def service(self, namespace: str, name: str) -> tuple[Manifest, Cluster] | None:
        """A Service by name, here or in a peer of the mesh (multi-cluster discovery)."""
        for cluster in (self, *self.remote):
            found = cluster.get("Service", namespace, name)
            if found is not None:
                return found, cluster
        return None

    def service_accounts(self) -> set[tuple[str, str]]:
        """(namespace, name) of every ServiceAccount rendered or made by a modelled chart."""
        if self._accounts is None:
            self._accounts = {
                (self.namespace_of(s), s.name) for s in self.by_kind.get("ServiceAccount", [])
            } | {(p.namespace, p.service_account) for p in self.pods if p.owner is None}
        return self._accounts

    def mesh_pods(self, namespace: str) -> list[Pods]:
        return [p for c in (self, *self.remote) for p in c.pods_in({namespace})]

    # -- placement --------------------------------------------------------

    def namespace_of(self, m: Manifest) -> str:
        found = self._namespaces.get(id(m))
        if found is None:
            if m.kind in _CLUSTER_SCOPED:
                found = ""
            else:
                folder = m.file.rsplit("/", 1)[0]
                found = self.folder_namespaces.get(folder) or m.namespace or "default"
            self._namespaces[id(m)] = found
        return found

    def _layers(self) -> None:
        direct: dict[str, set[str]] = {}
        for m in self.by_kind.get("Kustomization", []):
            if split_api_version(m.api_version)[0] != "kustomize.toolkit.fluxcd.io":
                continue
            spec = _dict(m.data.get("spec"))
            path = spec.get("path")
            if isinstance(path, str):
                self.layer_paths[m.name] = posixpath.normpath(path.lstrip("/"))
            direct[m.name] = {str(_dict(d).get("name")) for d in _list(spec.get("dependsOn"))}
            self.health_checks[m.name] = {
                (str(h.get("kind")), str(h.get("namespace") or ""), str(h.get("name")))
                for h in map(_dict, _list(spec.get("healthChecks")))
            }
        for name in direct:
            seen: set[str] = set()
            stack = list(direct[name])
            while stack:
                dep = stack.pop()
                if dep not in seen:
                    seen.add(dep)
                    stack += direct.get(dep, set())
            self.depends[name] = seen | {BOOTSTRAP}
        self.depends[BOOTSTRAP] = set()

    def layer_of(self, m: Manifest) -> str:
        found = self._layer_cache.get(m.file)
        if found is None:
            found = self._layer_cache[m.file] = self._layer_of(m)
        return found

    def _layer_of(self, m: Manifest) -> str:
        best, length = BOOTSTRAP, -1
        for name, path in self.layer_paths.items():
            if (m.file == path or m.file.startswith(path + "/")) and len(path) > length:
                best, length = name, len(path)
        if length < 0 and self.layer_paths and "/" in m.file[len(self.name) + 1 :]:
            return ""  # in the cluster folder but in no Flux path: applied by nobody
        return best

    def before(self, a: str, b: str) -> bool:
        """Layer `a` is applied and Ready before layer `b` starts."""
        return a in self.depends.get(b, set())

    def same_or_before(self, a: str, b: str) -> bool:
        return a == b or self.before(a, b)

    def get(self, kind: str, namespace: str, name: str) -> Manifest | None:
        return self.objects.get((kind, namespace, name))

    # -- pods -------------------------------------------------------------

    def _injected(
        self, namespace: str, labels: dict[str, str], annotations: dict[str, Any]
    ) -> bool:
        choice = labels.get("sidecar.istio.io/inject", annotations.get("sidecar.istio.io/inject"))
        if choice is not None:
            return str(choice) == "true"
        ns = self.get("Namespace", "", namespace)
        ns_labels = _dict(ns.metadata.get("labels")) if ns else {}
        return ns_labels.get("istio-injection") == "enabled" or "istio.io/rev" in ns_labels

    def _pods(self) -> None:
        oci: dict[tuple[str, str], str] = {}
        for m in self.by_kind.get("OCIRepository", []):
            oci[(self.namespace_of(m), m.name)] = str(_dict(m.data.get("spec")).get("url", ""))
        for m in self.docs:
            found = pod_spec(m)
            if found is not None:
                self._workload(m, found[1])
            elif (m.api_version, m.kind) == LWS:
                for template, labels in lws_templates(m):
                    self._workload(m, _dict(template.get("spec")), template, labels)
            elif m.kind == "Gateway" and m.api_version.startswith("gateway.networking.k8s.io/"):
                self._gateway_api(m)
            elif m.kind == "HelmRelease":
                spec = _dict(m.data.get("spec"))
                namespace = str(spec.get("targetNamespace") or self.namespace_of(m))
                self.releases_in[namespace].append(m)
                chart = charts.chart_name(spec, oci, self.namespace_of(m))
                release = str(spec.get("releaseName") or m.name)
                made = charts.chart_pods(chart, release, namespace, _dict(spec.get("values")))
                if made is not None:
                    self.pods.append(
                        Pods(
                            made.namespace,
                            made.labels,
                            [(n, p, "istio-proxy") for n, p in made.ports],
                            made.service_account,
                            self.layer_of(m),
                            None,
                            f"{m.identity} (chart {chart})",
                        )
                    )
        self.oci_urls = oci

    def _gateway_api(self, m: Manifest) -> None:
        """The Deployment and Service a gateway controller makes for a Gateway."""
        namespace = self.namespace_of(m)
        made = charts.istio_gateway(m.name, namespace, _dict(m.data.get("spec")))
        if made is None:
            return
        pods = made.pods
        self.pods.append(
            Pods(
                namespace,
                pods.labels,
                [(n, p, "istio-proxy") for n, p in pods.ports],
                pods.service_account,
                self.layer_of(m),
                None,
                f"{m.identity} (Istio's gateway deployment)",
            )
        )
        service = Manifest(
            m.file,
            m.line,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": made.name, "namespace": namespace},
                "spec": {
                    "selector": dict(pods.labels),
                    "ports": [{"port": p} for p in made.service_ports],
                },
            },
        )
        self.objects.setdefault(("Service", namespace, made.name), service)

    def _workload(
        self,
        m: Manifest,
        spec: dict[str, Any],
        template: dict[str, Any] | None = None,
        added: dict[str, str] | None = None,
    ) -> None:
        if template is None:
            template = _dict(_dict(m.data.get("spec")).get("template"))
        meta = _dict(template.get("metadata"))
        if m.kind == "Pod":
            meta = m.metadata
        labels = {str(k): str(v) for k, v in _dict(meta.get("labels")).items()}
        labels.update(added or {})
        namespace = self.namespace_of(m)
        ports: list[tuple[str, int, str]] = []
        for _, _, container in containers(spec):
            for port in _list(container.get("ports")):
                port = _dict(port)
                if isinstance(port.get("containerPort"), int):
                    ports.append(
                        (
                            str(port.get("name", "")),
                            port["containerPort"],
                            str(container.get("name")),
                        )
                    )
        sidecar = self._injected(namespace, labels, _dict(meta.get("annotations")))
        if sidecar:
            ports += [(n, p, "istio-proxy") for n, p in charts.SIDECAR_PORTS]
        account = str(spec.get("serviceAccountName") or "default")
        label = m.identity
        changed_by = getattr(m, "changed_by", "")  # an overlay changed it (built.Overlaid)
        if changed_by:
            label += f" (as built with {changed_by})"
        self.pods.append(
            Pods(namespace, labels, ports, account, self.layer_of(m), m, label, sidecar, spec)
        )

    def pods_in(self, namespaces: set[str] | None) -> list[Pods]:
        return [p for p in self.pods if namespaces is None or p.namespace in namespaces]

    def opaque(self, namespace: str) -> bool:
        """Whether a chart we do not model may run pods or make objects in `namespace`."""
        return any(
            charts.chart_pods(
                charts.chart_name(_dict(r.data.get("spec")), self.oci_urls, self.namespace_of(r)),
                "",
                namespace,
                {},
            )
            is None
            for r in self.releases_in.get(namespace, [])
        )


LWS = ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")
#: Labels the LWS controller and pod webhook put on a group's pods
#: (kubernetes-sigs/lws v0.10.0): the set's name on all of them,
#: worker-index "0" on the leader (leader StatefulSet template,
#: leaderworkerset_controller.go), 1..size-1 on workers (pod_webhook.go).
LWS_NAME = "leaderworkerset.sigs.k8s.io/name"
LWS_WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"


def lws_templates(m: Manifest) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """A LeaderWorkerSet's pod templates with the labels its controller adds.

    The leader uses `leaderTemplate`, or the worker template when absent
    (`constructLeaderStatefulSetApplyConfiguration`); workers exist only when
    the group has more than one pod.
    """
    spec = _dict(m.data.get("spec")) if isinstance(m.data, dict) else {}
    lwt = _dict(spec.get("leaderWorkerTemplate"))
    worker = _dict(lwt.get("workerTemplate"))
    leader = _dict(lwt.get("leaderTemplate")) or worker
    size = lwt.get("size", 1)
    out = [(leader, {LWS_NAME: m.name, LWS_WORKER_INDEX: "0"})]
    if isinstance(size, int) and size > 1:
        out.append((worker, {LWS_NAME: m.name, LWS_WORKER_INDEX: "1"}))
    return out
def _stub(m: Manifest) -> Manifest:
    """A workload's document reduced to what names it (the routes checks never read more)."""
    data = {"apiVersion": m.api_version, "kind": m.kind, "metadata": m.metadata}
    return Manifest(m.file, m.line, data)


def group_clusters(manifests: Iterable[Manifest]) -> dict[str, list[Manifest]]:
    """Manifests by cluster folder (`generated/clusters/<c>`); other files by their top folder."""
    out: dict[str, list[Manifest]] = defaultdict(list)
    for m in manifests:
        out[cluster_folder(m.file)].append(m)
    return out
