# Expected diagnostics are exact and long: splitting them would only make
# them harder to compare with llmgen's output.
# ruff: noqa: E501
"""LoRA adapters: catalog rules, the vLLM pod, routing by adapter name, the plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from typer.testing import CliRunner

from gatewaysim import Gateway, documents, serve
from llmgen.catalog.validate import validate
from llmgen.cli import app
from llmgen.plan.build import Plan
from llmgen.render.concerns import adapters, istio, weights

MODEL = "catalog/models/llama-3-1-8b-instruct.yaml"
SQL, SUPPORT = "llama-3.1-8b-sql", "llama-3.1-8b-support"


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {rel}"
    path.write_text(text.replace(old, new))


def errors(root: Path) -> list[str]:
    return [str(d) for d in validate(root).diagnostics if d.is_error]


# ------------------------------------------------------------------- rules


def test_the_shipped_adapters_validate(repo_root: Path) -> None:
    assert errors(repo_root) == []


def test_an_adapter_listed_twice_is_refused_at_its_line(scratch_repo: Path) -> None:
    edit(scratch_repo, MODEL, f"- name: {SUPPORT}", f"- name: {SQL}")
    assert errors(scratch_repo) == [
        f"{MODEL}:60:13: spec.adapters[1].name: adapter '{SQL}' is listed twice (first at adapters[0])"
    ]


def test_an_adapter_named_like_another_model_is_refused(scratch_repo: Path) -> None:
    edit(scratch_repo, MODEL, f"- name: {SUPPORT}", "- name: bge-m3")
    found = errors(scratch_repo)
    assert (
        f"{MODEL}:60:13: spec.adapters[1].name: adapter name 'bge-m3' is already served by model 'bge-m3' in environment 'dev'; a request naming it would be ambiguous"
        in found
    )
    assert len(found) == 1  # once, at the first environment that has both


def test_an_adapter_without_a_mirror_for_a_cloud_its_model_runs_on_is_refused(
    scratch_repo: Path,
) -> None:
    text = (scratch_repo / MODEL).read_text()
    gcp = next(line for line in text.splitlines() if "gs://" in line and "support-lora" in line)
    edit(scratch_repo, MODEL, gcp + "\n", "")
    assert errors(scratch_repo) == [
        f"{MODEL}:65:9: spec.adapters[1].weights: no gcp mirror for adapter '{SUPPORT}': model 'llama-3-1-8b-instruct' runs on gcp, and adapters load only from the cloud-local mirror (add weights.uris.gcp)"
    ]


def test_a_pinned_environment_needs_pinned_adapters(scratch_repo: Path) -> None:
    edit(
        scratch_repo, MODEL, "revision: 3b1f0c9e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c", "revision: main"
    )
    edit(
        scratch_repo,
        MODEL,
        "        sha256: 7a1e4c2b9d8f6e5a3c1b0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a\n",
        "",
    )
    assert errors(scratch_repo) == [
        f"{MODEL}:53:19: spec.adapters[0].source.revision: adapter revision 'main' is not a 40-hex commit; environment 'prod' requires pinned revisions",
        f"{MODEL}:55:9: spec.adapters[0].weights: adapter '{SQL}' has no manifest hash; environment 'prod' requires pinned weights",
    ]


def test_an_unknown_adapter_field_is_refused(scratch_repo: Path) -> None:
    edit(scratch_repo, MODEL, "      rank: 32\n", "      rnak: 32\n")
    found = errors(scratch_repo)
    assert len(found) == 1 and found[0].startswith(f"{MODEL}:69:7: spec.adapters[1]")
    assert "rnak" in found[0] and "rank" in found[0]


# ------------------------------------------------------------------ the pod


def deployment(files: dict[str, bytes], cluster: str, model: str) -> dict[str, Any]:
    text = files[f"generated/clusters/{cluster}/models/{model}/{model}.yaml"].decode()
    return next(d for d in yaml.safe_load_all(text) if d and d["kind"] == "Deployment")


@pytest.mark.parametrize("cluster", ["prod-aws-use1", "prod-gcp-usc1"])
def test_vllm_loads_every_adapter_from_its_verified_folder(
    files: dict[str, bytes], plan: Plan, cluster: str
) -> None:
    spec = deployment(files, cluster, "llama-3-1-8b-instruct")["spec"]["template"]["spec"]
    vllm = next(c for c in spec["containers"] if c["name"] == "vllm")
    args = vllm["args"]
    assert "--enable-lora" in args
    # vLLM takes --lora-modules as name=path pairs (nargs '+'): they must end the list.
    i = args.index("--lora-modules")
    assert args[i + 1 :] == [f"{SQL}=/models/adapters/0", f"{SUPPORT}=/models/adapters/1"]
    assert args[args.index("--max-loras") + 1] == "2"  # all resident: none evicted mid-traffic
    assert args[args.index("--max-lora-rank") + 1] == "32"  # the largest rank, one vLLM accepts
    init = {c["name"]: c for c in spec["initContainers"]}
    model = plan.clusters[cluster].provider
    for n, (name, sha) in enumerate(
        [(SQL, "7a1e4c2b9d8f6e5a3c1b0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a"),
         (SUPPORT, "2e4f6a8c0b1d3f5e7a9c2b4d6f8e0a1c3e5b7d9f2a4c6e8b0d1f3a5c7e9b2d4f")]
    ):  # fmt: skip
        fetch, verify = init[f"fetch-adapter-{n}"], init[f"verify-adapter-{n}"]
        # The copy reads its source and destination from the command or its env.
        words = [*fetch["command"], *(e["value"] for e in fetch["env"])]
        assert f"/models/adapters/{n}" in words
        assert any(("gs://" if model.name == "gcp" else "s3://") in a for a in words)
        env = {e["name"]: e["value"] for e in verify["env"]}
        assert env == {
            "WEIGHTS_DIR": f"/models/adapters/{n}",
            "WEIGHTS_MANIFEST": weights.MANIFEST,
            "WEIGHTS_SHA256": sha,
            "VERIFY_PARALLELISM": str(adapters.ADAPTER_COPY_CPUS),
        }, name
        assert verify["command"][-1] == weights.VERIFY_SCRIPT
    # Verification runs before vLLM: init containers run in order, adapters after the weights.
    names = [c["name"] for c in spec["initContainers"]]
    assert names.index("verify-weights") < names.index("fetch-adapter-0")
    mounts = {m["name"]: m for m in vllm["volumeMounts"]}
    assert mounts["adapters"] == {
        "name": "adapters",
        "mountPath": "/models/adapters",
        "readOnly": True,
    }
    volume = next(v for v in spec["volumes"] if v["name"] == "adapters")
    assert volume["emptyDir"]["sizeLimit"] == "4Gi"


def test_models_without_adapters_get_no_lora_flags(files: dict[str, bytes]) -> None:
    spec = deployment(files, "prod-aws-use1", "llama-3-3-70b-instruct")["spec"]["template"]["spec"]
    vllm = next(c for c in spec["containers"] if c["name"] == "vllm")
    assert "--enable-lora" not in vllm["args"]
    assert not any(v["name"] == "adapters" for v in spec["volumes"])


def test_max_rank_is_one_vllm_accepts() -> None:
    # vLLM's LoRAConfig accepts max_lora_rank in (8, 16, 32, 64, 128, 256, 320, 512).
    class M:
        def __init__(self, *ranks: int) -> None:
            self.adapters = [type("A", (), {"rank": r})() for r in ranks]

    assert adapters.max_rank(M(4)) == 8  # type: ignore[arg-type]
    assert adapters.max_rank(M(16, 17)) == 32  # type: ignore[arg-type]
    assert adapters.max_rank(M(300)) == 320  # type: ignore[arg-type]


# ---------------------------------------------------------------- routing


@pytest.mark.parametrize("cluster", ["prod-aws-use1", "prod-gcp-euw4"])
def test_a_request_naming_an_adapter_reaches_its_base_model(
    files: dict[str, bytes], cluster: str
) -> None:
    gw = Gateway(documents(files, cluster))
    assert gw.adapters == {SQL: "llama-3.1-8b-instruct", SUPPORT: "llama-3.1-8b-instruct"}
    with serve(gw) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="t", max_retries=0)
        for name in (SQL, SUPPORT):
            got = client.chat.completions.with_raw_response.create(
                model=name, messages=[{"role": "user", "content": "SELECT 1"}]
            )
            assert got.headers["x-upstream"] == istio.service_host("llama-3-1-8b-instruct")
            assert got.parse().model == name  # vLLM picks the adapter by this name
        listed = {m.id: m for m in client.models.list()}
    assert listed[SQL].model_dump()["parent"] == "llama-3.1-8b-instruct"
    assert SUPPORT in listed


# ------------------------------------------------------------------- plan


def test_plan_counts_adapters(repo_root: Path) -> None:
    runner = CliRunner()
    text = runner.invoke(app, ["plan", "--root", str(repo_root), "--env", "prod"])
    assert text.exit_code == 0, text.output
    assert "llama-3-1-8b-instruct +2 LoRA" in text.output
    data = runner.invoke(app, ["plan", "--root", str(repo_root), "--format", "json"])
    rows = [
        m
        for env in json.loads(data.output)["environments"]
        for c in env["clusters"]
        for m in c["models"]
        if m["model"] == "llama-3-1-8b-instruct"
    ]
    assert rows and all(r["adapters"] == [SQL, SUPPORT] for r in rows)
