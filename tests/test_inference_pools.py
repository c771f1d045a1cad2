"""Inference-aware endpoint picking (issue 18 point 2): InferencePools on Istio 1.28.

The shipped catalog's staging environment sets `routing.endpointPicking:
inferencePool`. These tests read its rendered documents and assert what the
controllers do with them at the pinned versions:

- Istio 1.28.0 `pilot/pkg/config/kube/gateway/inferencepool_collection.go`
  (shadow Service from `selector.matchLabels` and `targetPorts`, ext_proc to
  `endpointPickerRef`), `conversion.go` (an InferencePool backendRef is looked
  up in the route's namespace and refused unless istiod runs with
  ENABLE_GATEWAY_API_INFERENCE_EXTENSION; an `ISTIO_MUTUAL` listener option;
  `<gateway>-<class>` names), `pilot/pkg/features/experimental.go`;
- gateway-api-inference-extension v1.3.0 `pkg/epp/server/options.go` (the
  picker's `--pool-name`, `--pool-namespace`, `--pool-group`, ports) and
  `config/charts/inferencepool` (the EPP objects and plugin config).

Where a test says the wiring check catches a mistake, it breaks one rendered
document and runs verify's real check on the cluster.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from llmgen.catalog import images
from llmgen.plan import routing
from llmgen.plan.build import Plan
from llmgen.render.concerns import inferencegateway, inferencepool, istio
from llmgen.verify.flux_refs import check_flux_refs
from llmgen.verify.kustomize import find_kubectl
from llmgen.verify.manifests import Manifest, split_documents
from llmgen.verify.runner import catalog_facts, verify_tree
from llmgen.verify.stats import Family
from llmgen.verify.wiring import check_wiring

#: gateway-api-inference-extension v1.3.0 config/charts/inferencepool/templates/
#: epp-config.yaml `default-plugins.yaml`, as the chart renders it (no latency predictor).
CHART_DEFAULT_CONFIG = """apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
"""
POOL_CLUSTERS = ["staging-aws-use1", "staging-gcp-usc1"]
OTHER_CLUSTERS = ["prod-aws-use1", "prod-gcp-usc1", "dev-aws-use2"]
#: The lowest Istio release serving InferencePool v1 (1.27.x imports api/v1alpha2).
ISTIO_WITH_V1_POOLS = (1, 28, 0)


def docs(files: dict[str, bytes], cluster: str) -> list[dict[str, Any]]:
    out = []
    prefix = f"generated/clusters/{cluster}/"
    for path, content in sorted(files.items()):
        if path.startswith(prefix):
            out += [d for d in yaml.safe_load_all(content) if isinstance(d, dict)]
    return out


def find(ds: list[dict[str, Any]], kind: str, ns: str | None = None) -> list[dict[str, Any]]:
    return [
        d
        for d in ds
        if d.get("kind") == kind and (ns is None or d.get("metadata", {}).get("namespace") == ns)
    ]


def one(ds: list[dict[str, Any]], kind: str, name: str, ns: str) -> dict[str, Any]:
    (found,) = [d for d in find(ds, kind, ns) if d["metadata"]["name"] == name]
    return found


def manifests(files: dict[str, bytes], cluster: str) -> list[Manifest]:
    prefix = f"generated/clusters/{cluster}/"
    return [
        d
        for path, content in sorted(files.items())
        if path.startswith(prefix)
        for d in split_documents(content.decode(), path)
        if isinstance(d, Manifest)
    ]


@pytest.mark.parametrize("cluster", POOL_CLUSTERS)
def test_a_pool_per_model_and_track_selects_that_tracks_vllm_pods(
    plan: Plan, files: dict[str, bytes], cluster: str
) -> None:
    ds = docs(files, cluster)
    cp = plan.clusters[cluster]
    assert cp.placements
    for p in cp.placements:
        tracks = (routing.STABLE, routing.CANARY) if p.has_canary else (routing.STABLE,)
        for track in tracks:
            name = inferencepool.pool_name(p.name, track)
            pool = one(ds, "InferencePool", name, p.namespace)
            assert pool["apiVersion"] == "inference.networking.k8s.io/v1"
            deployment = name  # the track's Deployment has the pool's name
            dep = one(ds, "Deployment", deployment, p.namespace)
            pod_labels = dep["spec"]["template"]["metadata"]["labels"]
            match = pool["spec"]["selector"]["matchLabels"]
            # Istio's shadow Service selects exactly matchLabels: the track's pods, not the other's.
            assert match == dep["spec"]["selector"]["matchLabels"]
            assert all(pod_labels[k] == v for k, v in match.items())
            assert match[istio.TRACK_LABEL] == track
            vllm = next(
                c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm"
            )
            ports = {port["containerPort"] for port in vllm["ports"]}
            assert [t["number"] for t in pool["spec"]["targetPorts"]] == [istio.VLLM_PORT]
            assert istio.VLLM_PORT in ports
            assert "--port" not in vllm.get("args", []) or (
                vllm["args"][vllm["args"].index("--port") + 1] == str(istio.VLLM_PORT)
            )


@pytest.mark.parametrize("cluster", POOL_CLUSTERS)
def test_the_picker_watches_its_own_pool(plan: Plan, files: dict[str, bytes], cluster: str) -> None:
    """options.go: the picker reads only the pool named by --pool-name in
    --pool-namespace of --pool-group; a wrong name picks among another pool's pods."""
    ds = docs(files, cluster)
    for pool in find(ds, "InferencePool"):
        ns = pool["metadata"]["namespace"]
        ref = pool["spec"]["endpointPickerRef"]
        service = one(ds, "Service", ref["name"], ns)
        assert ref["port"]["number"] in {p["port"] for p in service["spec"]["ports"]}
        assert ref.get("failureMode") == "FailClose"
        pickers = [
            d
            for d in find(ds, "Deployment", ns)
            if all(
                d["spec"]["template"]["metadata"]["labels"].get(k) == v
                for k, v in service["spec"]["selector"].items()
            )
        ]
        assert len(pickers) == 1
        (container,) = pickers[0]["spec"]["template"]["spec"]["containers"]
        args = container["args"]
        assert args[args.index("--pool-name") + 1] == pool["metadata"]["name"]
        assert args[args.index("--pool-namespace") + 1] == ns
        assert "--pool-group" not in args  # default inference.networking.k8s.io: the v1 pool
        assert container["image"] == images.tool_image(
            plan.clusters[cluster].platform, "endpointPicker"
        )
        ports = {p["containerPort"] for p in container["ports"]}
        assert {inferencepool.EXT_PROC_PORT, inferencepool.METRICS_PORT} <= ports
        # The plugin config the chart ships at v1.3.0: queue depth, KV cache, prefix cache.
        config = one(ds, "ConfigMap", ref["name"], ns)["data"][inferencepool.CONFIG_FILE]
        parsed = yaml.safe_load(config)
        model = next(p.model for p in plan.clusters[cluster].placements if p.namespace == ns)
        expected = ["queue-scorer", "kv-cache-utilization-scorer", "prefix-cache-scorer"]
        if model.adapters:
            expected.append("lora-affinity-scorer")
        assert [p["type"] for p in parsed["plugins"]] == expected
        assert [p["pluginRef"] for p in parsed["schedulingProfiles"][0]["plugins"]] == expected
        if not model.adapters:
            assert config == CHART_DEFAULT_CONFIG
        assert f"--config-file=/config/{inferencepool.CONFIG_FILE}" in " ".join(args).replace(
            "--config-file /", "--config-file=/"
        )


@pytest.mark.parametrize("cluster", POOL_CLUSTERS)
def test_routes_hang_off_the_inference_gateway_and_split_like_the_canary(
    plan: Plan, files: dict[str, bytes], cluster: str
) -> None:
    ds = docs(files, cluster)
    gw = one(ds, "Gateway", inferencegateway.GATEWAY, istio.INGRESS_NAMESPACE)
    assert gw["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert gw["spec"]["gatewayClassName"] == "istio"
    (listener,) = gw["spec"]["listeners"]
    selector = listener["allowedRoutes"]["namespaces"]["selector"]["matchLabels"]
    env = plan.clusters[cluster].environment
    assert env is not None
    for p in plan.clusters[cluster].placements:
        route = one(ds, "HTTPRoute", p.name, p.namespace)
        (parent,) = route["spec"]["parentRefs"]
        assert (parent["name"], parent["namespace"], parent["sectionName"]) == (
            inferencegateway.GATEWAY,
            istio.INGRESS_NAMESPACE,
            listener["name"],
        )
        ns_docs = [d for d in find(ds, "Namespace") if d["metadata"]["name"] == p.namespace]
        (namespace,) = ns_docs
        assert all(namespace["metadata"]["labels"].get(k) == v for k, v in selector.items())
        (rule,) = route["spec"]["rules"]
        (match,) = rule["matches"]
        assert match["headers"] == [
            {"type": "Exact", "name": inferencegateway.POOL_HEADER, "value": p.name}
        ]
        backends = {b["name"]: b for b in rule["backendRefs"]}
        assert all(b["kind"] == "InferencePool" for b in backends.values())
        assert all(b["group"] == "inference.networking.k8s.io" for b in backends.values())
        dep = next(d for d in env.models if d.name == p.name)
        if p.has_canary:
            assert dep.canary is not None
            stable, canary = routing.canary_split(dep.canary.weight)
            assert backends[p.name]["weight"] == stable
            assert backends[inferencepool.pool_name(p.name, routing.CANARY)]["weight"] == canary
            assert canary == dep.canary.weight
        else:
            assert list(backends) == [p.name]


@pytest.mark.parametrize("cluster", POOL_CLUSTERS)
def test_the_edge_marks_and_forwards_every_model_and_keeps_auth(
    plan: Plan, files: dict[str, bytes], cluster: str
) -> None:
    """The edge keeps TLS, JWT, WAF, CORS and body routing; it sets the pool header
    the HTTPRoutes match and goes to the model's entry on the inference gateways
    over ISTIO_MUTUAL (their pods carry no tlsMode label, so no auto-mTLS), which
    only the edge's identity may call."""
    ds = docs(files, cluster)
    # one VirtualService per model (its folder) and the gateway's own answers
    services = find(ds, "VirtualService", istio.INGRESS_NAMESPACE)
    env = plan.clusters[cluster].environment
    assert env is not None
    served = {d.name for d in env.models}
    seen = set()
    for route in (r for vs in services for r in vs["spec"]["http"]):
        model = route.get("name", "").rsplit("-", 1)[0]
        if model not in served or "route" not in route:
            continue
        seen.add(model)
        assert route["headers"]["request"]["set"] == {inferencegateway.POOL_HEADER: model}
        (dest,) = route["route"]
        assert dest["destination"]["host"] == inferencegateway.entry_host(model)
        assert dest["destination"]["port"]["number"] == inferencegateway.PORT
        rule = one(ds, "DestinationRule", model, istio.INGRESS_NAMESPACE)
        assert rule["spec"]["host"] == inferencegateway.entry_host(model)
        assert rule["spec"]["trafficPolicy"]["tls"] == {"mode": "ISTIO_MUTUAL"}
        assert "subsets" not in rule["spec"]  # the split is the HTTPRoute's
    assert seen == served
    (listener,) = one(ds, "Gateway", inferencegateway.GATEWAY, istio.INGRESS_NAMESPACE)["spec"][
        "listeners"
    ]
    assert listener["tls"]["options"] == {"gateway.istio.io/tls-terminate-mode": "ISTIO_MUTUAL"}
    assert listener["port"] == inferencegateway.PORT
    policy = one(ds, "AuthorizationPolicy", inferencegateway.GATEWAY, istio.INGRESS_NAMESPACE)
    (rule,) = policy["spec"]["rules"]
    edge = rule["from"][0]["source"]["principals"]
    assert edge == [
        f"staging.mesh.example.com/ns/{istio.INGRESS_NAMESPACE}/sa/{istio.INGRESS_RELEASE}"
    ]
    # The edge's own JWT and WAF objects are still there.
    assert find(ds, "RequestAuthentication", istio.INGRESS_NAMESPACE)
    assert find(ds, "WasmPlugin")
    # Models accept the inference gateway with a token, as they accept the edge.
    for p in plan.clusters[cluster].placements:
        allow = one(ds, "AuthorizationPolicy", f"{p.name}-inference-pool", p.namespace)
        source = allow["spec"]["rules"][0]["from"][0]["source"]
        assert source["principals"] == [
            f"staging.mesh.example.com/ns/{istio.INGRESS_NAMESPACE}/sa/{inferencegateway.DEPLOYMENT}"
        ]
        assert source["requestPrincipals"] == ["*"]


def test_entries_exist_where_the_model_runs_and_fail_over_across_clusters(
    plan: Plan, files: dict[str, bytes]
) -> None:
    """`<model>-pool` selects the inference gateway's pods (the label Istio 1.28.0's
    kube-gateway.yaml puts on them) only where the model is placed: its endpoints
    across the mesh are the clusters that can serve it, and the edge's locality
    failover moves to the next one when outlier detection ejects the local entry."""
    placed: dict[str, set[str]] = {}
    for cluster in POOL_CLUSTERS:
        for p in plan.clusters[cluster].placements:
            placed.setdefault(p.name, set()).add(cluster)
    for cluster in POOL_CLUSTERS:
        ds = docs(files, cluster)
        entries = {
            d["metadata"]["name"]: d
            for d in find(ds, "Service", istio.INGRESS_NAMESPACE)
            if d["metadata"]["name"].endswith("-pool")
        }
        local = {p.name for p in plan.clusters[cluster].placements}
        assert set(entries) == {inferencegateway.entry_name(m) for m in local}
        for entry in entries.values():
            assert entry["spec"]["selector"] == {
                "gateway.networking.k8s.io/gateway-name": inferencegateway.GATEWAY
            }
            assert [p["port"] for p in entry["spec"]["ports"]] == [inferencegateway.PORT]
        for model, where in placed.items():
            rule = one(ds, "DestinationRule", model, istio.INGRESS_NAMESPACE)
            policy = rule["spec"]["trafficPolicy"]
            assert policy["outlierDetection"]["maxEjectionPercent"] == 100
            if len(where) > 1:
                assert policy["loadBalancer"]["localityLbSetting"]["failover"]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.lstrip("v").split("."))


def test_istio_serves_v1_pools_where_pools_are_rendered(
    plan: Plan, files: dict[str, bytes]
) -> None:
    addons = plan.clusters["staging-aws-use1"].platform.addons
    for key in ("istio-base", "istiod", "istio-gateway", "istio-cni"):
        assert _version(addons[key].version) >= ISTIO_WITH_V1_POOLS, key
    for cluster in POOL_CLUSTERS + OTHER_CLUSTERS:
        ds = docs(files, cluster)
        release = one(ds, "HelmRelease", "istiod", "flux-system")
        env = release["spec"]["values"]["pilot"]["env"]
        pooled = cluster in POOL_CLUSTERS
        assert (env.get(inferencegateway.ISTIOD_ENV) == "true") is pooled, cluster
        # istio-ingress is `restricted`: the gateways istiod deploys need a seccomp profile.
        gateways = release["spec"]["values"].get("gateways", {})
        assert (gateways.get("seccompProfile") == {"type": "RuntimeDefault"}) is pooled
        (ingress,) = [
            d for d in find(ds, "Namespace") if d["metadata"]["name"] == istio.INGRESS_NAMESPACE
        ]
        assert ingress["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        assert bool(find(ds, "InferencePool")) is pooled
        crds = find(ds, "Kustomization", "flux-system")
        names = {k["metadata"]["name"] for k in crds}
        assert ("gateway-api-inference-extension" in names) is pooled


@pytest.mark.parametrize("cluster", POOL_CLUSTERS)
def test_models_wait_for_the_pool_crds(files: dict[str, bytes], cluster: str) -> None:
    """The controllers layer health-checks the CRDs the models use (kustomize-controller
    would otherwise dry-run-fail a model layer with `no matches for kind`)."""
    ds = docs(files, cluster)
    layer = one(ds, "Kustomization", "infrastructure-controllers", "flux-system")
    checked = {h["name"] for h in layer["spec"]["healthChecks"]}
    assert {
        "inferencepools.inference.networking.k8s.io",
        "httproutes.gateway.networking.k8s.io",
        "gateways.gateway.networking.k8s.io",
    } <= checked
    for model in find(ds, "Kustomization", "flux-system"):
        if model["metadata"]["name"].startswith("model-"):
            assert "infrastructure-controllers" in {d["name"] for d in model["spec"]["dependsOn"]}


@pytest.mark.parametrize("cluster", POOL_CLUSTERS)
def test_pool_documents_validate_against_the_strict_schemas(
    files: dict[str, bytes], cluster: str, crd_schemas: Path
) -> None:
    ds = docs(files, cluster)
    for kind, group, file in (
        ("InferencePool", "inference.networking.k8s.io", "inferencepool_v1.json"),
        ("HTTPRoute", "gateway.networking.k8s.io", "httproute_v1.json"),
        ("Gateway", "gateway.networking.k8s.io", "gateway_v1.json"),
    ):
        validator = jsonschema.Draft202012Validator(
            json.loads((crd_schemas / group / file).read_text())
        )
        found = [d for d in find(ds, kind) if d["apiVersion"].startswith(group)]
        assert found, kind
        for d in found:
            assert [e.message for e in validator.iter_errors(d)] == [], d["metadata"]["name"]


def test_the_staging_tree_verifies_strictly_and_builds(
    files: dict[str, bytes], repo_root: Path, crd_schemas: Path, tmp_path: Path
) -> None:
    if find_kubectl() is None:
        pytest.skip("kubectl not installed")
    for rel, data in files.items():
        if any(rel.startswith(f"generated/clusters/{c}/") for c in POOL_CLUSTERS):
            path = tmp_path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    if (repo_root / "overlays").is_dir():
        shutil.copytree(repo_root / "overlays", tmp_path / "overlays")
    report = verify_tree(tmp_path, crd_schemas, clusters=catalog_facts(repo_root))
    assert [str(d) for d in report.diagnostics if d.is_error] == []


# ------------------------------------------------------- verify's pool wiring


def _break(ms: list[Manifest], kind: str, name: str, change: Any) -> list[Manifest]:
    out = []
    for m in ms:
        if m.kind == kind and m.name == name:
            data = yaml.safe_load(yaml.safe_dump(m.data))
            change(data)
            m = Manifest(m.file, m.line, data)
        out.append(m)
    return out


def _wiring(ms: list[Manifest]) -> list[str]:
    return [d.message for d in check_wiring(ms, Family())]


CLUSTER = "staging-aws-use1"
MODEL = "llama-3-1-8b-instruct"


def test_wiring_passes_as_rendered(files: dict[str, bytes]) -> None:
    assert _wiring(manifests(files, CLUSTER)) == []


def _set_arg(flag: str, value: str) -> Any:
    def change(d: dict[str, Any]) -> None:
        args = d["spec"]["template"]["spec"]["containers"][0]["args"]
        args[args.index(flag) + 1] = value

    return change


@pytest.mark.parametrize(
    ("kind", "name", "change", "expected"),
    [
        (
            "Deployment",
            f"{MODEL}-epp",
            _set_arg("--pool-name", "other"),
            "picks for another pool",
        ),
        (
            "Deployment",
            f"{MODEL}-epp",
            _set_arg("--pool-namespace", "default"),
            "picks for another pool",
        ),
        (
            "InferencePool",
            MODEL,
            lambda d: d["spec"]["targetPorts"][0].update(number=8080),
            "declares no container port 8080",
        ),
        (
            "InferencePool",
            MODEL,
            lambda d: d["spec"]["selector"]["matchLabels"].update({istio.TRACK_LABEL: "blue"}),
            "selects no pod",
        ),
        (
            "InferencePool",
            MODEL,
            lambda d: d["spec"]["endpointPickerRef"]["port"].update(number=9000),
            "has no port 9000",
        ),
        (
            "HTTPRoute",
            MODEL,
            lambda d: d["spec"]["rules"][0]["backendRefs"][0].update(name="nope"),
            "no InferencePool nope",
        ),
        (
            "HTTPRoute",
            MODEL,
            lambda d: d["spec"]["parentRefs"][0].update(sectionName="web"),
            'has no listener "web"',
        ),
        (
            "HTTPRoute",
            MODEL,
            lambda d: d["spec"]["parentRefs"][0].update(name="missing"),
            "no Gateway missing",
        ),
        (
            "Service",
            f"{MODEL}-pool",
            lambda d: d["spec"]["selector"].update(
                {"gateway.networking.k8s.io/gateway-name": "llm-gateway"}
            ),
            "selects no pod",
        ),
        (
            "Gateway",
            inferencegateway.GATEWAY,
            lambda d: d["spec"]["listeners"][0]["allowedRoutes"]["namespaces"].update(
                {"from": "Same"}
            ),
            "admits routes from namespace",
        ),
    ],
)
def test_wiring_catches_a_broken_pool(
    files: dict[str, bytes], kind: str, name: str, change: Any, expected: str
) -> None:
    found = _wiring(_break(manifests(files, CLUSTER), kind, name, change))
    assert any(expected in message for message in found), found


def test_an_unread_upstream_crd_folder_is_reported(files: dict[str, bytes], tmp_path: Path) -> None:
    """Only the folders read at the pinned tags (verify/charts.py GIT_CRD_SOURCES) pass."""
    ms = _break(
        manifests(files, CLUSTER),
        "GitRepository",
        "gateway-api-inference-extension",
        lambda d: d["spec"]["ref"].update(tag="v1.2.0"),
    )
    # (tmp_path holds no generated/ folder: only the upstream path's message matters here)
    found = [d.message for d in check_flux_refs(tmp_path, ms, {}) if "GIT_CRD" in d.message]
    assert found == [
        '"./config/crd" of https://github.com/kubernetes-sigs/gateway-api-inference-extension '
        "at v1.2.0 is not a folder llmgen has read (verify/charts.py GIT_CRD_SOURCES)"
    ]


def test_without_the_crd_source_models_cannot_apply(files: dict[str, bytes]) -> None:
    ms = [
        m
        for m in manifests(files, CLUSTER)
        if not (m.kind == "Kustomization" and m.name == "gateway-api-inference-extension")
    ]
    found = _wiring(ms)
    assert any(
        "InferencePool (inference.networking.k8s.io/v1): no earlier layer installs "
        "inference.networking.k8s.io" in message
        for message in found
    ), found


# ------------------------------------------------------- picker metrics and alerts


def test_pickers_are_scraped_through_the_merged_metrics_port(files: dict[str, bytes]) -> None:
    """verify's own scrape check (PodMonitor port declared by the selected pods) and
    the picker's annotations, which the injector turns into the merged 15020 scrape."""
    ds = docs(files, CLUSTER)
    monitor = one(ds, "PodMonitor", f"{MODEL}-endpoint-picker", f"llm-{MODEL}")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/stats/prometheus"
    assert {r["replacement"] for r in endpoint["relabelings"]} == {"${1}:15020", "[${1}]:15020"}
    picker = one(ds, "Deployment", f"{MODEL}-epp", f"llm-{MODEL}")
    template = picker["spec"]["template"]
    assert all(
        template["metadata"]["labels"].get(k) == v
        for k, v in monitor["spec"]["selector"]["matchLabels"].items()
    )
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(inferencepool.METRICS_PORT),
        "prometheus.io/path": "/metrics",
    }
    assert "--metrics-endpoint-auth=false" in template["spec"]["containers"][0]["args"]


PROMTOOL = shutil.which("promtool")


def _alert_test(tmp_path: Path, spec: dict[str, Any], tests: list[dict[str, Any]]) -> str:
    rules = {
        "groups": [
            {
                **g,
                "rules": [
                    {**r, "annotations": {"summary": r["annotations"]["summary"]}}
                    for r in g["rules"]
                ],
            }
            for g in spec["groups"]
        ]
    }
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests})
    )
    assert PROMTOOL is not None
    out = subprocess.run(
        [PROMTOOL, "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    return "" if out.returncode == 0 else out.stdout + out.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian prometheus) not installed")
def test_picker_alerts_fire_when_they_should_and_only_then(
    files: dict[str, bytes], tmp_path: Path
) -> None:
    ds = docs(files, CLUSTER)
    ns = f"llm-{MODEL}"
    rule = one(ds, "PrometheusRule", f"{MODEL}-endpoint-picker", ns)
    by_name = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}

    def expect(name: str) -> list[dict[str, Any]]:
        r = by_name[name]
        return [
            {"exp_labels": r["labels"], "exp_annotations": {"summary": r["annotations"]["summary"]}}
        ]

    def available(deployment: str, values: str) -> dict[str, str]:
        return {
            "series": f'kube_deployment_status_replicas_available{{namespace="{ns}",'
            f' deployment="{deployment}"}}',
            "values": values,
        }

    ready = f'inference_pool_ready_pods{{namespace="{ns}", name="{MODEL}", pod="p"}}'
    total = f'inference_objective_request_total{{namespace="{ns}", model_name="m"}}'
    errors = f'inference_objective_request_error_total{{namespace="{ns}", model_name="m"}}'
    tests = [
        {
            # The picker is gone for 10 minutes; the pool's replicas are fine.
            "interval": "1m",
            "input_series": [available(f"{MODEL}-epp", "0x20"), available(MODEL, "2x20")],
            "alert_rule_test": [
                {
                    "eval_time": "10m",
                    "alertname": "LlmgenEndpointPickerDown",
                    "exp_alerts": expect("LlmgenEndpointPickerDown"),
                },
                {"eval_time": "3m", "alertname": "LlmgenEndpointPickerDown", "exp_alerts": []},
            ],
        },
        {
            # The picker runs, the Deployment has 2 replicas, the picker counts 0.
            "interval": "1m",
            "input_series": [
                available(f"{MODEL}-epp", "1x20"),
                available(MODEL, "2x20"),
                {"series": ready, "values": "0x20"},
            ],
            "alert_rule_test": [
                {
                    "eval_time": "10m",
                    "alertname": "LlmgenInferencePoolEmpty",
                    "exp_alerts": expect("LlmgenInferencePoolEmpty"),
                },
                {"eval_time": "10m", "alertname": "LlmgenEndpointPickerDown", "exp_alerts": []},
            ],
        },
        {
            # Scaled to zero: an empty pool is expected, no alert.
            "interval": "1m",
            "input_series": [
                available(f"{MODEL}-epp", "1x20"),
                available(MODEL, "0x20"),
                {"series": ready, "values": "0x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "LlmgenInferencePoolEmpty", "exp_alerts": []}
            ],
        },
        {
            # 10% of the picker's requests fail: over 5%.
            "interval": "1m",
            "input_series": [
                {"series": total, "values": "0+100x30"},
                {"series": errors, "values": "0+10x30"},
            ],
            "alert_rule_test": [
                {
                    "eval_time": "20m",
                    "alertname": "LlmgenEndpointPickerErrors",
                    "exp_alerts": expect("LlmgenEndpointPickerErrors"),
                }
            ],
        },
        {
            # 1% fail: under the threshold.
            "interval": "1m",
            "input_series": [
                {"series": total, "values": "0+100x30"},
                {"series": errors, "values": "0+1x30"},
            ],
            "alert_rule_test": [
                {"eval_time": "20m", "alertname": "LlmgenEndpointPickerErrors", "exp_alerts": []}
            ],
        },
    ]
    assert _alert_test(tmp_path, rule["spec"], tests) == ""


def test_picker_alerts_have_runbooks(files: dict[str, bytes], repo_root: Path) -> None:
    text = (repo_root / "docs" / "runbooks.md").read_text()
    names = {
        r["alert"]
        for d in find(docs(files, CLUSTER), "PrometheusRule")
        if d["metadata"]["name"].endswith("-endpoint-picker")
        for g in d["spec"]["groups"]
        for r in g["rules"]
    }
    assert names == {
        "LlmgenEndpointPickerDown",
        "LlmgenInferencePoolEmpty",
        "LlmgenEndpointPickerErrors",
    }
    for name in names:
        assert f"## {name}\n" in text


def test_a_model_with_adapters_prefers_replicas_with_the_adapter_loaded(
    plan: Plan, files: dict[str, bytes]
) -> None:
    """lora_affinity.go (v1.3.0) scores 1.0 a pod whose `vllm:lora_requests_info`
    lists the requested adapter as running; the picker only has it if configured."""
    with_adapters = [
        p for c in POOL_CLUSTERS for p in plan.clusters[c].placements if p.model.adapters
    ]
    assert with_adapters  # the shipped llama-3-1-8b-instruct has two
    for p in with_adapters:
        ds = docs(files, p.cluster.name)
        config = yaml.safe_load(
            one(ds, "ConfigMap", f"{p.name}-epp", p.namespace)["data"][inferencepool.CONFIG_FILE]
        )
        profile = {x["pluginRef"]: x["weight"] for x in config["schedulingProfiles"][0]["plugins"]}
        assert profile["lora-affinity-scorer"] == 2
        # vLLM reports the adapters the picker reads (--enable-lora with --max-loras).
        vllm = next(
            c
            for c in one(ds, "Deployment", p.name, p.namespace)["spec"]["template"]["spec"][
                "containers"
            ]
            if c["name"] == "vllm"
        )
        assert "--enable-lora" in " ".join(vllm.get("args", []) + vllm.get("command", []))


@pytest.mark.parametrize("cluster", POOL_CLUSTERS)
def test_the_inference_gateway_runs_like_the_edge(files: dict[str, bytes], cluster: str) -> None:
    """Without overlays Istio 1.28.0 deploys one gateway pod, no HPA and no PDB
    (deploymentcontroller.go: `horizontalPodAutoscaler` and `podDisruptionBudget`
    are required overlays). The parameters ConfigMap gives it the edge's bounds."""
    ds = docs(files, cluster)
    gw = one(ds, "Gateway", inferencegateway.GATEWAY, istio.INGRESS_NAMESPACE)
    ref = gw["spec"]["infrastructure"]["parametersRef"]
    assert (ref["group"], ref["kind"]) == ("", "ConfigMap")
    options = one(ds, "ConfigMap", ref["name"], istio.INGRESS_NAMESPACE)["data"]
    assert set(options) == {"deployment", "horizontalPodAutoscaler", "podDisruptionBudget"}
    hpa = yaml.safe_load(options["horizontalPodAutoscaler"])["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    assert yaml.safe_load(options["podDisruptionBudget"]) == {"spec": {"minAvailable": 1}}
    spread = yaml.safe_load(options["deployment"])["spec"]["template"]["spec"][
        "topologySpreadConstraints"
    ]
    assert spread[0]["labelSelector"]["matchLabels"] == {
        "gateway.networking.k8s.io/gateway-name": inferencegateway.GATEWAY
    }


@pytest.mark.parametrize(
    ("kind", "name", "change", "expected"),
    [
        (
            "Gateway",
            inferencegateway.GATEWAY,
            lambda d: d["spec"]["infrastructure"]["parametersRef"].update(name="nope"),
            "no ConfigMap nope",
        ),
        (
            "ConfigMap",
            inferencegateway.OPTIONS,
            lambda d: d["data"].update(hpa="{}"),
            "has keys Istio does not support (hpa)",
        ),
    ],
)
def test_wiring_catches_broken_gateway_parameters(
    files: dict[str, bytes], kind: str, name: str, change: Any, expected: str
) -> None:
    found = _wiring(_break(manifests(files, CLUSTER), kind, name, change))
    assert any(expected in message for message in found), found


@pytest.mark.parametrize("cluster", POOL_CLUSTERS)
def test_the_picker_reads_replicas_through_the_merged_metrics_port(
    plan: Plan, files: dict[str, bytes], cluster: str
) -> None:
    """STRICT mTLS refuses the picker's plain-text scrape of a pod IP on 8000, so the
    picker reads the sidecar's merged endpoint (15020, outside mTLS, excluded from
    capture by the injector), which carries vLLM's series because the pods say
    where they are (prometheus.io annotations); the NetworkPolicy admits it."""
    ds = docs(files, cluster)
    for p in plan.clusters[cluster].placements:
        picker = one(ds, "Deployment", f"{p.name}-epp", p.namespace)
        args = picker["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("--model-server-metrics-port") + 1] == "15020"
        assert args[args.index("--model-server-metrics-path") + 1] == "/stats/prometheus"
        pods = one(ds, "Deployment", p.name, p.namespace)["spec"]["template"]["metadata"]
        assert pods["annotations"]["prometheus.io/port"] == str(istio.VLLM_PORT)
        policy = one(ds, "NetworkPolicy", "allow-inference-pool", p.namespace)["spec"]
        from_pickers = [
            rule
            for rule in policy["ingress"]
            if any(inferencepool.SELECTOR_LABEL in str(f) for f in rule["from"])
        ]
        assert [port["port"] for r in from_pickers for port in r["ports"]] == [15020]
        assert [port["port"] for r in policy["egress"] for port in r["ports"]] == [15020]


def test_checkov_passes_the_pooled_model_bundles(files: dict[str, bytes], tmp_path: Path) -> None:
    """The picker's Deployment passes checkov but for the findings its annotations justify."""
    checkov = shutil.which("checkov")
    if checkov is None:
        pytest.skip("checkov is not installed (pip install checkov)")
    prefix = f"generated/clusters/{CLUSTER}/models/"
    for path, body in files.items():
        if path.startswith(prefix) and not path.endswith("kustomization.yaml"):
            (tmp_path / path.rsplit("/", 1)[1]).write_bytes(body)
    proc = subprocess.run(
        [checkov, "-d", str(tmp_path), "--framework", "kubernetes", "-o", "json",
         "--skip-check", "CKV2_K8S_6"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin:" + str(Path(checkov).parent), "BC_SKIP_MAPPING": "TRUE"},
    )  # fmt: skip
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    assert not failed, [(c["check_id"], c["resource"]) for c in failed]
    skipped = {
        (c["check_id"], c["resource"].rsplit(".", 1)[1])
        for r in reports
        for c in r["results"]["skipped_checks"]
        if c["resource"].endswith("-epp")
    }
    assert {check for check, _ in skipped} == {
        "CKV_K8S_11",
        "CKV_K8S_15",
        "CKV_K8S_38",
        "CKV_K8S_43",
    }


def test_an_unknown_endpoint_picking_is_a_located_error(scratch_repo: Path) -> None:
    """Exit 1 with `file:line:col: path: message`, and generated/ untouched."""
    from typer.testing import CliRunner

    from llmgen.cli.app import app

    assert CliRunner().invoke(app, ["render", "--root", str(scratch_repo)]).exit_code == 0
    before = {p: p.read_bytes() for p in (scratch_repo / "generated").rglob("*") if p.is_file()}
    assert any(p.name == "inference-gateway.yaml" for p in before)
    env = scratch_repo / "catalog" / "environments" / "staging.yaml"
    env.write_text(
        env.read_text().replace("endpointPicking: inferencePool", "endpointPicking: pool")
    )
    result = CliRunner().invoke(app, ["render", "--root", str(scratch_repo)])
    assert result.exit_code == 1
    assert (
        "catalog/environments/staging.yaml:37:22: spec.routing.endpointPicking: expected one of "
        "'service', 'inferencePool'; got string 'pool'"
    ) in result.output
    after = {p: p.read_bytes() for p in (scratch_repo / "generated").rglob("*") if p.is_file()}
    assert after == before
