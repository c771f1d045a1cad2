"""Browsers and the WAF at the gateway (issue 14, points 8 and 9).

Route matching follows Istio's VirtualService semantics (1.27, unchanged at
the pinned 1.28.0) as tests/gatewaysim.py replays them (the merge of every
VirtualService bound to the gateway, then http routes in order, the first
whose any `match` entry holds wins; a match entry's fields all hold). The
CORS answer follows Envoy's CORS filter
(source/extensions/filters/http/cors/cors_filter.cc): with no matched route
it continues and the router answers 404 without CORS headers; on a matched
route whose policy allows the origin, a preflight (OPTIONS with Origin and
Access-Control-Request-Method) is answered by the filter with the policy's
Access-Control-* headers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from gatewaysim import _fits, documents, merge_routes
from llmgen.catalog.validate import validate
from llmgen.plan.build import Plan
from llmgen.render.pipeline import checked_catalog

CLUSTER = "prod-aws-use1"


def virtual_service(files: dict[str, bytes], cluster: str = CLUSTER) -> dict[str, Any]:
    """The gateway's routes as istiod merges every VirtualService bound to it
    (tests/gatewaysim.py `merge_routes`, with its sources)."""
    return {"spec": {"http": merge_routes(documents(files, cluster))}}


def matched_route(
    vs: dict[str, Any], method: str, path: str, headers: dict[str, str]
) -> dict[str, Any] | None:
    for route in vs["spec"]["http"]:
        if any(_fits(m, method, path, headers) for m in route["match"]):
            return route
    return None


def preflight_answer(
    vs: dict[str, Any], origin: str, path: str, asked: list[str]
) -> dict[str, str]:
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
    # The last forwarding route: only the gateway's own answers (directResponse,
    # for an unknown or missing model: test_bodyrouting.py) follow it.
    routes = virtual_service(files)["spec"]["http"]
    forwarding = [r for r in routes if "directResponse" not in r]
    last = forwarding[-1]
    assert last["name"] == "cors-preflight"
    assert all("directResponse" in r for r in routes[routes.index(last) + 1 :])
    assert last["match"] == [{"method": {"exact": "OPTIONS"}, "uri": {"prefix": "/v1/"}}]
    assert "directResponse" not in last  # Envoy's CORS filter needs a route entry
    assert last["corsPolicy"] == forwarding[0]["corsPolicy"]
    # A POST naming no model reaches no model: the gateway answers it (400).
    vs = virtual_service(files)
    got = matched_route(vs, "POST", "/v1/chat/completions", {})
    assert got is not None and got["directResponse"]["status"] == 400


# ------------------------------------------------------------------ WAF


def _flatten(value: Any, key: str, out: dict[str, str]) -> None:
    """Coraza's JSON body processor (internal/bodyprocessors/json.go `readItems`):
    every leaf becomes ARGS `json.<key>.<key>...`, array items keyed by index."""
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{key}.{k}", out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(v, f"{key}.{i}", out)
    else:
        out[key] = str(value)


def json_args(body: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    _flatten(body, "json", out)
    return out


def waf_plugin(files: dict[str, bytes], cluster: str) -> dict[str, Any]:
    body = files[f"generated/clusters/{cluster}/infrastructure/configs/gateway.yaml"]
    (plugin,) = [d for d in yaml.safe_load_all(body) if d and d["kind"] == "WasmPlugin"]
    return plugin


def excluded_by(directives: list[str], tag: str) -> list[re.Pattern[str]]:
    """The ARGS exclusions SecRuleUpdateTargetByTag adds to rules tagged `tag`,
    if they come after the rules are loaded (Coraza edits loaded rules only)."""
    loaded = directives.index("Include @owasp_crs/*.conf")
    out = []
    for d in directives[loaded + 1 :]:
        fields = d.split()
        if fields[:2] == ["SecRuleUpdateTargetByTag", tag]:
            assert len(fields) == 3, "Coraza wants exactly: tag and one VARIABLES field"
            target = fields[2]
            assert target.startswith("!ARGS:/") and target.endswith("/")
            out.append(re.compile(target[len("!ARGS:/") : -1]))
    return out


PROMPTS = [
    {
        "model": "qwen2-5-32b-instruct-awq",
        "messages": [
            {"role": "system", "content": "You review SQL."},
            {"role": "user", "content": "Why does SELECT * FROM users WHERE 1=1 OR 'a'='a' leak?"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "<script>alert(1)</script>; cat /etc/passwd"}],
            },
        ],
        "max_tokens": 512,
    },
    {"model": "llama", "prompt": "<?php system($_GET['c']); ?> explain this"},
    {"model": "bge-m3", "input": ["DROP TABLE students; --", "../../etc/shadow"]},
]


def test_prompt_text_is_out_of_the_form_attack_rules(files: dict[str, bytes]) -> None:
    directives = waf_plugin(files, CLUSTER)["spec"]["pluginConfig"]["directives_map"]["default"]
    for tag in (
        "attack-sqli",
        "attack-xss",
        "attack-rce",
        "attack-injection-php",
        "attack-lfi",
        "attack-rfi",
    ):
        exclusions = excluded_by(directives, tag)
        assert exclusions, f"rules tagged {tag} still read prompts"
        for body in PROMPTS:
            for name, _value in json_args(body).items():
                prompt = name.startswith(("json.messages.", "json.prompt", "json.input"))
                is_content = prompt and (
                    not name.startswith("json.messages.") or ".content" in name
                )
                hit = any(p.search(name) for p in exclusions)  # RE2 == re here
                if is_content:
                    assert hit, (tag, name)
                else:
                    assert not hit, (tag, name)  # model, role, max_tokens stay inspected


def test_waf_mode_and_failure_policy_come_from_the_catalog(
    plan: Plan, files: dict[str, bytes]
) -> None:
    for name, cp in plan.clusters.items():
        env = cp.environment
        if env is None or not env.waf_enabled:
            continue
        spec = waf_plugin(files, name)["spec"]
        directives = spec["pluginConfig"]["directives_map"]["default"]
        engine = [d for d in directives if d.startswith("SecRuleEngine ")]
        # The last SecRuleEngine wins (it follows @recommended-conf's DetectionOnly).
        want = {"block": "SecRuleEngine On", "detect": "SecRuleEngine DetectionOnly"}
        assert engine[-1] == want[env.waf_mode]
        assert (
            spec["failStrategy"]
            == {"closed": "FAIL_CLOSE", "open": "FAIL_OPEN"}[env.waf_failure_policy]
        )
    modes = {cp.environment.waf_mode for cp in plan.clusters.values() if cp.environment}
    assert modes == {"block", "detect"}  # prod blocks, staging detects


def test_the_failure_policy_defaults_to_closed(scratch_repo: Path) -> None:
    rel = scratch_repo / "catalog/environments/prod.yaml"
    text = rel.read_text()
    rel.write_text(text.replace(", failurePolicy: closed}", "}"))
    catalog, _ = checked_catalog(scratch_repo)
    assert catalog.environments["prod"].waf_failure_policy == "closed"
    rel.write_text(text.replace("failurePolicy: closed", "failurePolicy: maybe"))
    result = validate(scratch_repo)
    (err,) = [str(d) for d in result.diagnostics if d.is_error]
    assert "spec.gateway.waf.failurePolicy" in err and err.startswith(
        "catalog/environments/prod.yaml:"
    )
