"""Routing on the ingress gateway: one VirtualService and a DestinationRule per model.

Into `infrastructure/configs/routes/`, namespace `istio-ingress`:

- `VirtualService/llm-api`: every model of the environment, on the
  environment's names. A model is picked by its route prefix
  (`/v1/llama-3.1-8b/chat/completions` -> `/v1/chat/completions`) or, under
  plain `/v1/`, by the `x-llmgen-model` header carrying its served name. The
  body's `model` field cannot be matched (Envoy routes before reading the
  body, and buffering it would stall streaming); vLLM itself rejects a body
  naming another model, so a header/body mismatch fails loudly. Prefix
  routes come first, longest first, so the explicit path always wins. One
  VirtualService, not one per model: Istio merges several for one host in
  no defined order.
- `DestinationRule/<model>`: subsets by `llmgen.io/track` (stable/canary),
  least-request balancing, connection limits, outlier detection, and
  locality failover toward `routing.failover_targets` only.

Both live beside the gateway (exportTo ".") because the gateway is the only
client, and it routes models that are not placed in its own cluster (their
endpoints are across the east-west gateway), where no model namespace exists.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgen.plan import routing
from llmgen.render.concerns import bodyrouting, gateway, inferencegateway, inferencepool, istio
from llmgen.render.concerns.istio import MeshView
from llmgen.render.types import Output, file_name

if TYPE_CHECKING:
    from llmgen.catalog.model import Model

CONFIGS = "infrastructure/configs/routes"

# Retry only when the request surely did not reach vLLM: a generation is
# expensive and not idempotent, and a 5xx after the stream began cannot be
# retried anyway. A retry goes to another locality where there is one.
RETRY_ON = "connect-failure,refused-stream,reset-before-request"
RETRY_ATTEMPTS = 2

CORS_METHODS = ["GET", "POST", "OPTIONS"]
# What browsers send to an OpenAI-style API: the bearer token, JSON, our
# model header, and the headers the OpenAI SDKs add to every request.
CORS_HEADERS = [
    "authorization",
    "content-type",
    istio.MODEL_HEADER,
    "openai-organization",
    "openai-project",
    "x-stainless-arch",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-timeout",
]
CORS_EXPOSE = ["x-request-id"]
PREFLIGHT_ROUTE = "cors-preflight"
PREFLIGHT_TIMEOUT_SECONDS = 60
CORS_MAX_AGE = "24h"


def match_prefix(route_prefix: str) -> str:
    """`/v1/llama-3.1-8b` -> `/v1/llama-3.1-8b/`: the trailing slash stops
    `/v1/llama` from also matching `/v1/llama-3/...`."""
    return route_prefix.rstrip("/") + "/"


def cors_policy(origins: tuple[str, ...]) -> dict[str, Any] | None:
    """The catalog's origins as exact matches (`*` stays `*`: Envoy allows any origin)."""
    if not origins:
        return None
    return {
        "allowOrigins": [{"exact": o} for o in origins],
        "allowMethods": CORS_METHODS,
        "allowHeaders": CORS_HEADERS,
        "exposeHeaders": CORS_EXPOSE,
        "maxAge": CORS_MAX_AGE,
        # Bearer tokens, not cookies: credentials mode stays off (and must,
        # with a wildcard origin).
        "allowCredentials": False,
    }


def destinations(mv: MeshView, model: Model) -> list[dict[str, Any]]:
    """Stable and canary subsets with weights summing to 100 (stable alone: 100).

    With InferencePools, a model goes to its entry on the inference gateways
    instead, whose HTTPRoute applies the canary split between the model's
    pools (inferencegateway.py, inferencepool.py)."""
    if inferencepool.enabled(mv):
        return [
            {
                "destination": {
                    "host": inferencegateway.entry_host(model.name),
                    "port": {"number": inferencegateway.PORT},
                },
                "weight": 100,
            }
        ]
    stable, canary = routing.canary_split(mv.canary_weight(model.name))
    host = istio.service_host(model.name)
    out: list[dict[str, Any]] = [
        {
            "destination": {
                "host": host,
                "subset": routing.STABLE,
                "port": {"number": istio.VLLM_PORT},
            },
            "weight": stable,
        }
    ]
    if canary:
        out.append(
            {
                "destination": {
                    "host": host,
                    "subset": routing.CANARY,
                    "port": {"number": istio.VLLM_PORT},
                },
                "weight": canary,
            }
        )
    return out


def _route(
    mv: MeshView, model: Model, kind: str, match: dict[str, Any], rewrite: str | None
) -> dict[str, Any]:
    route: dict[str, Any] = {"name": f"{model.name}-{kind}", "match": [match]}
    if rewrite is not None:
        route["rewrite"] = {"uri": rewrite}
    if inferencepool.enabled(mv):
        route["headers"] = {"request": {"set": {inferencegateway.POOL_HEADER: model.name}}}
    route["route"] = destinations(mv, model)
    route["timeout"] = f"{routing.route_timeout_seconds(model)}s"
    route["retries"] = {
        "attempts": RETRY_ATTEMPTS,
        "retryOn": RETRY_ON,
        "retryRemoteLocalities": True,
    }
    cors = cors_policy(mv.environment.cors_allow_origins)
    if cors is not None:
        route["corsPolicy"] = cors
    return route


def http_routes(mv: MeshView) -> list[dict[str, Any]]:
    """Every model's prefix route (longest prefix first), then its header route."""
    models = mv.served_models()
    by_prefix = sorted(models, key=lambda m: (-len(match_prefix(m.route_prefix)), m.name))
    routes = [
        _route(mv, m, "prefix", {"uri": {"prefix": match_prefix(m.route_prefix)}}, "/v1/")
        for m in by_prefix
    ]
    routes += [
        _route(
            mv,
            m,
            "header",
            {
                "uri": {"prefix": "/v1/"},
                "headers": {istio.MODEL_HEADER: {"exact": m.served_model_name}},
            },
            None,
        )
        for m in sorted(models, key=lambda m: m.name)
    ]
    routes += [
        _route(
            mv,
            m,
            "body",
            {
                "uri": {"prefix": "/v1/"},
                "headers": {bodyrouting.BASE_MODEL_HEADER: {"exact": m.served_model_name}},
            },
            None,
        )
        for m in sorted(models, key=lambda m: m.name)
    ]
    preflight = preflight_route(mv, models)
    if preflight is not None:
        routes.append(preflight)
    return routes


def preflight_route(mv: MeshView, models: list[Model]) -> dict[str, Any] | None:
    """The last forwarding route (only the gateway's own answers for an unknown or
    missing model follow it): a CORS preflight for a header-routed request.

    A browser's preflight (`OPTIONS /v1/chat/completions`) names
    `x-llmgen-model` in Access-Control-Request-Headers but does not carry it,
    so no header route matches; Envoy's CORS filter only answers for a
    matched route (`decoder_callbacks_->route() == nullptr` -> Continue), and
    the router answers 404 without CORS headers. This route gives it a match
    with the same policy, so the filter answers the preflight itself. It
    must be a routed entry, not a `directResponse`: the filter reads the
    policy from the route entry, which a direct response lacks. The
    destination is only reached by an OPTIONS from an origin the policy
    refuses (the model's authorization policy then denies it).
    """
    cors = cors_policy(mv.environment.cors_allow_origins)
    if cors is None or not models:
        return None
    target = min(models, key=lambda m: m.name)
    return {
        "name": PREFLIGHT_ROUTE,
        "match": [{"method": {"exact": "OPTIONS"}, "uri": {"prefix": "/v1/"}}],
        "route": destinations(mv, target),
        "timeout": f"{PREFLIGHT_TIMEOUT_SECONDS}s",
        "retries": {
            "attempts": RETRY_ATTEMPTS,
            "retryOn": RETRY_ON,
            "retryRemoteLocalities": True,
        },
        "corsPolicy": cors,
    }


def api_routes(mv: MeshView) -> list[dict[str, Any]]:
    """The VirtualService's routes in match order: path prefixes (the explicit
    path wins), `GET /v1/models`, the `x-llmgen-model` header, the body's model
    (through the body router's header), then the fallbacks."""
    routes = http_routes(mv)
    n_prefix = len(mv.served_models())
    return [*routes[:n_prefix], models_route(mv), *routes[n_prefix:], *fallback_routes()]


def model_list(mv: MeshView) -> str:
    """`GET /v1/models` as OpenAI answers it: every model the environment serves,
    each followed by its LoRA adapters.

    `created` is a Unix time in OpenAI's schema; llmgen has no creation time
    that would not churn the output, so it is 0 (clients only list ids).
    """
    data: list[dict[str, Any]] = []
    for m in sorted(mv.served_models(), key=lambda m: m.served_model_name):
        data.append(
            {"id": m.served_model_name, "object": "model", "created": 0, "owned_by": "llmgen"}
        )
        # Adapters as vLLM lists them: their own id, the base model as parent.
        data += [
            {
                "id": a.name,
                "object": "model",
                "created": 0,
                "owned_by": "llmgen",
                "parent": m.served_model_name,
            }
            for a in m.adapters
        ]
    return json.dumps({"object": "list", "data": data}, separators=(",", ":"))


def openai_error(message: str, code: str, param: str | None = "model") -> str:
    """An error body in OpenAI's shape, which the OpenAI SDKs parse into their exceptions."""
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return json.dumps({"error": error}, separators=(",", ":"))


def _direct(name: str, match: dict[str, Any], status: int, body: str) -> dict[str, Any]:
    return {
        "name": name,
        "match": [match],
        "directResponse": {"status": status, "body": {"string": body}},
        "headers": {"response": {"set": {"content-type": "application/json"}}},
    }


def models_route(mv: MeshView) -> dict[str, Any]:
    """The gateway answers `GET /v1/models` itself, with the environment's models."""
    return _direct(
        "list-models",
        {"uri": {"exact": "/v1/models"}, "method": {"exact": "GET"}},
        200,
        model_list(mv),
    )


def fallback_routes() -> list[dict[str, Any]]:
    """What no model route took: a model the environment does not serve (the body
    router named one), or no model at all."""
    return [
        _direct(
            "unknown-model",
            {
                "uri": {"prefix": "/v1/"},
                "headers": {bodyrouting.MODEL_NAME_HEADER: {"regex": ".+"}},
            },
            404,
            openai_error(
                "The model named in the request is not served here; GET /v1/models lists "
                "the models this endpoint serves.",
                "model_not_found",
            ),
        ),
        _direct(
            "no-model",
            {"uri": {"prefix": "/v1/"}},
            400,
            openai_error(
                'The request names no model: send "model" in the JSON body, the '
                f"{istio.MODEL_HEADER} header, or use a model's path prefix.",
                "model_not_specified",
            ),
        ),
    ]


def connection_pool(mv: MeshView, model: Model) -> dict[str, Any]:
    """Limits per gateway pod, sized to what the environment's replicas can decode."""
    limit = routing.max_concurrency(model, mv.placements_of(model.name))
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


def outputs(mv: MeshView) -> Iterator[Output]:
    cp = mv.cp
    ns = istio.INGRESS_NAMESPACE
    if not mv.served_models():
        return
    yield Output(
        f"{CONFIGS}/{file_name('VirtualService', istio.VIRTUAL_SERVICE)}",
        "mesh/virtualservice.yaml.j2",
        {
            "name": istio.VIRTUAL_SERVICE,
            "namespace": ns,
            "labels": cp.labels,
            "hosts": gateway.gateway_hosts(mv),
            "gateways": [istio.GATEWAY_NAME],
            "http": api_routes(mv),
        },
        mv.env_hash,
    )
    pooled = inferencepool.enabled(mv)
    for model in mv.served_models():
        yield Output(
            f"{CONFIGS}/{file_name('DestinationRule', model.name)}",
            "mesh/destinationrule.yaml.j2",
            {
                "name": model.name,
                "namespace": ns,
                "labels": cp.labels,
                # With pools: the model's entry on the inference gateways, over
                # the mesh's mTLS (its pods are no sidecars: no auto-mTLS), the
                # canary split being the HTTPRoute's.
                "host": (
                    inferencegateway.entry_host(model.name)
                    if pooled
                    else istio.service_host(model.name)
                ),
                "export_to": ["."],
                "connection_pool": connection_pool(mv, model),
                "outlier_detection": OUTLIER_DETECTION,
                "load_balancer": load_balancer(mv, model, routing.STABLE),
                "tls": {"mode": "ISTIO_MUTUAL"} if pooled else None,
                "subsets": [] if pooled else subsets(mv, model),
            },
            mv.env_hash,
        )
