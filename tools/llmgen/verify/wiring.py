"""Wiring across resources: what selects what, and what names what, in one cluster.

Each check here is one a cluster accepts and then silently gets wrong:

- a Service, PodMonitor or ServiceMonitor that selects no pod, or a port no
  selected pod declares. Prometheus' pod discovery only makes targets of
  declared container ports (the PodMonitor CRD: "The Pod must declare the
  specified Port ... or the target will be dropped"); the injected
  istio-proxy counts, with the one port it declares (15090 http-envoy-prom);
- a KEDA ScaledObject whose target does not exist, or sets `replicas` (Flux
  re-applies it on every reconcile and fights the HPA KEDA owns);
- a ServiceAccount and the cloud identity rendered for it that do not name
  each other (`identities`);

`check_wiring(manifests)` runs these, the mesh's (`routes`) and the layers'
(`refs`, `pods`), InferencePool routing's (`pools`) and cloud identities'
(`identities`) on every cluster (`WiringChecks` the same, one cluster at a time);
`check_scrape_targets(manifests)` is the PodMonitor/ServiceMonitor/Service
port check alone, for tests of rendered output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from llmgen.errors import Diagnostic
from llmgen.verify.apiserver import selector_matches
from llmgen.verify.cluster import Cluster, ClusterFacts, Pods, group_clusters
from llmgen.verify.identities import check_identities
from llmgen.verify.manifests import Manifest
from llmgen.verify.pools import check_pools
from llmgen.verify.refs import check_refs
from llmgen.verify.routes import check_routes
from llmgen.verify.stats import Family


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def check_wiring(
    manifests: Iterable[Manifest],
    family: Family | None = None,
    facts: Mapping[str, ClusterFacts] | None = None,
    folder_namespaces: Mapping[str, str] | None = None,
) -> list[Diagnostic]:
    """Every wiring problem in `manifests`, cluster folder by cluster folder."""
    checks = WiringChecks(family, facts, folder_namespaces)
    return checks.add(manifests) + checks.finish()


class WiringChecks:
    """The wiring checks fed one cluster at a time, so that a caller need not hold
    every cluster's documents at once (verify reads, builds and checks a cluster,
    then lets it go).

    Everything but the mesh checks runs on `add`; the mesh checks need each
    cluster's peers (istiod reads their Services and pods), so they run on
    `finish`, from the compact view `Cluster.for_routes` kept of every cluster.
    """

    def __init__(
        self,
        family: Family | None = None,
        facts: Mapping[str, ClusterFacts] | None = None,
        folder_namespaces: Mapping[str, str] | None = None,
    ) -> None:
        self.family = family if family is not None else Family()
        self.facts = facts or {}
        self.folder_namespaces = folder_namespaces
        self._views: dict[str, Cluster] = {}
        # Objects outside `name` (added by an overlay, located at the overlay
        # file): grouped across every `add`, checked on `finish`.
        self._others: dict[str, list[Manifest]] = {}

    def add(self, manifests: Iterable[Manifest], name: str | None = None) -> list[Diagnostic]:
        """Check the clusters of `manifests` (only cluster folder `name`, when given;
        objects of any other folder wait for `finish`)."""
        out: list[Diagnostic] = []
        for folder, docs in sorted(group_clusters(manifests).items()):
            if name is not None and folder != name:
                self._others.setdefault(folder, []).extend(docs)
            else:
                out += self._cluster(folder, docs)
        return out

    def finish(self) -> list[Diagnostic]:
        """The mesh checks of every cluster added, against its peers."""
        out: list[Diagnostic] = []
        for folder, docs in sorted(self._others.items()):
            out += self._cluster(folder, docs)
        self._others = {}
        views = sorted(self._views.items())
        by_name = {name.rsplit("/", 1)[-1]: c for name, c in views}
        for _name, cluster in views:
            cluster.remote = [by_name[p] for p in sorted(cluster.peers) if p in by_name]
            out += check_routes(cluster, self.family)
        return out

    def _cluster(self, name: str, docs: list[Manifest]) -> list[Diagnostic]:
        cluster = Cluster(name, docs, self.facts.get(name), self.folder_namespaces)
        out = _scrape(cluster, self.family) + _keda(cluster, self.family)
        out += check_pools(cluster, self.family)
        out += check_refs(cluster, self.family)
        out += check_identities(cluster, self.family)
        self._views[name] = cluster.for_routes()
        return out


def check_scrape_targets(manifests: Iterable[Manifest]) -> list[Diagnostic]:
    """Services, PodMonitors and ServiceMonitors against the pods they select."""
    out: list[Diagnostic] = []
    for name, docs in sorted(group_clusters(manifests).items()):
        out += _scrape(Cluster(name, docs), Family())
    return out


def _selected(
    cluster: Cluster, m: Manifest, namespaces: set[str] | None, selector: dict[str, Any]
) -> list[Pods]:
    return [p for p in cluster.pods_in(namespaces) if selector_matches(selector, p.labels)]


def _namespaces(cluster: Cluster, m: Manifest, spec: dict[str, Any]) -> set[str] | None:
    chosen = _dict(spec.get("namespaceSelector"))
    if chosen.get("any") is True:
        return None
    names = chosen.get("matchNames")
    if isinstance(names, list) and names:
        return {str(n) for n in names}
    return {cluster.namespace_of(m)}


def _scrape(cluster: Cluster, family: Family) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for m in cluster.by_kind.get("Service", []):
        if m.api_version == "v1":
            out += _service(cluster, m, family)
    for m in cluster.by_kind.get("PodMonitor", []):
        out += _pod_monitor(cluster, m, family)
    for m in cluster.by_kind.get("ServiceMonitor", []):
        out += _service_monitor(cluster, m, family)
    return out


def _none_selected(
    cluster: Cluster, m: Manifest, namespaces: set[str] | None, family: Family, what: str
) -> list[Diagnostic]:
    if namespaces is None or any(cluster.opaque(ns) for ns in namespaces):
        family.skipped += 1  # pods of a chart we do not model may match
        return []
    family.failed += 1
    where = ", ".join(sorted(namespaces))
    return [m.diagnostic(("spec", "selector"), f"selects no {what} in namespace {where}")]


def _service(cluster: Cluster, m: Manifest, family: Family) -> list[Diagnostic]:
    spec = _dict(m.data.get("spec"))
    selector = _dict(spec.get("selector"))
    if not selector:
        return []  # endpoints managed by hand, or ExternalName
    family.run += 1
    ns = cluster.namespace_of(m)
    pods = _selected(cluster, m, {ns}, {"matchLabels": selector})
    if not pods:
        return _none_selected(cluster, m, {ns}, family, "pod")
    out: list[Diagnostic] = []
    for index, port in enumerate(_list(spec.get("ports"))):
        target = _dict(port).get("targetPort")
        if not isinstance(target, str):
            continue
        for p in pods:
            if not p.declares(name=target):
                family.failed += 1
                out.append(
                    m.diagnostic(
                        ("spec", "ports", index, "targetPort"),
                        f'port "{target}" is not declared by {p.label} ({p.port_list()}); '
                        "its pods get no endpoint on this port",
                    )
                )
    return out


def _pod_monitor(cluster: Cluster, m: Manifest, family: Family) -> list[Diagnostic]:
    spec = _dict(m.data.get("spec"))
    family.run += 1
    namespaces = _namespaces(cluster, m, spec)
    pods = _selected(cluster, m, namespaces, _dict(spec.get("selector")))
    if not pods:
        return _none_selected(cluster, m, namespaces, family, "pod")
    out: list[Diagnostic] = []
    for index, endpoint in enumerate(_list(spec.get("podMetricsEndpoints"))):
        endpoint = _dict(endpoint)
        for key in ("port", "portNumber"):
            value = endpoint.get(key)
            if value is None:
                continue
            for p in pods:
                ok = p.declares(name=value) if key == "port" else p.declares(number=value)
                if not ok:
                    family.failed += 1
                    out.append(
                        m.diagnostic(
                            ("spec", "podMetricsEndpoints", index, key),
                            f"{value} is not a port declared by {p.label} ({p.port_list()}); "
                            "Prometheus drops every target of this endpoint",
                        )
                    )
    return out


def _service_monitor(cluster: Cluster, m: Manifest, family: Family) -> list[Diagnostic]:
    spec = _dict(m.data.get("spec"))
    family.run += 1
    namespaces = _namespaces(cluster, m, spec)
    selector = _dict(spec.get("selector"))
    services = [
        s
        for s in cluster.by_kind.get("Service", [])
        if (namespaces is None or cluster.namespace_of(s) in namespaces)
        and selector_matches(
            selector, {str(k): str(v) for k, v in _dict(s.metadata.get("labels")).items()}
        )
    ]
    if not services:
        return _none_selected(cluster, m, namespaces, family, "Service")
    out: list[Diagnostic] = []
    for index, endpoint in enumerate(_list(spec.get("endpoints"))):
        port = _dict(endpoint).get("port")
        if not isinstance(port, str):
            continue
        for s in services:
            names = {_dict(p).get("name") for p in _list(_dict(s.data.get("spec")).get("ports"))}
            if port not in names:
                family.failed += 1
                out.append(
                    m.diagnostic(
                        ("spec", "endpoints", index, "port"),
                        f'{s.identity} has no port named "{port}"; Prometheus drops its targets',
                    )
                )
    return out


def _keda(cluster: Cluster, family: Family) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for m in cluster.by_kind.get("ScaledObject", []):
        ref = _dict(_dict(m.data.get("spec")).get("scaleTargetRef"))
        kind = str(ref.get("kind") or "Deployment")
        name = str(ref.get("name"))
        family.run += 1
        target = cluster.get(kind, cluster.namespace_of(m), name)
        if target is None:
            family.failed += 1
            out.append(
                m.diagnostic(
                    ("spec", "scaleTargetRef", "name"),
                    f'no {kind} "{name}" in namespace {cluster.namespace_of(m)}; '
                    "KEDA has nothing to scale",
                )
            )
        elif "replicas" in _dict(target.data.get("spec")):
            family.failed += 1
            out.append(
                target.diagnostic(
                    ("spec", "replicas"),
                    f"{m.identity} scales this {kind}: with spec.replicas set, Flux resets "
                    "the count KEDA's HPA chose on every reconcile",
                )
            )
    return out
