"""The mesh concerns: rendered Istio routing, security and multi-cluster documents.

Documents are rendered through the real renderer from the shipped catalog
(prod: two AWS and two GCP clusters), with every placement of the
environment, as the plan will hand them over. Decisions are asserted on the
parsed documents; the whole tree then goes through strict schema validation
and `kubectl kustomize` (llmgen verify).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gatewaysim import merge_routes
from llmgen.plan import routing
from llmgen.plan.build import ClusterPlan, Placement, Plan
from llmgen.render import engine as render
from llmgen.render.concerns import gateway, istio, mesh
from llmgen.render.pipeline import build_plan, checked_catalog
from llmgen.verify.runner import catalog_facts, verify_tree

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def plan(repo_root: Path) -> Plan:
    catalog, _ = checked_catalog(repo_root)
    return build_plan(catalog)


@pytest.fixture(scope="module")
def renderer(repo_root: Path) -> render.Renderer:
    return render.Renderer(repo_root / "templates")


def env_placements(plan: Plan, cp: ClusterPlan) -> tuple[Placement, ...]:
    assert cp.environment is not None
    return plan.environments[cp.environment.name].placements


def rendered(
    renderer: render.Renderer,
    cp: ClusterPlan,
    placements: tuple[Placement, ...],
) -> list[tuple[str, Doc]]:
    out = []
    for o in mesh.outputs_with(cp, placements):
        _, doc = renderer.render_document(o, o.path)
        out.append((o.path, doc))
    return out


def docs_of(plan: Plan, renderer: render.Renderer, cluster: str) -> list[Doc]:
    cp = plan.clusters[cluster]
    return [d for _, d in rendered(renderer, cp, env_placements(plan, cp))]


def find(docs: list[Doc], kind: str, name: str | None = None, ns: str | None = None) -> list[Doc]:
    return [
        d
        for d in docs
        if d["kind"] == kind
        and (name is None or d["metadata"]["name"] == name)
        and (ns is None or d["metadata"].get("namespace") == ns)
    ]


def one(docs: list[Doc], kind: str, name: str, ns: str | None = None) -> Doc:
    found = find(docs, kind, name, ns)
    assert len(found) == 1, (kind, name, ns, len(found))
    return found[0]


def clusters_in(plan: Plan, env: str) -> list[str]:
    return [n for n, cp in plan.clusters.items() if cp.environment and cp.environment.name == env]


def all_clusters(plan: Plan) -> Iterator[str]:
    yield from (n for n, cp in plan.clusters.items() if cp.environment is not None)


# ------------------------------------------------------------------ routing


def merged(docs: list[Doc]) -> Doc:
    """The gateway's routes as istiod merges its VirtualServices (tests/gatewaysim.py)."""
    return {"spec": {"http": merge_routes(docs)}}


def forwarding(vs: dict[str, Any]) -> list[dict[str, Any]]:
    """The routes that forward to a model (not the gateway's own direct answers)."""
    routes = [r for r in vs["spec"]["http"] if "directResponse" not in r]
    assert routes and all("route" in r for r in routes)
    return routes


def test_route_weights_sum_to_100_and_canary_gets_its_weight(
    plan: Plan, renderer: render.Renderer
) -> None:
    seen_canary = False
    for cluster in all_clusters(plan):
        docs = docs_of(plan, renderer, cluster)
        vs = merged(docs)
        env = plan.clusters[cluster].environment
        if env is not None and env.uses_inference_pools:
            # The edge sends each model to its pool entry; the HTTPRoute splits
            # between the pools (tests/test_inference_pools.py).
            for route in forwarding(vs):
                assert [d["weight"] for d in route["route"]] == [100]
            for r in find(docs, "HTTPRoute"):
                weights = {
                    b["name"].removeprefix(r["metadata"]["name"]) or "stable": b["weight"]
                    for b in r["spec"]["rules"][0]["backendRefs"]
                }
                assert sum(weights.values()) == 100
                if "-canary" in weights:
                    seen_canary = True
                    assert weights == {"stable": 90, "-canary": 10}
            continue
        for route in forwarding(vs):
            weights = {d["destination"]["subset"]: d["weight"] for d in route["route"]}
            assert sum(weights.values()) == 100, (cluster, route["name"])
            if "canary" in weights:
                seen_canary = True
                assert route["name"].startswith("mixtral-8x7b-instruct")
                assert weights == {"stable": 90, "canary": 10}
    assert seen_canary  # staging's mixtral canary (weight 10) is routed


def test_prefix_routes_rewrite_to_v1_and_come_before_header_routes(
    plan: Plan, renderer: render.Renderer
) -> None:
    # Each model's own VirtualService: its prefix, its header, then its body
    # route (Istio keeps a VirtualService's order when it merges them).
    docs = docs_of(plan, renderer, "prod-aws-use1")
    http = one(docs, "VirtualService", "llama-3-1-8b-instruct")["spec"]["http"]
    assert [r["name"] for r in http] == [
        "llama-3-1-8b-instruct-prefix",
        "llama-3-1-8b-instruct-header",
        "llama-3-1-8b-instruct-body",
    ]
    llama, header, body = http
    assert llama["match"] == [{"uri": {"prefix": "/v1/llama-3.1-8b/"}}]
    assert llama["rewrite"] == {"uri": "/v1/"}
    assert header["match"] == [
        {
            "uri": {"prefix": "/v1/"},
            "headers": {"x-llmgen-model": {"exact": "llama-3.1-8b-instruct"}},
        }
    ]
    assert "rewrite" not in header
    # an explicit header wins over the body in any merge order
    assert body["match"][0]["withoutHeaders"] == {"x-llmgen-model": {"regex": ".+"}}


def test_streaming_routes_never_retry_a_started_generation(
    plan: Plan, renderer: render.Renderer
) -> None:
    vs = merged(docs_of(plan, renderer, "prod-gcp-usc1"))
    for route in forwarding(vs):
        retry_on = set(route["retries"]["retryOn"].split(","))
        assert retry_on <= {"connect-failure", "refused-stream", "reset-before-request"}
        assert not retry_on & {"5xx", "gateway-error", "reset", "retriable-status-codes"}
        assert int(route["timeout"].rstrip("s")) >= 60


def test_cors_equals_the_catalog(plan: Plan, renderer: render.Renderer) -> None:
    for cluster in all_clusters(plan):
        env = plan.clusters[cluster].environment
        assert env is not None
        vs = merged(docs_of(plan, renderer, cluster))
        for route in forwarding(vs):
            origins = [o["exact"] for o in route["corsPolicy"]["allowOrigins"]]
            assert origins == list(env.cors_allow_origins)
            assert route["corsPolicy"]["allowCredentials"] is False


def test_a_gateway_routes_models_placed_only_in_other_clusters(
    plan: Plan, renderer: render.Renderer
) -> None:
    # mixtral runs in prod-aws-use1 and prod-gcp-usc1 only; usw2's gateway
    # still routes it, failing over within the continent, same cloud first.
    assert not any(
        p.name == "mixtral-8x7b-instruct" for p in plan.clusters["prod-aws-usw2"].placements
    )
    docs = docs_of(plan, renderer, "prod-aws-usw2")
    names = [r["name"] for r in merged(docs)["spec"]["http"]]
    assert "mixtral-8x7b-instruct-prefix" in names
    dr = one(docs, "DestinationRule", "mixtral-8x7b-instruct", istio.INGRESS_NAMESPACE)
    locality = dr["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"]
    assert locality["failover"] == [{"from": "us-west-2", "to": "us-east-1"}]
    assert dr["spec"]["exportTo"] == ["."]


def test_failover_excludes_a_cluster_serving_another_revision(
    plan: Plan, renderer: render.Renderer
) -> None:
    cp = plan.clusters["prod-aws-use1"]
    placements = env_placements(plan, cp)

    def failover(ps: tuple[Placement, ...]) -> list[dict[str, str]]:
        docs = [d for _, d in rendered(renderer, cp, ps)]
        dr = one(docs, "DestinationRule", "llama-3-1-8b-instruct")
        return dr["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"].get("failover", [])

    assert failover(placements) == [{"from": "us-east-1", "to": "us-west-2"}]
    # us-west-2 lags on an older revision: traffic must fail over elsewhere.
    lagging = tuple(
        replace(p, model=replace(p.model, revision="0" * 40))
        if p.cluster.name == "prod-aws-usw2" and p.model.name == "llama-3-1-8b-instruct"
        else p
        for p in placements
    )
    assert failover(lagging) == [{"from": "us-east-1", "to": "us-central1"}]


def test_subsets_select_tracks_and_canary_exists_only_with_a_canary(
    plan: Plan, renderer: render.Renderer
) -> None:
    # staging routes through InferencePools: one pool per track, selecting it.
    docs = docs_of(plan, renderer, "staging-aws-use1")
    pools = {
        p["metadata"]["name"]: p["spec"]["selector"]["matchLabels"]["llmgen.io/track"]
        for p in find(docs, "InferencePool")
    }
    assert pools["mixtral-8x7b-instruct"] == "stable"
    assert pools["mixtral-8x7b-instruct-canary"] == "canary"
    assert pools["llama-3-1-8b-instruct"] == "stable"
    assert "llama-3-1-8b-instruct-canary" not in pools
    llama = one(docs, "DestinationRule", "llama-3-1-8b-instruct")
    assert "subsets" not in llama["spec"]
    outlier = llama["spec"]["trafficPolicy"]["outlierDetection"]
    assert outlier["maxEjectionPercent"] == 100  # lets locality failover take over


# ----------------------------------------------------------------- security


def test_no_unauthenticated_model_route_in_an_oidc_environment(
    plan: Plan, renderer: render.Renderer
) -> None:
    for cluster in all_clusters(plan):
        cp = plan.clusters[cluster]
        env = cp.environment
        assert env is not None
        docs = docs_of(plan, renderer, cluster)
        gateway_aps = find(docs, "AuthorizationPolicy", ns=istio.INGRESS_NAMESPACE)
        if env.uses_inference_pools:
            # The inference gateway admits the edge's identity only (its
            # requests carry the token the edge verified; models check it again).
            inner = one(docs, "AuthorizationPolicy", "llm-inference", istio.INGRESS_NAMESPACE)
            assert inner["spec"]["rules"] == [
                {
                    "from": [
                        {
                            "source": {
                                "principals": [
                                    istio.principal(
                                        istio.trust_domain(cp),
                                        istio.INGRESS_NAMESPACE,
                                        istio.INGRESS_RELEASE,
                                    )
                                ]
                            }
                        }
                    ]
                }
            ]
            gateway_aps = [a for a in gateway_aps if a is not inner]
        if env.oidc is None:
            assert gateway_aps == []
            continue
        ra = one(docs, "RequestAuthentication", "gateway-jwt", istio.INGRESS_NAMESPACE)
        assert ra["spec"]["jwtRules"][0]["issuer"] == env.oidc.issuer
        assert ra["spec"]["jwtRules"][0]["audiences"] == list(env.oidc.audiences)
        # A DENY without any path or host condition covers every route,
        # present and future; only CORS preflights pass without a token.
        (deny,) = gateway_aps
        assert deny["spec"]["action"] == "DENY"
        assert deny["spec"]["selector"]["matchLabels"] == {"istio": "ingressgateway"}
        (rule,) = deny["spec"]["rules"]
        assert rule["from"] == [{"source": {"notRequestPrincipals": ["*"]}}]
        assert rule["to"] == [{"operation": {"notMethods": ["OPTIONS"]}}]
        # Each model: only the ingress gateway identity with a token reaches
        # the API; the one tokenless rule is GET /health.
        for p in cp.placements:
            ap = one(docs, "AuthorizationPolicy", p.name, p.namespace)
            assert ap["spec"]["action"] == "ALLOW"
            for r in ap["spec"]["rules"]:
                sources = [f["source"] for f in r.get("from", [])]
                if sources and all(s.get("requestPrincipals") == ["*"] for s in sources):
                    continue
                assert r == {"to": [{"operation": {"methods": ["GET"], "paths": ["/health"]}}]}
            one(docs, "RequestAuthentication", p.name, p.namespace)
            if env.uses_inference_pools:
                pool_ap = one(docs, "AuthorizationPolicy", f"{p.name}-inference-pool", p.namespace)
                (api,) = pool_ap["spec"]["rules"]
                assert api["from"][0]["source"]["requestPrincipals"] == ["*"]


def test_mtls_is_strict_mesh_wide(plan: Plan, renderer: render.Renderer) -> None:
    for cluster in all_clusters(plan):
        pa = one(docs_of(plan, renderer, cluster), "PeerAuthentication", "default", "istio-system")
        assert pa["spec"] == {"mtls": {"mode": "STRICT"}}


def test_default_deny_in_every_model_namespace(plan: Plan, renderer: render.Renderer) -> None:
    checked = 0
    for cluster in all_clusters(plan):
        cp = plan.clusters[cluster]
        docs = docs_of(plan, renderer, cluster)
        for p in cp.placements:
            checked += 1
            deny = one(docs, "NetworkPolicy", "default-deny", p.namespace)
            assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
            egress = one(docs, "NetworkPolicy", "allow-egress", p.namespace)["spec"]["egress"]
            ports = {(port["protocol"], port["port"]) for e in egress for port in e["ports"]}
            assert {("UDP", 53), ("TCP", 53), ("TCP", 15012), ("TCP", 443)} <= ports
            serving = one(docs, "NetworkPolicy", "allow-serving", p.namespace)["spec"]["ingress"]
            sources = [f["namespaceSelector"]["matchLabels"] for r in serving for f in r["from"]]
            assert {"kubernetes.io/metadata.name": "istio-ingress"} in sources
            assert {"kubernetes.io/metadata.name": "monitoring"} in sources
    assert checked == sum(len(e.placements) for e in plan.environments.values())


def test_waf_only_where_enabled_and_pinned_by_digest(plan: Plan, renderer: render.Renderer) -> None:
    for cluster in all_clusters(plan):
        env = plan.clusters[cluster].environment
        assert env is not None
        wasm = find(docs_of(plan, renderer, cluster), "WasmPlugin")
        assert len(wasm) == (1 if env.waf_enabled else 0)
        for w in wasm:
            assert "@sha256:" in w["spec"]["url"]
            directives = w["spec"]["pluginConfig"]["directives_map"]["default"]
            assert "Include @owasp_crs/*.conf" in directives
            # streamed answers are never buffered for inspection
            assert directives.index("SecResponseBodyAccess Off") > directives.index(
                "Include @recommended-conf"
            )


# ------------------------------------------------------- gateways and mesh


def _ingress_annotations(docs: list[Doc]) -> dict[str, str]:
    hr = one(docs, "HelmRelease", istio.INGRESS_RELEASE)
    annotations: dict[str, str] = hr["spec"]["values"]["service"]["annotations"]
    return annotations


def test_prod_two_clouds_golden(plan: Plan, renderer: render.Renderer) -> None:
    """The shipped prod: 2 AWS + 2 GCP clusters, latency routing, one mesh."""
    prod = clusters_in(plan, "prod")
    assert sorted(prod) == ["prod-aws-use1", "prod-aws-usw2", "prod-gcp-euw4", "prod-gcp-usc1"]
    dns = "external-dns.alpha.kubernetes.io/"
    for cluster in prod:
        cp = plan.clusters[cluster]
        docs = docs_of(plan, renderer, cluster)
        ann = _ingress_annotations(docs)
        # load-balancer annotations come from the cloud provider
        for key, value in cp.provider.load_balancer_annotations(cp.cluster).items():
            assert ann[key] == value
        # Route 53 is prod's one DNS authority (spec.dns): every cluster of both
        # clouds joins the latency set, GCP ones at the nearest AWS region.
        assert ann[dns + "hostname"] == "llm.example.com"
        assert ann[dns + "set-identifier"] == cluster
        nearest = {"prod-gcp-usc1": "us-east-2", "prod-gcp-euw4": "eu-central-1"}
        assert ann[dns + "aws-region"] == nearest.get(cluster, cp.cluster.region)
        hosts = ["llm.example.com"]
        gw = one(docs, "Gateway", istio.GATEWAY_NAME, istio.INGRESS_NAMESPACE)
        assert [s["hosts"] for s in gw["spec"]["servers"]] == [hosts, hosts]
        assert gw["spec"]["servers"][1]["tls"] == {"httpsRedirect": True}
        cert = one(docs, "Certificate", istio.GATEWAY_NAME, istio.INGRESS_NAMESPACE)
        # plus its regional name: a name set of its own (Let's Encrypt's limit)
        assert cert["spec"]["dnsNames"] == [*hosts, f"{cluster}.llm.example.com"]
        assert cert["spec"]["issuerRef"]["name"] == "letsencrypt-prod"
        assert cert["spec"]["secretName"] == gw["spec"]["servers"][0]["tls"]["credentialName"]
        # east-west gateway on this cluster's network
        ew = one(docs, "HelmRelease", istio.EASTWEST_RELEASE)["spec"]["values"]
        assert ew["networkGateway"] == cp.cluster.network
        assert ew["labels"]["topology.istio.io/network"] == cp.cluster.network
        # remote secrets for exactly the other three clusters, no value in git
        remotes = {
            d["metadata"]["name"]: d
            for d in find(docs, "ExternalSecret", ns="istio-system")
            if d["metadata"]["name"] != mesh.CACERTS
        }
        peers = sorted(set(prod) - {cluster})
        assert sorted(remotes) == [f"istio-remote-secret-{p}" for p in peers]
        for peer in peers:
            target = remotes[f"istio-remote-secret-{peer}"]["spec"]["target"]["template"]
            assert target["metadata"]["labels"] == {"istio/multiCluster": "true"}
            assert target["metadata"]["annotations"] == {"networking.istio.io/cluster": peer}
            assert list(target["data"]) == [peer]
        one(docs, "ExternalSecret", mesh.CACERTS, "istio-system")


def test_gateway_dns_record_is_shared_with_the_certificate(
    plan: Plan, renderer: render.Renderer
) -> None:
    cp = plan.clusters["dev-aws-use2"]
    mv = istio.view(cp, env_placements(plan, cp))
    assert mv is not None
    # one AWS cluster: a plain record for the domain and its regional name
    assert gateway.gateway_hosts(mv) == ["llm.dev.example.com", "dev-aws-use2.llm.dev.example.com"]
    ann = _ingress_annotations(docs_of(plan, renderer, "dev-aws-use2"))
    assert "external-dns.alpha.kubernetes.io/set-identifier" not in ann


# ---------------------------------------------------------------- TLS issuer


def test_every_certificate_names_a_rendered_dns01_cluster_issuer(
    plan: Plan, renderer: render.Renderer, crd_schemas: Path
) -> None:
    schema = json.loads((crd_schemas / "cert-manager.io" / "clusterissuer_v1.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    seen = set()
    for cluster in all_clusters(plan):
        cp = plan.clusters[cluster]
        assert cp.environment is not None
        docs = docs_of(plan, renderer, cluster)
        cert = one(docs, "Certificate", istio.GATEWAY_NAME, istio.INGRESS_NAMESPACE)
        ref = cert["spec"]["issuerRef"]
        assert ref["kind"] == "ClusterIssuer"
        issuers = find(docs, "ClusterIssuer")
        assert [i["metadata"]["name"] for i in issuers] == [ref["name"]]
        issuer = issuers[0]
        assert "namespace" not in issuer["metadata"]  # cluster-scoped
        assert list(validator.iter_errors(issuer)) == []
        acme = issuer["spec"]["acme"]
        staging = "staging" in ref["name"]
        assert acme["server"] == (
            "https://acme-staging-v02.api.letsencrypt.org/directory"
            if staging
            else "https://acme-v02.api.letsencrypt.org/directory"
        )
        assert acme["email"] == f"platform@{cp.environment.domain}"
        assert acme["privateKeySecretRef"]["name"]
        # DNS-01 only: port 80 redirects to HTTPS, so HTTP-01 can never answer.
        (solver,) = acme["solvers"]
        assert set(solver) == {"dns01", "selector"}
        assert solver["selector"] == {"dnsZones": [cp.environment.domain]}
        dns = cp.environment.dns
        if dns is None and cp.provider.name == "aws":
            assert solver["dns01"] == {"route53": {"region": cp.cluster.region}}
        elif dns is None:
            project = cp.cluster.cloud_settings["projectID"]
            assert solver["dns01"] == {"cloudDNS": {"project": project}}
        else:  # the environment's one authority, from both clouds
            route53 = solver["dns01"]["route53"]
            assert route53["hostedZoneID"] == dns.zone_id
            if cp.provider.name == "gcp":
                assert route53["role"] == (
                    f"arn:aws:iam::{dns.account_id}:role/{cp.name}-cert-manager"
                )
                ref = route53["auth"]["kubernetes"]["serviceAccountRef"]
                assert ref["audiences"] == ["sts.amazonaws.com"]
        seen.add((cp.provider.name, staging))
    assert seen == {("aws", True), ("aws", False), ("gcp", True), ("gcp", False)}


def test_acme_email_comes_from_the_platform_when_set(plan: Plan, renderer: render.Renderer) -> None:
    cp = plan.clusters["prod-gcp-euw4"]
    cp = replace(cp, platform=replace(cp.platform, acme_email="certs@example.org"))
    docs = [d for _, d in rendered(renderer, cp, env_placements(plan, cp))]
    (issuer,) = find(docs, "ClusterIssuer")
    assert issuer["spec"]["acme"]["email"] == "certs@example.org"


def test_whole_tree_validates_strictly_and_builds(
    plan: Plan,
    repo_root: Path,
    crd_schemas: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every rendered document against its strict schema, every folder through kustomize."""
    by_env = {name: e.placements for name, e in plan.environments.items()}
    monkeypatch.setattr(
        mesh,
        "environment_placements",
        lambda cp: by_env[cp.environment.name] if cp.environment else None,
    )
    result = render.render_plan(plan, repo_root / "templates", repo_root)
    for rel, data in result.files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if (repo_root / "overlays").is_dir():
        shutil.copytree(repo_root / "overlays", tmp_path / "overlays")
    report = verify_tree(tmp_path, crd_schemas, clusters=catalog_facts(repo_root))
    assert [str(d) for d in report.diagnostics if d.is_error] == []
    for cluster in all_clusters(plan):
        base = f"generated/clusters/{cluster}/infrastructure"
        for rel in (
            "istio/istio-gateway.yaml",
            "configs/gateway.yaml",
            "configs/routes.yaml",
            "configs/security.yaml",
            "mesh-identity/gateway.yaml",
            "mesh-ca/mesh.yaml",
        ):
            kinds = {d["kind"] for d in yaml.safe_load_all(result.files[f"{base}/{rel}"])}
            assert kinds, rel


def test_circuit_breakers_share_the_capacity_over_the_gateways_pods(
    plan: Plan, renderer: render.Renderer
) -> None:
    """The review's D17: Envoy enforces a DestinationRule's connection pool in
    each gateway pod, so the per-pod figure times the pods is what is admitted.
    At the gateway's HPA floor that sum is the environment's decoding capacity
    (plan/routing.py max_concurrency), not a multiple of it."""
    low, high = gateway.GATEWAY_REPLICAS
    cp = plan.clusters["prod-aws-use1"]
    docs = docs_of(plan, renderer, cp.name)
    for p in env_placements(plan, cp):
        dr = one(docs, "DestinationRule", p.model.name, istio.INGRESS_NAMESPACE)
        pool = dr["spec"]["trafficPolicy"]["connectionPool"]
        capacity = routing.max_concurrency(p.model, env_placements(plan, cp))
        per_pod = pool["http"]["http2MaxRequests"]
        assert pool["tcp"]["maxConnections"] == per_pod
        assert capacity <= per_pod * low < capacity + low
        assert per_pod * high <= capacity * high // low + high


def test_each_clusters_certificate_orders_its_own_name_set(
    plan: Plan, renderer: render.Renderer
) -> None:
    """Let's Encrypt issues at most five certificates per exact set of names a
    week: clusters ordering the same set (only the shared name) exhaust it
    on one bring-up and a rebuild (review D20). Each set is now unique and
    still covers every name the gateway serves."""
    for env in {plan.clusters[c].environment.name for c in all_clusters(plan)}:
        sets = []
        for cluster in all_clusters(plan):
            cp = plan.clusters[cluster]
            if cp.environment.name != env:
                continue
            docs = docs_of(plan, renderer, cluster)
            cert = one(docs, "Certificate", istio.GATEWAY_NAME, istio.INGRESS_NAMESPACE)
            names = cert["spec"]["dnsNames"]
            view = istio.view(cp, env_placements(plan, cp))
            assert view is not None and set(gateway.gateway_hosts(view)) <= set(names)
            sets.append(frozenset(names))
        assert len(set(sets)) == len(sets), env
