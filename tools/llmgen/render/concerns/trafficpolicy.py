"""A model's DestinationRule policy at the ingress gateway (traffic.py renders it).

Connection limits per gateway pod, outlier detection, least-request balancing
with locality failover toward `routing.failover_targets` only, and one subset
per track (`llmgen.io/track`: stable, canary).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from llmgen.plan import routing
from llmgen.render.concerns import istio
from llmgen.render.concerns.istio import GATEWAY_REPLICAS

if TYPE_CHECKING:
    from llmgen.catalog.model import Model
    from llmgen.render.concerns.istio import MeshView


def connection_pool(mv: MeshView, model: Model) -> dict[str, Any]:
    """Limits per gateway pod, sized so the gateway's pods together admit what the
    environment's replicas can decode (review D17).

    Envoy enforces a cluster's circuit breakers in each proxy: N gateway pods
    admit N times the figure. The environment's capacity is shared over the
    gateway's minimum replica count (its HPA floor), so the breakers open at
    that capacity when the gateway is smallest, and at most
    max/min (10/2) times it at full scale-out, where the old per-pod figure
    reached 10 times. An exact shared cap needs a global rate limit service,
    which llmgen does not render.
    """
    low, _high = GATEWAY_REPLICAS
    limit = math.ceil(routing.max_concurrency(model, mv.placements_of(model.name)) / low)
    return {
        "tcp": {
            # vLLM speaks HTTP/1.1: one in-flight request per connection.
            "maxConnections": limit,
            "connectTimeout": "5s",
            # Keep long, quiet prefills alive through cloud NATs and load
            # balancers (idle timeouts of a few minutes).
            "tcpKeepalive": {"time": "60s", "interval": "20s", "probes": 3},
        },
        "http": {
            "http2MaxRequests": limit,
            "http1MaxPendingRequests": limit,
            "maxRetries": max(limit // 10, 3),
            "h2UpgradePolicy": "DO_NOT_UPGRADE",
        },
    }


# Eject a replica after repeated gateway errors (dead or unreachable pod),
# or more patient on any 5xx; all may be ejected so locality failover can
# move the traffic to the next region instead of hammering a dead one.
OUTLIER_DETECTION = {
    "consecutiveGatewayErrors": 3,
    "consecutive5xxErrors": 5,
    "interval": "10s",
    "baseEjectionTime": "30s",
    "maxEjectionPercent": 100,
}


def load_balancer(mv: MeshView, model: Model, track: str) -> dict[str, Any]:
    """Least-request (generations vary 1000x in length) with locality failover."""
    origin = routing.wanted(mv.environment, mv.cp.cluster, model, track)
    targets = routing.failover_targets(origin, mv.sites())
    locality: dict[str, Any] = {"enabled": True}
    failover = routing.locality_failover(origin, targets)
    if failover:
        locality["failover"] = failover
    return {"simple": "LEAST_REQUEST", "localityLbSetting": locality}


def subsets(mv: MeshView, model: Model) -> list[dict[str, Any]]:
    """One subset per track; a subset overrides the load balancer only where its
    failover targets differ from the stable track's (the rule's default)."""
    default = load_balancer(mv, model, routing.STABLE)
    tracks = [routing.STABLE] + ([routing.CANARY] if mv.has_canary(model.name) else [])
    out: list[dict[str, Any]] = []
    for track in tracks:
        subset: dict[str, Any] = {"name": track, "labels": {istio.TRACK_LABEL: track}}
        own = load_balancer(mv, model, track)
        if own != default:
            subset["trafficPolicy"] = {"loadBalancer": own}
        out.append(subset)
    return out
