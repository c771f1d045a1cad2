"""Routing on the ingress gateway: a VirtualService per model, one for the
gateway's own answers, and a DestinationRule per model.

Istio merges every VirtualService bound to one gateway for one host into one
route list (pilot/pkg/networking/core/gateway.go `buildGatewayHTTPRouteConfig`,
Istio 1.27.3; unchanged in 1.28): the VirtualServices in the order
`PushContext.VirtualServicesForGateway` (pilot/pkg/model/push_context.go)
returns them, each one's routes in its own order, then
`SortVHostRoutes` moves catch-all routes (prefix `/`, no header) to the end.
That order is: the VirtualServices private to the gateway pod's namespace
(`exportTo: ["."]` in istio-ingress), then those exported to it from other
namespaces, then the public ones (`exportTo: ["*"]`); inside each group by
creation time, then name, then namespace (`sortConfigByCreationTime`,
pilot/pkg/model/config.go). Creation time is Flux's apply order, which
llmgen cannot fix, so nothing here depends on it:

- `VirtualService/<model>` (in the model's own Flux folder, `models/<model>/`,
  on every cluster whose gateway routes the model, placed there or not:
  endpoints elsewhere are reached across the east-west gateway), private to
  istio-ingress: the model's path prefix (`/v1/llama-3.1-8b/chat/completions`
  -> `/v1/chat/completions`), its `x-llmgen-model` header, then the base-model
  header the body router sets from the body's `model` (bodyrouting.py). The
  body route also requires the `x-llmgen-model` header to be absent, so an
  explicit header wins over a body naming another model whatever the order
  of two models' VirtualServices. Routes of two models never match the same
  request unless it names two models (path of one, header or body of the
  other), which fails either way (vLLM rejects a body naming another model,
  and an un-rewritten prefixed path is a 404).
- `VirtualService/llm-api` (infrastructure/configs), public, so Istio puts it
  after every model's private one whatever their creation times: `GET
  /v1/models` answered by the gateway, the CORS preflight, and OpenAI-shaped
  errors for an unknown model (by header or body) or none. Its size does not
  grow with the catalog but for the `/v1/models` body (one short entry per
  model); Delegation (`delegate`) would order as well but its root must
  list every delegate, so the configs folder would grow again.
- `DestinationRule/<model>` (the model's folder, exportTo "." in
  istio-ingress: the gateway is its only client): subsets by
  `llmgen.io/track` (stable/canary), least-request balancing, connection
  limits, outlier detection, and locality failover toward
  `routing.failover_targets` only.

tests/gatewaysim.py replays that merge (every permutation of creation times
in tests/test_route_merge.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgen.plan import routing
from llmgen.render.concerns import (
    bodyrouting,
    gateway,
    inferencegateway,
    inferencepool,
    istio,
    trafficpolicy,
)
from llmgen.render.concerns.istio import MeshView
from llmgen.render.types import Output, file_name, model_layer

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


#: `withoutHeaders` value meaning "absent or empty": Istio turns a non-`*`
#: match into an inverted Envoy matcher with treat_missing_header_as_empty
#: (pilot/pkg/networking/core/route/route.go `TranslateRouteMatch`, 1.27.3),
#: and `.+` fails on "" (a plain regex would fail on a missing header, which
#: Envoy then inverts to "no match").
ABSENT = {"regex": ".+"}


def model_routes(mv: MeshView, model: Model) -> list[dict[str, Any]]:
    """One model's routes, in match order: its path prefix (the explicit path
    wins), its `x-llmgen-model` header, then the body's model (through the body
    router's header) unless a header named a model."""
    on_v1 = {"prefix": "/v1/"}
    return [
        _route(mv, model, "prefix", {"uri": {"prefix": match_prefix(model.route_prefix)}}, "/v1/"),
        _route(
            mv,
            model,
            "header",
            {"uri": on_v1, "headers": {istio.MODEL_HEADER: {"exact": model.served_model_name}}},
            None,
        ),
        _route(
            mv,
            model,
            "body",
            {
                "uri": on_v1,
                "headers": {bodyrouting.BASE_MODEL_HEADER: {"exact": model.served_model_name}},
                "withoutHeaders": {istio.MODEL_HEADER: ABSENT},
            },
            None,
        ),
    ]


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


def gateway_routes(mv: MeshView) -> list[dict[str, Any]]:
    """The gateway's own routes, after every model's (Istio's merge order, see the
    module docstring): `GET /v1/models`, the CORS preflight, then the errors."""
    preflight = preflight_route(mv, mv.served_models())
    return [models_route(mv), *([preflight] if preflight else []), *fallback_routes()]


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
        {
            "uri": {"exact": "/v1/models"},
            "method": {"exact": "GET"},
            "withoutHeaders": {istio.MODEL_HEADER: ABSENT},
        },
        200,
        model_list(mv),
    )


def fallback_routes() -> list[dict[str, Any]]:
    """What no model route took: a model the environment does not serve (named by
    the header, or by the body, which the body router then leaves without a
    base model), or no model at all. Each match excludes what a model route
    takes, so none of them could shadow one in any merge order."""
    not_found = openai_error(
        "The model named in the request is not served here; GET /v1/models lists "
        "the models this endpoint serves.",
        "model_not_found",
    )
    return [
        _direct(
            "unknown-model-header",
            {"uri": {"prefix": "/v1/"}, "headers": {istio.MODEL_HEADER: ABSENT}},
            404,
            not_found,
        ),
        _direct(
            "unknown-model",
            {
                "uri": {"prefix": "/v1/"},
                "headers": {bodyrouting.MODEL_NAME_HEADER: ABSENT},
                "withoutHeaders": {bodyrouting.BASE_MODEL_HEADER: ABSENT},
            },
            404,
            not_found,
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


def outputs(mv: MeshView) -> Iterator[Output]:
    cp = mv.cp
    ns = istio.INGRESS_NAMESPACE
    if not mv.served_models():
        return
    hosts = gateway.gateway_hosts(mv)
    yield Output(
        f"{CONFIGS}/{file_name('VirtualService', istio.VIRTUAL_SERVICE)}",
        "mesh/virtualservice.yaml.j2",
        {
            "name": istio.VIRTUAL_SERVICE,
            "namespace": ns,
            "labels": cp.labels,
            "hosts": hosts,
            "gateways": [istio.GATEWAY_NAME],
            # public: merged after every model's private VirtualService
            "export_to": ["*"],
            "http": gateway_routes(mv),
        },
        mv.env_hash,
    )
    pooled = inferencepool.enabled(mv)
    for model in mv.served_models():
        folder = model_layer(model.name)
        yield Output(
            f"{folder}/{file_name('VirtualService', model.name)}",
            "mesh/virtualservice.yaml.j2",
            {
                "name": model.name,
                "namespace": ns,
                "labels": mv.model_labels(model),
                "hosts": hosts,
                "gateways": [istio.GATEWAY_NAME],
                "export_to": ["."],
                "http": model_routes(mv, model),
            },
            mv.model_hash(model.name),
        )
        yield Output(
            f"{folder}/{file_name('DestinationRule', model.name)}",
            "mesh/destinationrule.yaml.j2",
            {
                "name": model.name,
                "namespace": ns,
                "labels": mv.model_labels(model),
                # With pools: the model's entry on the inference gateways, over
                # the mesh's mTLS (its pods are no sidecars: no auto-mTLS), the
                # canary split being the HTTPRoute's.
                "host": (
                    inferencegateway.entry_host(model.name)
                    if pooled
                    else istio.service_host(model.name)
                ),
                "export_to": ["."],
                "connection_pool": trafficpolicy.connection_pool(mv, model),
                "outlier_detection": trafficpolicy.OUTLIER_DETECTION,
                "load_balancer": trafficpolicy.load_balancer(mv, model, routing.STABLE),
                "tls": {"mode": "ISTIO_MUTUAL"} if pooled else None,
                "subsets": [] if pooled else trafficpolicy.subsets(mv, model),
            },
            mv.model_hash(model.name),
        )
