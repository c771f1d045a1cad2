"""Wiring of the mesh: routes, subsets and principals against what exists.

- a DestinationRule subset whose labels match no pod of its host (here or in
  a mesh peer) leaves routes to it answering 503 (no healthy upstream);
- a VirtualService / HTTPRoute / GRPCRoute destination must be a Service of
  this cluster or of a mesh peer (istiod reads the peers' API servers through
  the remote secrets), expose the route's port, and a subset some
  DestinationRule defines;
- an AuthorizationPolicy principal must name an existing ServiceAccount in
  the mesh's trust domain (istiod `meshConfig.trustDomain`, default
  `cluster.local`), or it matches no workload.
"""

from __future__ import annotations

from typing import Any

from llmgen.errors import Diagnostic
from llmgen.verify.apiserver import selector_matches
from llmgen.verify.cluster import Cluster
from llmgen.verify.manifests import Manifest
from llmgen.verify.stats import Family

CLUSTER_DOMAIN = "svc.cluster.local"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


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


def check_routes(cluster: Cluster, family: Family) -> list[Diagnostic]:
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
