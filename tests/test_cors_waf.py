"""Browsers and the WAF at the gateway (issue 14, points 8 and 9).

Route matching follows Istio 1.27's VirtualService semantics (http routes in
order, the first whose any `match` entry holds wins; a match entry's fields
all hold). The CORS answer follows Envoy's CORS filter
(source/extensions/filters/http/cors/cors_filter.cc): with no matched route
it continues and the router answers 404 without CORS headers; on a matched
route whose policy allows the origin, a preflight (OPTIONS with Origin and
Access-Control-Request-Method) is answered by the filter with the policy's
Access-Control-* headers.
"""

from __future__ import annotations

from typing import Any

import yaml

CLUSTER = "prod-aws-use1"


def virtual_service(files: dict[str, bytes], cluster: str = CLUSTER) -> dict[str, Any]:
    body = files[f"generated/clusters/{cluster}/infrastructure/configs/routes.yaml"]
    (vs,) = [d for d in yaml.safe_load_all(body) if d and d["kind"] == "VirtualService"]
    return vs


def _holds(match: dict[str, Any], method: str, path: str, headers: dict[str, str]) -> bool:
    for key, cond in match.items():
        if key == "uri" and not path.startswith(cond["prefix"]):
            return False
        if key == "method" and cond["exact"] != method:
            return False
        if key == "headers":
            for name, want in cond.items():
                if headers.get(name) != want["exact"]:
                    return False
    return True


def matched_route(
    vs: dict[str, Any], method: str, path: str, headers: dict[str, str]
) -> dict[str, Any] | None:
    for route in vs["spec"]["http"]:
        if any(_holds(m, method, path, headers) for m in route["match"]):
            return route
    return None


def preflight_answer(vs: dict[str, Any], origin: str, path: str, asked: list[str]) -> dict[str, str]:
    """The Access-Control-* headers a browser gets for its preflight ({} = none)."""
    headers = {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": ",".join(asked),
    }
    route = matched_route(vs, "OPTIONS", path, headers)
    if route is None or "corsPolicy" not in route:
        return {}  # 404 from the router, no CORS headers: the browser blocks the request
    policy = route["corsPolicy"]
    if not any(o.get("exact") == origin for o in policy["allowOrigins"]):
        return {}
    allowed = {h.lower() for h in policy["allowHeaders"]}
    if not {h.lower() for h in asked} <= allowed:
        return {}  # the browser rejects a preflight that does not allow its headers
    return {
        "access-control-allow-origin": origin,
        "access-control-allow-headers": ",".join(policy["allowHeaders"]),
        "access-control-allow-methods": ",".join(policy["allowMethods"]),
    }


def test_a_preflight_for_a_header_routed_request_gets_cors_headers(
    files: dict[str, bytes],
) -> None:
    vs = virtual_service(files)
    origin = "https://chat.example.com"
    answer = preflight_answer(
        vs, origin, "/v1/chat/completions", ["authorization", "content-type", "x-llmgen-model"]
    )
    assert answer.get("access-control-allow-origin") == origin
    # The real request, with the header, still goes to its model's header route.
    real = matched_route(vs, "POST", "/v1/chat/completions", {"x-llmgen-model": "bge-m3"})
    assert real is not None and real["name"] == "bge-m3-header"
    # Prefix routes answer their own preflights, before the catch-all.
    prefixed = matched_route(vs, "OPTIONS", "/v1/bge-m3/embeddings", {})
    assert prefixed is not None and prefixed["name"] == "bge-m3-prefix"


def test_the_preflight_route_is_last_and_only_for_options(files: dict[str, bytes]) -> None:
    routes = virtual_service(files)["spec"]["http"]
    last = routes[-1]
    assert last["name"] == "cors-preflight"
    assert last["match"] == [{"method": {"exact": "OPTIONS"}, "uri": {"prefix": "/v1/"}}]
    assert "directResponse" not in last  # Envoy's CORS filter needs a route entry
    assert last["corsPolicy"] == routes[0]["corsPolicy"]
    # A POST without the model header still matches nothing (404), as before.
    vs = virtual_service(files)
    assert matched_route(vs, "POST", "/v1/chat/completions", {}) is None
