"""Wiring across resources: what selects what, and what names what, in one cluster.

Each check here is one a cluster accepts and then silently gets wrong:

- a Service, PodMonitor or ServiceMonitor that selects no pod, or a port no
  selected pod declares. Prometheus' pod discovery only makes targets of
  declared container ports (the PodMonitor CRD: "The Pod must declare the
  specified Port ... or the target will be dropped"); the injected
  istio-proxy counts, with the one port it declares (15090 http-envoy-prom);
- a KEDA ScaledObject whose target does not exist, or sets `replicas` (Flux
  re-applies it on every reconcile and fights the HPA KEDA owns);
- a DestinationRule subset whose labels match no pod of its host;
- a VirtualService / HTTPRoute destination that is no Service, or a port the
  Service does not expose, or a subset no DestinationRule defines;
- an AuthorizationPolicy principal naming a ServiceAccount that does not
  exist, or another trust domain than the mesh's (it then matches nothing).

`check_wiring(manifests)` runs these and `refs.check_refs` on every cluster;
`check_scrape_targets(manifests)` is the PodMonitor/ServiceMonitor/Service
port check alone, for tests of rendered output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from llmgen.errors import Diagnostic
from llmgen.verify.apiserver import selector_matches
from llmgen.verify.cluster import Cluster, ClusterFacts, Pods, group_clusters
from llmgen.verify.manifests import Manifest
from llmgen.verify.refs import check_refs
from llmgen.verify.stats import Family

CLUSTER_DOMAIN = "svc.cluster.local"


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
    family = family if family is not None else Family()
    out: list[Diagnostic] = []
    clusters = {
        name: Cluster(name, docs, (facts or {}).get(name), folder_namespaces)
        for name, docs in sorted(group_clusters(manifests).items())
    }
    by_name = {name.rsplit("/", 1)[-1]: c for name, c in clusters.items()}
    for cluster in clusters.values():
        cluster.remote = [by_name[p] for p in sorted(cluster.peers) if p in by_name]
    for cluster in clusters.values():
        out += _scrape(cluster, family)
        out += _keda(cluster, family)
        out += _mesh(cluster, family)
        out += check_refs(cluster, family)
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


def _resolve(cluster: Cluster, host: str, namespace: str) -> tuple[str, str] | None:
    """(namespace, Service name) of a cluster-local host, or None for other hosts."""
    if host.endswith("." + CLUSTER_DOMAIN):
        parts = host[: -len(CLUSTER_DOMAIN) - 1].split(".")
        return (parts[1], parts[0]) if len(parts) == 2 else None
    if "." not in host:
        return namespace, host
    parts = host.split(".")
    if len(parts) == 2 or (len(parts) == 3 and parts[2] == "svc"):
        return parts[1], parts[0]
    return None  # an external name (ServiceEntry, another mesh): not ours to check


def _mesh(cluster: Cluster, family: Family) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    subsets: dict[tuple[str, str], set[str]] = {}
    for m in cluster.by_kind.get("DestinationRule", []):
        spec = _dict(m.data.get("spec"))
        target = _resolve(cluster, str(spec.get("host", "")), cluster.namespace_of(m))
        if target is None:
            continue
        names = subsets.setdefault(target, set())
        family.run += 1
        found = cluster.service(*target)
        if found is None:
            if not cluster.opaque(target[0]):
                family.failed += 1
                out.append(m.diagnostic(("spec", "host"), _no_service(cluster, target)))
            continue
        service = found[0]
        selector = _dict(_dict(service.data.get("spec")).get("selector"))
        for index, subset in enumerate(_list(spec.get("subsets"))):
            subset = _dict(subset)
            names.add(str(subset.get("name")))
            labels = {**selector, **_dict(subset.get("labels"))}
            if not any(
                selector_matches({"matchLabels": labels}, p.labels)
                for p in cluster.mesh_pods(target[0])
            ):
                family.failed += 1
                out.append(
                    m.diagnostic(
                        ("spec", "subsets", index, "labels"),
                        f'subset "{subset.get("name")}" matches no pod of {service.identity}; '
                        "routes to it answer 503 (no healthy upstream)",
                    )
                )
    for m in cluster.by_kind.get("VirtualService", []):
        out += _virtual_service(cluster, m, subsets, family)
    for m in cluster.by_kind.get("AuthorizationPolicy", []):
        out += _principals(cluster, m, family)
    for kind in ("HTTPRoute", "GRPCRoute"):
        for m in cluster.by_kind.get(kind, []):
            out += _backend_refs(cluster, m, family)
    return out


def _backend_refs(cluster: Cluster, m: Manifest, family: Family) -> list[Diagnostic]:
    """Gateway API routes: each Service backendRef exists and exposes its port
    (a missing backend gets the route `ResolvedRefs=False` and 500s)."""
    out: list[Diagnostic] = []
    for r, rule in enumerate(_list(_dict(m.data.get("spec")).get("rules"))):
        for b, ref in enumerate(_list(_dict(rule).get("backendRefs"))):
            ref = _dict(ref)
            if ref.get("group", "") != "" or ref.get("kind", "Service") != "Service":
                continue
            namespace = str(ref.get("namespace") or cluster.namespace_of(m))
            path = ("spec", "rules", r, "backendRefs", b)
            family.run += 1
            found = cluster.service(namespace, str(ref.get("name")))
            if found is None:
                if not cluster.opaque(namespace):
                    family.failed += 1
                    target = (namespace, str(ref.get("name")))
                    out.append(m.diagnostic((*path, "name"), _no_service(cluster, target)))
                continue
            ports = {
                _dict(p).get("port") for p in _list(_dict(found[0].data.get("spec")).get("ports"))
            }
            if "port" in ref and ref["port"] not in ports:
                family.failed += 1
                out.append(
                    m.diagnostic((*path, "port"), f"{found[0].identity} has no port {ref['port']}")
                )
    return out


def _virtual_service(
    cluster: Cluster, m: Manifest, subsets: dict[tuple[str, str], set[str]], family: Family
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    spec = _dict(m.data.get("spec"))
    for section in ("http", "tcp", "tls"):
        for r, route in enumerate(_list(spec.get(section))):
            for d, dest in enumerate(_list(_dict(route).get("route"))):
                destination = _dict(_dict(dest).get("destination"))
                path = ("spec", section, r, "route", d, "destination")
                target = _resolve(
                    cluster, str(destination.get("host", "")), cluster.namespace_of(m)
                )
                if target is None:
                    continue
                family.run += 1
                found = cluster.service(*target)
                if found is None:
                    if not cluster.opaque(target[0]):
                        family.failed += 1
                        out.append(m.diagnostic((*path, "host"), _no_service(cluster, target)))
                    continue
                service = found[0]
                number = _dict(destination.get("port")).get("number")
                ports = {
                    _dict(p).get("port")
                    for p in _list(_dict(service.data.get("spec")).get("ports"))
                }
                if number is not None and number not in ports:
                    family.failed += 1
                    out.append(
                        m.diagnostic(
                            (*path, "port", "number"), f"{service.identity} has no port {number}"
                        )
                    )
                subset = destination.get("subset")
                if subset is not None and subset not in subsets.get(target, set()):
                    family.failed += 1
                    out.append(
                        m.diagnostic(
                            (*path, "subset"),
                            f'no DestinationRule defines subset "{subset}" '
                            f"for {target[1]}.{target[0]}",
                        )
                    )
    return out


def _no_service(cluster: Cluster, target: tuple[str, str]) -> str:
    where = "this cluster" + (" or its mesh peers" if cluster.remote else "")
    return f"no Service {target[1]} in namespace {target[0]} in {where}"


def _trust_domain(cluster: Cluster) -> str:
    for r in cluster.by_kind.get("HelmRelease", []):
        spec = _dict(r.data.get("spec"))
        if str(_dict(_dict(spec.get("chart")).get("spec")).get("chart")) == "istiod":
            mesh = _dict(_dict(spec.get("values")).get("meshConfig"))
            return str(mesh.get("trustDomain") or "cluster.local")
    return "cluster.local"


def _principals(cluster: Cluster, m: Manifest, family: Family) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    domain = _trust_domain(cluster)
    accounts = cluster.service_accounts()
    for r, rule in enumerate(_list(_dict(m.data.get("spec")).get("rules"))):
        for f, source in enumerate(_list(_dict(rule).get("from"))):
            for key in ("principals", "notPrincipals"):
                for i, principal in enumerate(_list(_dict(_dict(source).get("source")).get(key))):
                    parts = str(principal).split("/")
                    if (
                        "*" in str(principal)
                        or len(parts) != 5
                        or parts[1] != "ns"
                        or parts[3] != "sa"
                    ):
                        continue
                    family.run += 1
                    path = ("spec", "rules", r, "from", f, "source", key, i)
                    if parts[0] != domain:
                        family.failed += 1
                        out.append(
                            m.diagnostic(
                                path,
                                f'trust domain "{parts[0]}" is not the mesh\'s ("{domain}"); '
                                "this principal matches no workload",
                            )
                        )
                    elif (parts[2], parts[4]) not in accounts and not cluster.opaque(parts[2]):
                        family.failed += 1
                        out.append(
                            m.diagnostic(
                                path,
                                f"no ServiceAccount {parts[4]} in namespace {parts[2]}; "
                                "this principal matches no workload",
                            )
                        )
    return out
