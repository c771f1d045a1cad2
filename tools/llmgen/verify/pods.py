"""Pods that a cluster accepts and that then cannot work.

- A NetworkPolicy that restricts a pod's egress leaves what the pod must
  reach before it serves: DNS (port 53, UDP and TCP) and istiod (15012) for
  a pod with the injected istio-proxy, which resolves and dials
  `istiod.istio-system.svc:15012` before any other container starts; DNS and
  443 for an init container that copies weights with a cloud CLI.
- `progressDeadlineSeconds` (default 600) covers the startup probe's budget
  (initialDelaySeconds + periodSeconds x failureThreshold): otherwise the
  Deployment reports ProgressDeadlineExceeded, which kstatus reads as Failed,
  and the Flux layer fails its health check while pods are still starting.
- `terminationGracePeriodSeconds` (default 30) is longer than the preStop
  sleep: the kubelet kills the container when the grace period ends, preStop
  or not.
"""

from __future__ import annotations

from typing import Any

from llmgen.catalog.load import PathKey
from llmgen.errors import Diagnostic
from llmgen.verify.apiserver import containers, selector_matches
from llmgen.verify.cluster import Cluster
from llmgen.verify.manifests import Manifest
from llmgen.verify.quantity import parse_quantity
from llmgen.verify.schemas import split_api_version
from llmgen.verify.stats import Family

_CLOUD_CLIS = ("aws", "gcloud", "gsutil", "s5cmd", "azcopy")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _allows(rule: dict[str, Any], port: int, protocol: str) -> bool:
    ports = _list(rule.get("ports"))
    if not ports:
        return True
    for p in ports:
        p = _dict(p)
        if str(p.get("protocol", "TCP")) != protocol:
            continue
        number, end = p.get("port"), p.get("endPort")
        if (
            number is None
            or number == port
            or (isinstance(number, int) and isinstance(end, int) and number <= port <= end)
        ):
            return True
        if isinstance(number, str) and number == "dns" and port == 53:
            return True
    return False


def check_network(cluster: Cluster, family: Family) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    by_namespace: dict[str, list[Manifest]] = {}
    for m in cluster.by_kind.get("NetworkPolicy", []):
        if split_api_version(m.api_version)[0] == "networking.k8s.io":
            by_namespace.setdefault(cluster.namespace_of(m), []).append(m)
    for pods in cluster.pods:
        if pods.owner is None:
            continue
        mine = [
            p
            for p in by_namespace.get(pods.namespace, [])
            if selector_matches(_dict(_dict(p.data.get("spec")).get("podSelector")), pods.labels)
        ]
        egress = [
            p
            for p in mine
            if "Egress" in _list(_dict(p.data.get("spec")).get("policyTypes"))
            or "egress" in _dict(p.data.get("spec"))
        ]
        if not egress:
            continue
        rules = [_dict(r) for p in egress for r in _list(_dict(p.data.get("spec")).get("egress"))]
        # What the pod must reach: the injected istio-proxy resolves and dials
        # istiod (istiod.istio-system.svc:15012) before any other container
        # starts; an init container running a cloud CLI resolves and dials the
        # storage API over HTTPS. A pod that only calls the API server by its
        # service IP (KUBERNETES_SERVICE_HOST) needs neither.
        needs: list[tuple[int, str, str]] = []
        cli = any(
            isinstance(c.get("command"), list)
            and c["command"]
            and str(c["command"][0]).rsplit("/", 1)[-1] in _CLOUD_CLIS
            for field, _, c in containers(pods.spec)
            if field == "initContainers"
        )
        if pods.sidecar or cli:
            needs += [(53, "UDP", "DNS"), (53, "TCP", "DNS")]
        if pods.sidecar:
            needs.append((15012, "TCP", "istiod, which the injected istio-proxy needs to start"))
        if cli:
            needs.append((443, "TCP", "the storage API an init container's cloud CLI copies from"))
        for port, protocol, what in needs:
            family.run += 1
            if any(_allows(r, port, protocol) for r in rules):
                continue
            family.failed += 1
            first = egress[0]
            out.append(
                first.diagnostic(
                    ("spec",),
                    f"{pods.label} may not reach port {port}/{protocol} ({what}) under the "
                    f"egress policies of namespace {pods.namespace}",
                )
            )
    return out


def check_deadlines(cluster: Cluster, family: Family) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for pods in cluster.pods:
        m = pods.owner
        if m is None:
            continue
        spec = pods.spec
        base: PathKey = ("spec",) if m.kind == "Pod" else ("spec", "template", "spec")
        grace = spec.get("terminationGracePeriodSeconds", 30)
        for field, index, c in containers(spec):
            seconds = _dict(_dict(_dict(c.get("lifecycle")).get("preStop")).get("sleep")).get(
                "seconds"
            )
            if isinstance(seconds, int) and isinstance(grace, int):
                family.run += 1
                if seconds >= grace:
                    family.failed += 1
                    out.append(
                        m.diagnostic(
                            (*base, field, index, "lifecycle", "preStop", "sleep", "seconds"),
                            f"the preStop sleep ({seconds} s) is not shorter than "
                            f"terminationGracePeriodSeconds ({grace} s): "
                            "the kubelet kills the container before it drains",
                        )
                    )
            if m.kind != "Deployment" or field != "containers":
                continue
            probe = _dict(c.get("startupProbe"))
            if not probe:
                continue
            budget = int(probe.get("initialDelaySeconds", 0)) + int(
                probe.get("periodSeconds", 10)
            ) * int(probe.get("failureThreshold", 3))
            deadline = _dict(m.data.get("spec")).get("progressDeadlineSeconds", 600)
            shown = (
                deadline
                if "progressDeadlineSeconds" in _dict(m.data.get("spec"))
                else ("default 600")
            )
            family.run += 1
            if isinstance(deadline, int) and deadline < budget:
                family.failed += 1
                out.append(
                    m.diagnostic(
                        ("spec", "progressDeadlineSeconds")
                        if "progressDeadlineSeconds" in _dict(m.data.get("spec"))
                        else ("spec",),
                        f"progressDeadlineSeconds ({shown} s) is shorter than the startup "
                        f'budget of container "{c.get("name")}" ({budget} s): rollouts report '
                        "ProgressDeadlineExceeded "
                        "and the Flux layer fails its health check while pods are still starting",
                    )
                )
    return out


# Istio's injected proxy asks this of every pod it joins (istio-discovery chart
# values `global.proxy.resources.requests`: 100m, 128Mi at 1.27.3 and at the
# pinned 1.28.0, rechecked).
SIDECAR_REQUEST = (0.1, 128 / 1024)
_POOL_LABELS = ("karpenter.sh/nodepool", "cloud.google.com/compute-class")


def _requests(containers_: list[Any]) -> tuple[float, float]:
    cpu = memory = 0.0
    for c in containers_:
        requests = _dict(_dict(_dict(c).get("resources")).get("requests"))
        q_cpu = parse_quantity(requests.get("cpu", 0)) if "cpu" in requests else 0
        q_mem = parse_quantity(requests.get("memory", 0)) if "memory" in requests else 0
        cpu += float(q_cpu or 0)
        memory += float(q_mem or 0) / 2**30
    return cpu, memory


def check_fit(cluster: Cluster, family: Family) -> list[Diagnostic]:
    """A pod's requests fit the allocatable of at least one shape of the pool it selects.

    The effective request is the larger of the app containers' sum and any
    init container's, plus the injected proxy; the shapes' allocatable comes
    from the catalog (`ClusterFacts.pools`, computed by the catalog's node-fit
    arithmetic). Without that, the check is skipped and counted.
    """
    pools = {p.name: p for p in cluster.facts.pools}
    out: list[Diagnostic] = []
    for pods in cluster.pods:
        m = pods.owner
        if m is None:
            continue
        selector = _dict(pods.spec.get("nodeSelector"))
        pool_name = next((str(selector[k]) for k in _POOL_LABELS if k in selector), "")
        if not pool_name:
            continue
        pool = pools.get(pool_name)
        if pool is None or not pool.shapes:
            family.skipped += 1
            continue
        family.run += 1
        app = _requests(_list(pods.spec.get("containers")))
        init = [_requests([c]) for c in _list(pods.spec.get("initContainers"))]
        cpu = max([app[0], *(i[0] for i in init)])
        memory = max([app[1], *(i[1] for i in init)])
        if pods.sidecar:
            cpu, memory = cpu + SIDECAR_REQUEST[0], memory + SIDECAR_REQUEST[1]
        if any(cpu <= c and memory <= g for _, c, g in pool.shapes):
            continue
        family.failed += 1
        offers = ", ".join(f"{n} {c:.1f} CPU / {g:.1f} GiB" for n, c, g in pool.shapes)
        base: PathKey = ("spec",) if m.kind == "Pod" else ("spec", "template", "spec")
        out.append(
            m.diagnostic(
                (*base, "nodeSelector"),
                f"the pod requests {cpu:g} CPU and {memory:.1f} GiB"
                + (" (with the istio-proxy's 100m / 128Mi)" if pods.sidecar else "")
                + f", more than any node of pool {pool_name} can give pods ({offers}): "
                "it stays Pending",
            )
        )
    return out
