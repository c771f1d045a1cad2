"""One OpenAI endpoint: real OpenAI clients through the rendered routing.

Each test renders the shipped catalog, builds one cluster's gateway from its
documents (tests/gatewaysim.py: the body-based router's and Istio's matching
semantics, with their sources) and sends requests with the `openai` package,
streaming and not, by body, by path prefix and by header.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gatewaysim import Gateway, documents, serve
from llmgen.plan.build import Plan
from llmgen.render.concerns import bodyrouting, istio

CLUSTERS = ["prod-aws-use1", "prod-gcp-usc1"]


def env_models(plan: Plan, cluster: str) -> dict[str, Any]:
    """Served name -> model, for every model of the cluster's environment."""
    env = plan.clusters[cluster].environment.name
    out = {}
    for cp in plan.clusters.values():
        if cp.environment.name == env:
            for p in cp.placements:
                out[p.model.served_model_name] = p.model
    return out


@pytest.fixture(params=CLUSTERS)
def cluster(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def gateway(files: dict[str, bytes], cluster: str) -> Gateway:
    return Gateway(documents(files, cluster))


@pytest.fixture
def base_url(gateway: Gateway) -> Iterator[str]:
    with serve(gateway) as url:
        yield url


def client(url: str, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="test-token", max_retries=0, **kw)


def test_the_router_is_wired_into_the_gateway(gateway: Gateway) -> None:
    assert gateway.router, "no EnvoyFilter puts the body-based router in the ingress gateway"


def test_chat_by_body_model_reaches_that_model(
    plan: Plan, cluster: str, base_url: str, gateway: Gateway
) -> None:
    models = env_models(plan, cluster)
    chat = [name for name, m in models.items() if "embed" not in m.name and "bge" not in m.name]
    assert chat
    c = client(base_url + "/v1")
    for name in chat:
        resp = c.chat.completions.with_raw_response.create(
            model=name, messages=[{"role": "user", "content": "hi"}]
        )
        assert resp.headers["x-upstream"] == istio.service_host(models[name].name), name
        assert resp.parse().model == name


def test_streaming_by_body_model_arrives_in_chunks(plan: Plan, cluster: str, base_url: str) -> None:
    models = env_models(plan, cluster)
    name = next(n for n, m in models.items() if "bge" not in m.name)
    stream = client(base_url + "/v1").chat.completions.create(
        model=name, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = [c.choices[0].delta.content for c in stream]
    assert chunks == ["served ", "by ", "stream "]


def test_completions_and_embeddings_route_by_body(plan: Plan, cluster: str, base_url: str) -> None:
    models = env_models(plan, cluster)
    c = client(base_url + "/v1")
    embed = next(n for n, m in models.items() if "bge" in m.name)
    got = c.embeddings.with_raw_response.create(model=embed, input="hello")
    assert got.headers["x-upstream"] == istio.service_host(models[embed].name)
    text = next(n for n, m in models.items() if "bge" not in m.name)
    done = c.completions.with_raw_response.create(model=text, prompt="hello")
    assert done.headers["x-upstream"] == istio.service_host(models[text].name)


def test_unknown_model_gets_an_openai_404(base_url: str) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client(base_url + "/v1").chat.completions.create(
            model="gpt-nonexistent", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.code == "model_not_found"
    assert err.value.body["type"] == "invalid_request_error"  # type: ignore[index]


def test_a_request_naming_no_model_gets_an_openai_400(base_url: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client(base_url + "/v1").post("/chat/completions", body={"messages": []}, cast_to=dict)
    assert err.value.code == "model_not_specified"


def test_models_lists_the_environment(plan: Plan, cluster: str, base_url: str) -> None:
    listed = sorted(m.id for m in client(base_url + "/v1").models.list())
    models = env_models(plan, cluster)
    adapters = [a.name for m in models.values() for a in m.adapters]
    assert adapters  # the shipped catalog serves LoRA adapters in prod
    assert listed == sorted([*models, *adapters])


def test_path_and_header_routing_keep_working(plan: Plan, cluster: str, base_url: str) -> None:
    models = env_models(plan, cluster)
    for name, model in models.items():
        by_path = client(base_url + model.route_prefix.rstrip("/"))
        if "bge" in model.name:
            got = by_path.embeddings.with_raw_response.create(model=name, input="x")
        else:
            got = by_path.chat.completions.with_raw_response.create(
                model=name, messages=[{"role": "user", "content": "hi"}]
            )
        assert got.headers["x-upstream"] == istio.service_host(model.name)
        by_header = client(base_url + "/v1", default_headers={istio.MODEL_HEADER: name})
        # The explicit header wins over a body naming another model.
        other = next(n for n in models if n != name)
        resp = by_header.embeddings.with_raw_response.create(model=other, input="x")
        assert resp.headers["x-upstream"] == istio.service_host(model.name)


def test_every_cluster_routes_every_model_of_its_environment(
    plan: Plan, files: dict[str, bytes]
) -> None:
    # Models not placed in a cluster are still routed there (east-west), so a
    # client may use any cluster's gateway, and failover keeps the body route.
    for name in plan.clusters:
        gw = Gateway(documents(files, name))
        wanted = set(env_models(plan, name))
        assert gw.base_models == wanted, name
        body_routes = {
            r["match"][0]["headers"][bodyrouting.BASE_MODEL_HEADER]["exact"]
            for r in gw.routes
            if bodyrouting.BASE_MODEL_HEADER in r["match"][0].get("headers", {})
        }
        assert body_routes == wanted, name


@pytest.mark.parametrize("pooled", ["staging-aws-use1", "staging-gcp-usc1"])
def test_with_inference_pools_the_body_model_reaches_its_pool(
    plan: Plan, files: dict[str, bytes], pooled: str
) -> None:
    """staging routes through InferencePools (docs/inference-pools.md): the body
    router's header still picks the edge's route, which marks the request for the
    model's HTTPRoute on the inference gateway, which sends it to the model's pool;
    streaming, adapters and path routing go the same way."""
    models = env_models(plan, pooled)
    placed = {p.model.name for p in plan.clusters[pooled].placements}
    with serve(Gateway(documents(files, pooled))) as url:
        c = client(url + "/v1")
        for name, model in models.items():
            if model.name not in placed:
                continue
            ns = f"llm-{model.name}"
            if model.task == "embed":
                got = c.embeddings.with_raw_response.create(model=name, input="hi")
            else:
                got = c.chat.completions.with_raw_response.create(
                    model=name, messages=[{"role": "user", "content": "hi"}]
                )
            assert got.headers["x-upstream"] == f"InferencePool/{ns}/{model.name}", name
            for adapter in model.adapters:
                done = c.completions.with_raw_response.create(model=adapter.name, prompt="hi")
                assert done.headers["x-upstream"] == f"InferencePool/{ns}/{model.name}"
        chat = next(n for n, m in models.items() if m.task != "embed" and m.name in placed)
        stream = c.chat.completions.create(
            model=chat, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert len([chunk for chunk in stream]) > 1
        by_path = client(url + models[chat].route_prefix).chat.completions.with_raw_response
        got = by_path.create(model=chat, messages=[{"role": "user", "content": "hi"}])
        assert got.headers["x-upstream"].startswith("InferencePool/")
