"""`llmgen model new --nodes N`: a multi-node model (docs/multinode.md) written
so that the loader reads it back and validate accepts it, or refused at once.

The rules are validate's (catalog/rules_capacity.py `multi_node`): gpuCount
divides into the nodes, engine.tensorParallel = GPUs per node,
engine.pipelineParallel = nodes, generation models only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from llmgen.catalog.validate import validate
from llmgen.cli.app import app
from llmgen.errors import UsageError
from llmgen.lifecycle import verbs as lifecycle
from llmgen.plan.build import build_plan
from llmgen.render.engine import render_plan

REPO, REV = "meta-llama/Llama-3.1-405B-Instruct", "f" * 40
FILE = "catalog/models/llama-405b-new.yaml"


def test_nodes_write_a_group_that_validate_accepts(scratch_repo: Path) -> None:
    spec = lifecycle.ModelSpec("llama-405b-new", REPO, REV, "H100-80GB", gpu_count=16, nodes=2)
    outcome = lifecycle.new_model(scratch_repo, spec)
    assert outcome.paths == [FILE]
    result = validate(scratch_repo)
    assert result.ok, [str(d) for d in result.errors]
    assert result.catalog is not None
    model = result.catalog.models["llama-405b-new"]
    assert (model.nodes, model.gpu_count, model.gpus_per_pod) == (2, 16, 8)
    assert (model.tensor_parallel, model.pipeline_parallel) == (8, 2)
    assert model.multi_node
    # cpu and memory are per pod: 4 vCPU per GPU of the pod, 1.2 × its half of
    # 754 GiB (405B in bf16).
    assert model.cpu == 32
    assert model.memory_gib == 453
    build_plan(result.catalog)  # plans (the model is placed nowhere yet)
    text = (scratch_repo / FILE).read_text()
    assert "    nodes: 2  # per node: 8 GPUs, cpu and memory below\n" in text
    assert "    tensorParallel: 8\n    pipelineParallel: 2\n" in text


def test_the_written_group_deploys_and_renders_as_a_leaderworkerset(scratch_repo: Path) -> None:
    """In place of the shipped 405B (prod's H100 group pools hold one such group per
    cloud), the model written by `--nodes 2` passes deploy's validation and plan and
    renders as a LeaderWorkerSet of 2 pods of 8 GPUs (render/concerns/group.py)."""
    spec = lifecycle.ModelSpec(
        "llama-405b-new", REPO, REV, "H100-80GB", gpu_count=16, nodes=2, weights_sha256="b" * 64
    )
    lifecycle.new_model(scratch_repo, spec)
    lifecycle.undeploy(scratch_repo, "llama-3-1-405b-instruct", "prod")
    lifecycle.deploy(
        scratch_repo, "llama-405b-new", "prod", clusters=["prod-aws-use1"], min_replicas=1
    )
    result = validate(scratch_repo)
    assert result.ok and result.catalog is not None, [str(d) for d in result.errors]
    files = render_plan(build_plan(result.catalog), scratch_repo / "templates", scratch_repo).files
    body = files["generated/clusters/prod-aws-use1/models/llama-405b-new/llama-405b-new.yaml"]
    (lws,) = [d for d in yaml.safe_load_all(body) if d and d["kind"] == "LeaderWorkerSet"]
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    (vllm,) = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][:1]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] in (8, "8")


def test_one_node_writes_no_nodes_field(scratch_repo: Path) -> None:
    spec = lifecycle.ModelSpec("qwen-7b-new", "Qwen/Qwen2.5-7B-Instruct", REV, "L4", nodes=1)
    lifecycle.new_model(scratch_repo, spec)
    text = (scratch_repo / "catalog/models/qwen-7b-new.yaml").read_text()
    assert "nodes" not in text and "pipelineParallel" not in text


@pytest.mark.parametrize(
    ("gpus", "nodes", "task", "message"),
    [
        (12, 5, "generate", "--gpu-count 12 does not divide into --nodes 5"),
        (1, 2, "generate", "--gpu-count 1 does not divide into --nodes 2"),
        (16, 2, "embed", "generation models only"),
        (16, 0, "generate", "--nodes must be 1 or more"),
    ],
)
def test_inconsistent_nodes_are_refused_and_nothing_is_written(
    scratch_repo: Path, gpus: int, nodes: int, task: str, message: str
) -> None:
    spec = lifecycle.ModelSpec(
        "llama-405b-new", REPO, REV, "H100-80GB", gpu_count=gpus, nodes=nodes, task=task
    )
    with pytest.raises(UsageError, match=message):
        lifecycle.new_model(scratch_repo, spec)
    assert not (scratch_repo / FILE).exists()


def test_cli_nodes_option_and_exit_codes(scratch_repo: Path) -> None:
    runner = CliRunner()
    base = ["model", "new", "llama-405b-new", "--from-hf", REPO, "--revision", REV]
    base += ["--gpu", "H100-80GB", "--root", str(scratch_repo)]

    bad = runner.invoke(app, [*base, "--gpu-count", "12", "--nodes", "5"])
    assert bad.exit_code == 2, bad.output
    assert "does not divide into --nodes 5" in bad.output
    zero = runner.invoke(app, [*base, "--gpu-count", "16", "--nodes", "0"])
    assert zero.exit_code == 2, zero.output
    assert not (scratch_repo / FILE).exists()

    ok = runner.invoke(app, [*base, "--gpu-count", "16", "--nodes", "2"])
    assert ok.exit_code == 0, ok.output
    assert "+    nodes: 2" in ok.output
    assert runner.invoke(app, ["validate", "--root", str(scratch_repo)]).exit_code == 0
