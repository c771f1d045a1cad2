"""Per-model VirtualServices: routing must not depend on the order Flux creates them.

Istio merges every VirtualService bound to the gateway for one host, in an
order that depends on creation times (tests/gatewaysim.py `merge_routes`
replays istiod 1.27.3's merge, with its sources). Flux decides creation
times (layers and models apply in any order, a model added later is newer),
so every request must reach the same route under every permutation of them,
and the gateway's own catch-alls (`/v1/models`, preflight, the OpenAI errors)
must never shadow a model's route. And the point of the split: no
infrastructure folder grows with the catalog (the configs folder used to
carry one VirtualService with every model's routes).
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatewaysim import Gateway, documents
from llmgen.plan.build import Plan
from llmgen.render.concerns import bodyrouting, istio

CLUSTERS = ["prod-aws-use1", "prod-gcp-usc1"]
Request = tuple[str, str, dict[str, str], bytes]


def requests(plan: Plan, cluster: str) -> list[Request]:
    """Every way a client names a model, and the ways it names none or a wrong one."""
    env = plan.clusters[cluster].environment.name
    models = {
        p.model.served_model_name: p.model
        for cp in plan.clusters.values()
        if cp.environment.name == env
        for p in cp.placements
    }
    out: list[Request] = []
    names = sorted(models)
    for i, name in enumerate(names):
        m = models[name]
        other = names[(i + 1) % len(names)]
        body = json.dumps({"model": name}).encode()
        prefix = m.route_prefix.rstrip("/")
        out += [
            ("POST", f"{prefix}/chat/completions", {}, body),
            ("POST", f"{prefix}/chat/completions", {}, b""),
            ("GET", f"{prefix}/models", {}, b""),
            ("POST", "/v1/chat/completions", {istio.MODEL_HEADER: name}, b""),
            # the explicit header wins over a body naming another model
            ("POST", "/v1/chat/completions", {istio.MODEL_HEADER: name}, _body(other)),
            ("POST", "/v1/chat/completions", {}, body),
            ("POST", "/v1/embeddings", {}, body),
            ("GET", "/v1/models", {istio.MODEL_HEADER: name}, b""),
            ("OPTIONS", f"{prefix}/chat/completions", {"origin": "https://x"}, b""),
        ]
        out += [("POST", "/v1/completions", {}, _body(a.name)) for a in m.adapters]
    out += [
        ("GET", "/v1/models", {}, b""),
        ("OPTIONS", "/v1/chat/completions", {"origin": "https://x"}, b""),
        ("POST", "/v1/chat/completions", {}, _body("gpt-nonexistent")),
        ("POST", "/v1/chat/completions", {istio.MODEL_HEADER: "gpt-nonexistent"}, b""),
        ("POST", "/v1/chat/completions", {istio.MODEL_HEADER: "nope"}, _body(names[0])),
        ("POST", "/v1/chat/completions", {}, b'{"messages": []}'),
        ("GET", "/healthz", {}, b""),
    ]
    return out


def _body(model: str) -> bytes:
    return json.dumps({"model": model}).encode()


def outcomes(gw: Gateway, reqs: list[Request]) -> list[str | None]:
    out = []
    for method, path, headers, body in reqs:
        route, _ = gw.route(method, path, headers, body)
        out.append(route["name"] if route else None)
    return out


def creation_orders(docs: list[dict[str, Any]]) -> list[dict[str, int]]:
    """Every order of the VirtualServices' creation (all of them up to 7, else
    the rotations and their reverses)."""
    names = sorted(d["metadata"]["name"] for d in docs if d["kind"] == "VirtualService")
    if len(names) <= 7:
        perms = list(itertools.permutations(names))
    else:
        perms = [tuple(names[i:] + names[:i]) for i in range(len(names))]
        perms += [p[::-1] for p in perms]
    return [{n: i for i, n in enumerate(p)} for p in perms]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_every_creation_order_routes_alike(
    plan: Plan, files: dict[str, bytes], cluster: str
) -> None:
    docs = documents(files, cluster)
    reqs = requests(plan, cluster)
    orders = creation_orders(docs)
    assert len(orders) == 5040  # six models' VirtualServices and the gateway's own
    reference = outcomes(Gateway(docs), reqs)
    for created in orders:
        assert outcomes(Gateway(docs, created), reqs) == reference, created
    # and the reference is the routing the catalog means
    expect = dict(zip([(m, p, tuple(h.items()), b) for m, p, h, b in reqs], reference, strict=True))
    assert expect[("GET", "/v1/models", (), b"")] == "list-models"
    assert expect[("POST", "/v1/chat/completions", (), b'{"messages": []}')] == "no-model"
    assert expect[("GET", "/healthz", (), b"")] is None
    bad = _body("gpt-nonexistent")
    assert expect[("POST", "/v1/chat/completions", (), bad)] == "unknown-model"
    header = ((istio.MODEL_HEADER, "gpt-nonexistent"),)
    assert expect[("POST", "/v1/chat/completions", header, b"")] == "unknown-model-header"
    assert all(r is not None for r in reference[:-1])


def test_the_catch_alls_must_be_public_or_a_creation_order_shadows_a_model(
    plan: Plan, files: dict[str, bytes]
) -> None:
    """The check above can fail: with the gateway's own VirtualService private
    like the models' (or the models' public like it), its `unknown-model` and
    `no-model` routes take requests meant for a model created after it."""
    docs = documents(files, CLUSTERS[0])
    reqs = requests(plan, CLUSTERS[0])
    private = copy.deepcopy(docs)
    for d in private:
        if d["kind"] == "VirtualService":
            d["spec"]["exportTo"] = ["."]
    results = {tuple(outcomes(Gateway(private, c), reqs)) for c in creation_orders(private)}
    assert len(results) > 1


def test_model_routes_live_in_the_models_folder(files: dict[str, bytes]) -> None:
    """Each model's VirtualService, DestinationRule and body-router ConfigMap sit
    in `models/<model>/` (its own Flux Kustomization); configs keeps only the
    gateway's own VirtualService, public, with no model's route in it."""
    for cluster in CLUSTERS:
        base = f"generated/clusters/{cluster}/"
        for path, content in files.items():
            if not path.startswith(base):
                continue
            rel = path[len(base) :]
            for d in yaml.safe_load_all(content.decode()):
                if not isinstance(d, dict) or "metadata" not in d:
                    continue
                kind, name = d["kind"], d["metadata"]["name"]
                labels = d["metadata"].get("labels", {})
                if kind == "VirtualService" and name == istio.VIRTUAL_SERVICE:
                    assert rel.startswith("infrastructure/configs/"), rel
                    assert d["spec"]["exportTo"] == ["*"]
                    hdrs = [json.dumps(r["match"]) for r in d["spec"]["http"]]
                    assert not any(bodyrouting.BASE_MODEL_HEADER + '": {"exact' in h for h in hdrs)
                elif kind in ("VirtualService", "DestinationRule") and name != bodyrouting.NAME:
                    assert rel.startswith(f"models/{name}/"), rel
                    assert d["spec"]["exportTo"] == ["."]
                elif kind == "ConfigMap" and labels.get(bodyrouting.MANAGED_LABEL) == "true":
                    assert rel.startswith(f"models/{labels['llmgen.io/model']}/"), rel


def _folder_docs(root: Path, cluster: str) -> dict[str, int]:
    """Documents per Flux path of one cluster that is not a model's own."""
    out = {}
    for folder in sorted((root / "generated" / "clusters" / cluster).rglob("kustomization.yaml")):
        rel = folder.parent.relative_to(root / "generated" / "clusters" / cluster).as_posix()
        if rel == "." or rel.startswith(("models/", "weights/")):
            continue
        count = 0
        for f in folder.parent.glob("*.yaml"):
            if f.name != "kustomization.yaml":
                count += sum(1 for d in yaml.safe_load_all(f.read_text()) if d)
        out[rel] = count
    return out


def test_no_infrastructure_folder_grows_with_the_models(tmp_path: Path) -> None:
    """5 and 10 models (tools/bench/gencatalog.py): every infrastructure folder
    holds as many documents (`weights` too); only the per-model folders
    (`models/<model>`, `weights/<model>`) multiply."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "bench"))
    import gencatalog

    from llmgen.render import pipeline

    counts = []
    for n in (5, 10):
        root = tmp_path / f"m{n}"
        gencatalog.generate(root, n, 2, 1)
        pipeline.render(root)
        clusters = sorted((root / "generated" / "clusters").iterdir())
        per_cluster = {c.name: _folder_docs(root, c.name) for c in clusters}
        counts.append(per_cluster)
        assert any(k.startswith("infrastructure/configs") for f in per_cluster.values() for k in f)
    assert any("weights" in f for f in counts[0].values())
    assert counts[0] == counts[1]
