"""An in-process stand-in for one cluster's ingress gateway, built from the
rendered documents, so real OpenAI clients can be sent through the routing
decisions llmgen renders (no Envoy binary comes from the package registries).

What it reproduces, and from where:
- the body-based router (gateway-api-inference-extension v1.3.0,
  `pkg/bbr/handlers/request.go` and `pkg/bbr/datastore/datastore.go`): the
  request body is parsed as JSON; a non-empty `model` is copied into
  `x-gateway-model-name`, and its base model (the adapter's `baseModel`, or the
  name itself when a ConfigMap names it a base model, else "") into
  `x-gateway-base-model-name`; the route is then chosen again. It runs only
  when the rendered EnvoyFilter inserts ext_proc into the gateway's chain with
  the router's cluster, and it never touches the response (the filter's
  `response_body_mode` must be NONE, so streams are not buffered);
- Istio's merge of the VirtualServices bound to the gateway (Istio 1.27.3,
  same in 1.28): `PushContext.VirtualServicesForGateway`
  (pilot/pkg/model/push_context.go) lists those private to the gateway's
  namespace (`exportTo: ["."]`), then those exported to it, then the public
  ones; each group by creation time, then name, then namespace
  (`sortConfigByCreationTime`, pilot/pkg/model/config.go); their routes are
  concatenated in that order (pilot/pkg/networking/core/gateway.go
  `buildGatewayHTTPRouteConfig`) and `SortVHostRoutes`
  (pilot/pkg/networking/core/route/route.go) moves catch-all routes (prefix
  `/`, no header, query or metadata match) to the end. Creation times are
  the `created` argument (Flux's apply order, which llmgen cannot fix);
- Istio's VirtualService matching (istio.io HTTPRoute / HTTPMatchRequest):
  routes in order, the first whose any `match` entry fits wins; inside an
  entry `uri` (exact, prefix), `method` (exact) and every `headers` entry
  (exact, prefix, regex as a full RE2 match) must all fit, and no
  `withoutHeaders` entry may: `regex: "*"` (or an empty match) means "the
  header is present", anything else is matched with a missing header
  treated as empty (`TranslateRouteMatch`: InvertMatch plus
  TreatMissingHeaderAsEmpty);
- `rewrite.uri` replacing the matched prefix, `directResponse` with its body and
  `headers.response.set`, and the route's weighted destinations (the stable
  subset takes the request in these tests: weights are checked elsewhere);
- with InferencePools (docs/inference-pools.md): the route's
  `headers.request.set`, then the inference Gateway's HTTPRoutes (Gateway API
  HTTPRoute matching: a rule's `matches` entry fits when its `PathPrefix` and
  every `Exact` header fit; the heaviest backendRef takes the request), whose
  InferencePool backend answers as `InferencePool/<namespace>/<name>`. Which
  replica the picker chooses is the picker's (not modelled).

Upstreams are fake vLLM servers keyed by destination host: they answer in
OpenAI's shapes (chat, completion, embeddings; streaming as server-sent
events) with the served name they were asked for and the host that answered.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    host: str | None = None  # the upstream that answered, for asserts


def documents(files: dict[str, bytes], cluster: str) -> list[dict[str, Any]]:
    prefix = f"generated/clusters/{cluster}/"
    out = []
    for path, content in sorted(files.items()):
        if path.startswith(prefix):
            out += [d for d in yaml.safe_load_all(content.decode()) if isinstance(d, dict)]
    return out


GATEWAY = "llm-gateway"
GATEWAY_NAMESPACE = "istio-ingress"


def _exported_group(vs: dict[str, Any]) -> int:
    """0 private to the gateway's namespace, 1 exported to it, 2 public, -1 not visible."""
    ns = vs["metadata"].get("namespace", "default")
    export = vs["spec"].get("exportTo") or ["*"]  # the mesh default: public
    if "*" in export:
        return 2
    if ("." in export or ns in export) and ns == GATEWAY_NAMESPACE:
        return 0
    return 1 if GATEWAY_NAMESPACE in export else -1


def _bound(vs: dict[str, Any]) -> bool:
    ns = vs["metadata"].get("namespace", "default")
    names = {g if "/" in g else f"{ns}/{g}" for g in vs["spec"].get("gateways", [])}
    return f"{GATEWAY_NAMESPACE}/{GATEWAY}" in names and bool(vs["spec"].get("hosts"))


def merge_routes(
    services: list[dict[str, Any]], created: dict[str, int] | None = None
) -> list[dict[str, Any]]:
    """The gateway's route list for one host, as istiod builds it (module docstring).

    `created` maps a VirtualService's name to its creation order; unnamed ones
    count as created together (Istio then orders by name, then namespace).
    """
    created = created or {}
    services = [d for d in services if d.get("kind") == "VirtualService"]
    visible = [vs for vs in services if _bound(vs) and _exported_group(vs) >= 0]
    visible.sort(
        key=lambda vs: (
            _exported_group(vs),
            created.get(vs["metadata"]["name"], 0),
            vs["metadata"]["name"],
            vs["metadata"].get("namespace", "default"),
        )
    )
    routes = [r for vs in visible for r in vs["spec"].get("http", [])]
    return [r for r in routes if not _catch_all(r)] + [r for r in routes if _catch_all(r)]


def _catch_all(route: dict[str, Any]) -> bool:
    """`IsCatchAllRoute` on the route Istio builds from each match entry (one
    Envoy route per entry; a route without match is prefix `/`)."""
    for m in route.get("match") or [{}]:
        uri = m.get("uri") or {"prefix": "/"}
        if uri.get("prefix") != "/" and uri.get("regex") != ".*":
            return False
        if m.get("headers") or m.get("withoutHeaders") or m.get("method"):
            return False
        if m.get("queryParams") or m.get("authority") or m.get("scheme"):
            return False
    return True


class Gateway:
    """The routing half of one cluster's gateway, from its rendered documents."""

    def __init__(self, docs: list[dict[str, Any]], created: dict[str, int] | None = None) -> None:
        self.services = [d for d in docs if d["kind"] == "VirtualService"]
        self.routes = merge_routes(self.services, created)
        self.httproutes = [d for d in docs if d["kind"] == "HTTPRoute"]
        self.pools = {
            (d["metadata"]["namespace"], d["metadata"]["name"])
            for d in docs
            if d["kind"] == "InferencePool"
        }
        self.router = self._body_router(docs)
        self.base_models: set[str] = set()
        self.adapters: dict[str, str] = {}
        for d in docs:
            labels = d.get("metadata", {}).get("labels", {})
            if (
                d["kind"] == "ConfigMap"
                and labels.get("inference-gateway.k8s.io/managed") == "true"
            ):
                base = d["data"]["baseModel"].strip()
                self.base_models.add(base)
                for adapter in yaml.safe_load(d["data"].get("adapters", "[]")) or []:
                    self.adapters[adapter.strip()] = base
        self.hosts = {
            f"{d['metadata']['name']}.{d['metadata']['namespace']}.svc.cluster.local"
            for d in docs
            if d["kind"] == "Service"
        }

    @staticmethod
    def _body_router(docs: list[dict[str, Any]]) -> bool:
        """True when an EnvoyFilter wires the router into the ingress gateway as BBR expects."""
        services = {
            f"outbound|{p['port']}||{d['metadata']['name']}.{d['metadata']['namespace']}"
            ".svc.cluster.local"
            for d in docs
            if d["kind"] == "Service"
            for p in d["spec"]["ports"]
        }
        for d in docs:
            if d["kind"] != "EnvoyFilter":
                continue
            if d["spec"].get("workloadSelector", {}).get("labels") != {"istio": "ingressgateway"}:
                continue
            for patch in d["spec"]["configPatches"]:
                value = patch["patch"]["value"]
                if value.get("name") != "envoy.filters.http.ext_proc":
                    continue
                cfg = value["typed_config"]
                mode = cfg["processing_mode"]
                cluster = cfg["grpc_service"]["envoy_grpc"]["cluster_name"]
                assert mode["response_body_mode"] == "NONE", "the router would buffer streams"
                assert mode["request_body_mode"] in ("FULL_DUPLEX_STREAMED", "BUFFERED")
                assert cluster in services, f"ext_proc points at {cluster}, which no Service is"
                return True
        return False

    def base_model(self, name: str) -> str:
        name = name.strip()
        if name in self.adapters:
            return self.adapters[name]
        return name if name in self.base_models else ""

    def route(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """The route Envoy would pick, and the request headers after the router ran."""
        headers = {k.lower(): v for k, v in headers.items()}
        chosen = self._match(method, path, headers)
        if self.router and body:
            try:
                model = json.loads(body).get("model", "")
            except (ValueError, AttributeError):
                model = ""  # BBR: an unparsable body is an error; Envoy then fails the request
            if model:
                headers["x-gateway-model-name"] = model
                headers["x-gateway-base-model-name"] = self.base_model(model)
                chosen = self._match(method, path, headers)  # ClearRouteCache
        return chosen, headers

    def _match(self, method: str, path: str, headers: dict[str, str]) -> dict[str, Any] | None:
        for route in self.routes:
            for m in route.get("match", [{}]):
                if _fits(m, method, path, headers):
                    return route
        return None

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        route, headers = self.route(method, path, headers, body)
        if route is None:
            return Reply(404, {}, b"")  # Envoy: no route, empty body
        extra = route.get("headers", {}).get("response", {}).get("set", {})
        if "directResponse" in route:
            direct = route["directResponse"]
            return Reply(
                direct["status"], dict(extra), direct.get("body", {}).get("string", "").encode()
            )
        if "rewrite" in route:
            prefix = next(
                m["uri"]["prefix"] for m in route["match"] if "prefix" in m.get("uri", {})
            )
            path = route["rewrite"]["uri"] + path[len(prefix) :]
        dest = max(route["route"], key=lambda d: d.get("weight", 100))["destination"]
        host = dest["host"]
        assert host in self.hosts or host.endswith(".svc.cluster.local"), host
        headers = {**headers, **route.get("headers", {}).get("request", {}).get("set", {})}
        if host.endswith("-pool.istio-ingress.svc.cluster.local") and host in self.hosts:
            pool = self.pool_for(path, headers)
            if pool is None:
                return Reply(404, {}, b"")  # the inference gateway: no route
            return fake_vllm(pool, path, body)
        return fake_vllm(host, path, body)

    def pool_for(self, path: str, headers: dict[str, str]) -> str | None:
        """The InferencePool an HTTPRoute of the inference gateway sends the request to."""
        for r in self.httproutes:
            ns = r["metadata"]["namespace"]
            for rule in r["spec"]["rules"]:
                for m in rule.get("matches", [{}]):
                    prefix = m.get("path", {}).get("value", "/")
                    if not path.startswith(prefix):
                        continue
                    if not all(
                        h.get("type", "Exact") == "Exact" and headers.get(h["name"]) == h["value"]
                        for h in m.get("headers", [])
                    ):
                        continue
                    ref = max(rule["backendRefs"], key=lambda b: b.get("weight", 1))
                    assert ref["kind"] == "InferencePool"
                    assert (ns, ref["name"]) in self.pools, ref
                    return f"InferencePool/{ns}/{ref['name']}"
        return None


def _fits(m: dict[str, Any], method: str, path: str, headers: dict[str, str]) -> bool:
    uri = m.get("uri")
    if uri and not (
        ("exact" in uri and path == uri["exact"])
        or ("prefix" in uri and path.startswith(uri["prefix"]))
    ):
        return False
    if "method" in m and method != m["method"]["exact"]:
        return False
    for name, want in m.get("headers", {}).items():
        got = headers.get(name.lower())
        if got is None or not _string_fits(want, got):
            return False
    for name, want in m.get("withoutHeaders", {}).items():
        got = headers.get(name.lower())
        if not want or want.get("regex") == "*":  # present_match, inverted
            if got is not None:
                return False
        elif _string_fits(want, "" if got is None else got):
            return False
    return True


def _string_fits(want: dict[str, str], got: str) -> bool:
    if "exact" in want and got != want["exact"]:
        return False
    if "prefix" in want and not got.startswith(want["prefix"]):
        return False
    return not ("regex" in want and not re.fullmatch(want["regex"], got))


def fake_vllm(host: str, path: str, body: bytes) -> Reply:
    """A vLLM OpenAI server reduced to its response shapes."""
    req = json.loads(body or b"{}")
    model = req.get("model", "")
    meta = {"x-upstream": host}
    as_json = {**meta, "content-type": "application/json"}
    if path == "/v1/embeddings":
        data = [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}]
        out = {"object": "list", "data": data, "model": model, "usage": _usage()}
        return Reply(200, as_json, json.dumps(out).encode(), host)
    if path in ("/v1/chat/completions", "/v1/completions"):
        chat = path.endswith("chat/completions")
        if req.get("stream"):
            return Reply(
                200, {**meta, "content-type": "text/event-stream"}, _sse(model, chat), host
            )
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop", "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": f"served by {host}"}
        else:
            choice["text"] = f"served by {host}"
        out = {
            "id": "cmpl-1",
            "object": "chat.completion" if chat else "text_completion",
            "created": 0,
            "model": model,
            "choices": [choice],
            "usage": _usage(),
        }
        return Reply(200, as_json, json.dumps(out).encode(), host)
    return Reply(404, meta, b'{"error":{"message":"not found","type":"NotFound"}}', host)


def _usage() -> dict[str, int]:
    return {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def _sse(model: str, chat: bool) -> bytes:
    chunks = []
    for word in ("served", "by", "stream"):
        if chat:
            choice = {"index": 0, "delta": {"content": word + " "}, "finish_reason": None}
            obj = "chat.completion.chunk"
        else:
            choice = {"index": 0, "text": word + " ", "finish_reason": None}
            obj = "text_completion"
        chunk = {"id": "c1", "object": obj, "created": 0, "model": model, "choices": [choice]}
        chunks.append(f"data: {json.dumps(chunk)}\n\n")
    chunks.append("data: [DONE]\n\n")
    return "".join(chunks).encode()


@contextmanager
def serve(gateway: Gateway) -> Iterator[str]:
    """Serve `gateway` on 127.0.0.1 for the duration; yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            reply = gateway.handle(self.command, self.path, dict(self.headers.items()), body)
            self.send_response(reply.status)
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_POST = do_OPTIONS = _any  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
