"""Wiring of InferencePool routing: HTTPRoute -> Gateway and InferencePool -> pods and picker.

What a cluster accepts and then gets wrong, each against the controller's
behaviour at the pinned versions:

- an HTTPRoute's `parentRefs` must name a Gateway of this cluster, one of its
  listeners (`sectionName`), and a listener whose `allowedRoutes` admits the
  route's namespace; otherwise the route is not Accepted and Istio programs
  nothing for it (so the pool gets no gateway parent either: Istio 1.28.0
  inferencepool_collection.go only builds pools with gateway parents);
- a `backendRefs` entry of kind InferencePool must name a pool in the route's
  namespace (Istio 1.28.0 conversion.go looks it up as `<namespace>/<name>`
  and answers `backend(...) not found`);
- an InferencePool's `selector.matchLabels` must select pods that declare
  each `targetPorts` number (Istio makes a shadow Service from exactly these);
- its `endpointPickerRef` must be a Service of the pool's namespace exposing
  that port (Istio sends ext_proc to `<name>.<namespace>.svc`), selecting
  picker pods started with `--pool-name` = the pool and `--pool-namespace`
  = its namespace (gateway-api-inference-extension v1.3.0
  pkg/epp/server/options.go: the picker watches only that pool, and with
  another name it picks among another pool's pods).
"""

from __future__ import annotations

from typing import Any

from llmgen.errors import Diagnostic
from llmgen.verify.apiserver import containers, selector_matches
from llmgen.verify.cluster import Cluster, Pods
from llmgen.verify.manifests import Manifest
from llmgen.verify.stats import Family

POOL_GROUP = "inference.networking.k8s.io"
GATEWAY_GROUP = "gateway.networking.k8s.io"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def check_pools(cluster: Cluster, family: Family) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for m in cluster.by_kind.get("HTTPRoute", []):
        out += _parents(cluster, m, family)
        out += _pool_backends(cluster, m, family)
    for m in cluster.by_kind.get("InferencePool", []):
        if m.api_version == f"{POOL_GROUP}/v1":
            out += _pool(cluster, m, family)
    for m in cluster.by_kind.get("Gateway", []):
        if m.api_version.startswith(GATEWAY_GROUP + "/"):
            out += _parameters(cluster, m, family)
    return out


#: The overlay keys Istio 1.28.0 accepts in a Gateway's parameters ConfigMap
#: (deploymentcontroller.go `supportedOverlays`; any other key fails the whole
#: deployment of the gateway).
ISTIO_OVERLAYS = frozenset(
    {"deployment", "service", "serviceAccount", "horizontalPodAutoscaler", "podDisruptionBudget"}
)


def _parameters(cluster: Cluster, m: Manifest, family: Family) -> list[Diagnostic]:
    """A Gateway's `infrastructure.parametersRef` ConfigMap exists, with keys Istio knows."""
    ref = _dict(_dict(_dict(m.data.get("spec")).get("infrastructure")).get("parametersRef"))
    if ref.get("kind") != "ConfigMap" or ref.get("group", "") != "":
        return []
    family.run += 1
    path = ("spec", "infrastructure", "parametersRef", "name")
    found = cluster.get("ConfigMap", cluster.namespace_of(m), str(ref.get("name")))
    if found is None:
        family.failed += 1
        return [
            m.diagnostic(
                path,
                f"no ConfigMap {ref.get('name')} in namespace {cluster.namespace_of(m)}; "
                "the gateway controller does not deploy the gateway",
            )
        ]
    unknown = sorted(set(_dict(found.data.get("data"))) - ISTIO_OVERLAYS)
    if unknown and _dict(m.data.get("spec")).get("gatewayClassName") == "istio":
        family.failed += 1
        return [
            m.diagnostic(
                path,
                f"{found.identity} has keys Istio does not support ({', '.join(unknown)}); "
                "Istio refuses to deploy the gateway",
            )
        ]
    return []


def _admits(cluster: Cluster, listener: dict[str, Any], gw_ns: str, route_ns: str) -> bool:
    namespaces = _dict(_dict(listener.get("allowedRoutes")).get("namespaces"))
    origin = namespaces.get("from", "Same")
    if origin == "All":
        return True
    if origin == "Same":
        return gw_ns == route_ns
    if origin == "Selector":
        ns = cluster.get("Namespace", "", route_ns)
        labels = dict(_dict(ns.metadata.get("labels"))) if ns else {}
        labels.setdefault("kubernetes.io/metadata.name", route_ns)
        return selector_matches(_dict(namespaces.get("selector")), labels)
    return False


def _parents(cluster: Cluster, m: Manifest, family: Family) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    route_ns = cluster.namespace_of(m)
    for i, ref in enumerate(_list(_dict(m.data.get("spec")).get("parentRefs"))):
        ref = _dict(ref)
        if ref.get("group", GATEWAY_GROUP) != GATEWAY_GROUP or ref.get("kind", "Gateway") != (
            "Gateway"
        ):
            continue
        family.run += 1
        path = ("spec", "parentRefs", i)
        ns = str(ref.get("namespace") or route_ns)
        gw = cluster.get("Gateway", ns, str(ref.get("name")))
        if gw is None or not gw.api_version.startswith(GATEWAY_GROUP + "/"):
            family.failed += 1
            out.append(
                m.diagnostic(
                    (*path, "name"),
                    f"no Gateway {ref.get('name')} in namespace {ns}; the route is not Accepted",
                )
            )
            continue
        listeners = [_dict(x) for x in _list(_dict(gw.data.get("spec")).get("listeners"))]
        section = ref.get("sectionName")
        if section is not None:
            listeners = [x for x in listeners if x.get("name") == section]
            if not listeners:
                family.failed += 1
                out.append(
                    m.diagnostic(
                        (*path, "sectionName"), f'{gw.identity} has no listener "{section}"'
                    )
                )
                continue
        if not any(_admits(cluster, x, ns, route_ns) for x in listeners):
            family.failed += 1
            out.append(
                m.diagnostic(
                    path,
                    f"no listener of {gw.identity} admits routes from namespace {route_ns} "
                    "(allowedRoutes.namespaces); the route is not Accepted",
                )
            )
    return out


def _pool_backends(cluster: Cluster, m: Manifest, family: Family) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    route_ns = cluster.namespace_of(m)
    for r, rule in enumerate(_list(_dict(m.data.get("spec")).get("rules"))):
        for b, ref in enumerate(_list(_dict(rule).get("backendRefs"))):
            ref = _dict(ref)
            if ref.get("kind") != "InferencePool":
                continue
            family.run += 1
            path = ("spec", "rules", r, "backendRefs", b)
            if ref.get("group") != POOL_GROUP:
                family.failed += 1
                out.append(
                    m.diagnostic(
                        (*path, "group"),
                        f'an InferencePool backend needs group "{POOL_GROUP}" (the v1 API)',
                    )
                )
                continue
            ns = str(ref.get("namespace") or route_ns)
            if cluster.get("InferencePool", ns, str(ref.get("name"))) is None:
                family.failed += 1
                out.append(
                    m.diagnostic(
                        (*path, "name"),
                        f"no InferencePool {ref.get('name')} in namespace {ns}; "
                        "Istio answers 500 (backend not found)",
                    )
                )
    return out


def _args(pods: Pods) -> list[str]:
    """The args of the pod's container that takes `--pool-name` (the picker's)."""
    for _, _, container in containers(_dict(pods.spec)):
        args = [str(a) for a in _list(container.get("args"))]
        if _flag(args, "pool-name") is not None:
            return args
    return []


def _flag(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == f"--{name}" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def _pool(cluster: Cluster, m: Manifest, family: Family) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    spec = _dict(m.data.get("spec"))
    ns = cluster.namespace_of(m)
    selector = {"matchLabels": _dict(_dict(spec.get("selector")).get("matchLabels"))}
    family.run += 1
    selected = [p for p in cluster.pods_in({ns}) if selector_matches(selector, p.labels)]
    if not selected:
        family.failed += 1
        out.append(
            m.diagnostic(
                ("spec", "selector"), f"selects no pod in namespace {ns}; the pool is empty"
            )
        )
    for i, port in enumerate(_list(spec.get("targetPorts"))):
        number = _dict(port).get("number")
        family.run += 1
        missing = [p.label for p in selected if not p.declares(number=number)]
        if missing:
            family.failed += 1
            out.append(
                m.diagnostic(
                    ("spec", "targetPorts", i, "number"),
                    f"{', '.join(missing)} declares no container port {number}",
                )
            )
    ref = _dict(spec.get("endpointPickerRef"))
    if ref.get("kind", "Service") != "Service" or ref.get("group", "") != "":
        return out
    family.run += 1
    service = cluster.get("Service", ns, str(ref.get("name")))
    if service is None:
        family.failed += 1
        out.append(
            m.diagnostic(
                ("spec", "endpointPickerRef", "name"),
                f"no Service {ref.get('name')} in namespace {ns}; no replica gets picked",
            )
        )
        return out
    svc_spec = _dict(service.data.get("spec"))
    number = _dict(ref.get("port")).get("number")
    if number not in {_dict(p).get("port") for p in _list(svc_spec.get("ports"))}:
        family.failed += 1
        out.append(
            m.diagnostic(
                ("spec", "endpointPickerRef", "port", "number"),
                f"{service.identity} has no port {number}",
            )
        )
    pickers = [
        p
        for p in cluster.pods_in({ns})
        if selector_matches({"matchLabels": _dict(svc_spec.get("selector"))}, p.labels)
    ]
    family.run += 1
    wrong = [
        p.label
        for p in pickers
        if _flag(_args(p), "pool-name") != m.name
        or _flag(_args(p), "pool-namespace") not in (None, ns)
        or _flag(_args(p), "pool-group") not in (None, POOL_GROUP)
    ]
    if not pickers or wrong:
        family.failed += 1
        what = (
            f"{', '.join(wrong)} picks for another pool (--pool-name/--pool-namespace/--pool-group)"
            if wrong
            else f"{service.identity} selects no pod"
        )
        out.append(m.diagnostic(("spec", "endpointPickerRef", "name"), what))
    return out
