"""Lifecycle verbs: what each one decides, through the library and the CLI.

The edits land in a scratch copy of the shipped catalog; the outcome is read
back through validate and plan, as render would see it.
"""

from __future__ import annotations

from pathlib import Path

import git
import pytest
from typer.testing import CliRunner

from llmgen.catalog.validate import validate
from llmgen.cli.app import app
from llmgen.errors import UsageError
from llmgen.lifecycle import verbs as lifecycle
from llmgen.plan.build import Plan, build_plan


def plan_of(root: Path) -> Plan:
    result = validate(root)
    assert result.ok, [str(d) for d in result.errors]
    assert result.catalog is not None
    return build_plan(result.catalog)


def placed(root: Path, env: str, model: str) -> list[str]:
    return sorted(
        p.cluster.name for p in plan_of(root).environments[env].placements if p.name == model
    )


# ------------------------------------------------------------------ deploy


def test_deploy_restricted_to_one_cluster_places_the_model_only_there(scratch_repo: Path) -> None:
    assert placed(scratch_repo, "prod", "bge-m3") == [
        "prod-aws-use1",
        "prod-aws-usw2",
        "prod-gcp-euw4",
        "prod-gcp-usc1",
    ]
    lifecycle.deploy(scratch_repo, "bge-m3", "prod", clusters=["prod-gcp-usc1"])
    assert placed(scratch_repo, "prod", "bge-m3") == ["prod-gcp-usc1"]
    lifecycle.deploy(scratch_repo, "bge-m3", "prod", all_clusters=True)
    assert len(placed(scratch_repo, "prod", "bge-m3")) == 4


def test_deploy_min_zero_of_a_model_that_may_not_scale_to_zero_is_refused(
    scratch_repo: Path,
) -> None:
    path = scratch_repo / "catalog" / "environments" / "dev.yaml"
    before = path.read_bytes()
    with pytest.raises(UsageError, match=r"bge-m3 may not scale to zero .*pass --min 1 or more"):
        lifecycle.deploy(scratch_repo, "bge-m3", "dev", min_replicas=0)
    assert path.read_bytes() == before
    # A model that may scale to zero takes --min 0 as asked.
    outcome = lifecycle.deploy(scratch_repo, "qwen2-5-32b-instruct-awq", "dev", min_replicas=0)
    assert not outcome.changed


def test_deploy_says_at_once_when_the_plan_raises_the_minimum(scratch_repo: Path) -> None:
    # staging has two clusters: a minimum of 1 for a model that may not scale to zero
    # is raised to 2 (one per cluster), and the verb's warnings say so.
    outcome = lifecycle.deploy(scratch_repo, "bge-m3", "staging", min_replicas=1)
    assert outcome.changed
    assert any("minimum replicas raised 1→2 for 'bge-m3'" in w.message for w in outcome.warnings)


def test_deploy_of_an_unchanged_entry_writes_nothing(scratch_repo: Path) -> None:
    path = scratch_repo / "catalog" / "environments" / "dev.yaml"
    mtime = path.stat().st_mtime_ns
    outcome = lifecycle.deploy(scratch_repo, "bge-m3", "dev", min_replicas=1, max_replicas=1)
    assert not outcome.changed
    assert "already deployed" in outcome.summary
    assert path.stat().st_mtime_ns == mtime


def test_undeploy_removes_the_model_from_the_plan(scratch_repo: Path) -> None:
    assert placed(scratch_repo, "dev", "bge-m3") == ["dev-aws-use2"]
    outcome = lifecycle.undeploy(scratch_repo, "bge-m3", "dev")
    assert outcome.paths == ["catalog/environments/dev.yaml"]
    assert placed(scratch_repo, "dev", "bge-m3") == []


def test_unknown_names_are_usage_errors_with_a_suggestion(scratch_repo: Path) -> None:
    with pytest.raises(UsageError, match="did you mean 'bge-m3'"):
        lifecycle.undeploy(scratch_repo, "bge-m4", "dev")
    with pytest.raises(UsageError, match="did you mean 'staging'"):
        lifecycle.deploy(scratch_repo, "bge-m3", "stagin")
    with pytest.raises(UsageError, match="no cluster in environment dev named 'prod-aws-use1'"):
        lifecycle.stop(scratch_repo, "dev", ["prod-aws-use1"])


# ------------------------------------------------------------------ stop / start


def test_stop_suspends_every_placement_and_start_resumes_them(scratch_repo: Path) -> None:
    assert not any(p.suspended for p in plan_of(scratch_repo).environments["prod"].placements)
    outcome = lifecycle.stop(scratch_repo, "prod")
    assert outcome.changed and outcome.applied.written
    assert any("paused-replicas" in n for n in outcome.notes)
    placements = plan_of(scratch_repo).environments["prod"].placements
    assert placements and all(p.suspended for p in placements)
    lifecycle.start(scratch_repo, "prod")
    assert not any(p.suspended for p in plan_of(scratch_repo).environments["prod"].placements)


def test_stopping_a_stopped_environment_changes_nothing(scratch_repo: Path) -> None:
    lifecycle.stop(scratch_repo, "dev")
    again = lifecycle.stop(scratch_repo, "dev")
    assert not again.changed and "already stopped" in again.summary
    # Stopping one cluster of a stopped environment: it is stopped already.
    assert not lifecycle.stop(scratch_repo, "dev", ["dev-aws-use2"]).changed


def test_starting_one_cluster_of_a_stopped_environment_keeps_the_others_stopped(
    scratch_repo: Path,
) -> None:
    lifecycle.stop(scratch_repo, "prod")
    lifecycle.start(scratch_repo, "prod", ["prod-aws-use1"])
    result = validate(scratch_repo)
    assert result.catalog is not None
    env = result.catalog.environments["prod"]
    assert not env.suspended
    assert env.suspended_clusters == tuple(c for c in env.clusters if c != "prod-aws-use1")
    assert len(env.suspended_clusters) == 3
    lifecycle.start(scratch_repo, "prod", ["prod-aws-usw2", "prod-gcp-euw4", "prod-gcp-usc1"])
    text = (scratch_repo / "catalog" / "environments" / "prod.yaml").read_text()
    assert "suspended" not in text


def test_stop_names_the_pools_that_keep_paid_nodes(scratch_repo: Path) -> None:
    path = scratch_repo / "catalog" / "clusters" / "dev-aws-use2.yaml"
    path.write_text(path.read_text().replace("minNodes: 0\n", "minNodes: 1\n", 1))
    notes = lifecycle.stop(scratch_repo, "dev").notes
    assert any(n.startswith("dev-aws-use2/l4-x1 keeps 1 node(s)") for n in notes), notes


def test_dry_run_shows_the_diff_and_writes_nothing(scratch_repo: Path) -> None:
    path = scratch_repo / "catalog" / "environments" / "staging.yaml"
    before = path.read_bytes()
    outcome = lifecycle.stop(scratch_repo, "staging", dry_run=True)
    assert outcome.changed and not outcome.applied.written
    assert "+  suspended: true" in outcome.diff()
    assert path.read_bytes() == before


# ------------------------------------------------------------------ model new


def test_model_new_follows_the_catalogs_conventions(scratch_repo: Path) -> None:
    spec = lifecycle.ModelSpec(
        "qwen2-5-14b", "Qwen/Qwen2.5-14B-Instruct", "b" * 40, "A100-80GB", gpu_count=2
    )
    outcome = lifecycle.new_model(scratch_repo, spec)
    assert outcome.paths == ["catalog/models/qwen2-5-14b.yaml"]
    result = validate(scratch_repo)
    assert result.ok and result.catalog is not None
    model = result.catalog.models["qwen2-5-14b"]
    assert model.parameters_b == 14  # read from the repo name
    assert model.tensor_parallel == 2 == model.gpu_count
    assert model.weight_uris == {
        "aws": f"s3://example-llm-weights/Qwen/Qwen2.5-14B-Instruct/{'b' * 40}/",
        "gcp": f"gs://example-llm-weights/Qwen/Qwen2.5-14B-Instruct/{'b' * 40}/",
    }
    # The image every shipped model uses, digest included.
    assert model.image == result.catalog.models["bge-m3"].image
    assert model.served_model_name == "qwen2.5-14b-instruct"
    assert model.route_prefix == "/v1/qwen2-5-14b"
    text = (scratch_repo / outcome.paths[0]).read_text()
    assert text.startswith("# yaml-language-server: $schema=../../schemas/model.schema.json\n")
    assert "team: unowned  # TODO" in text
    assert "\n    sha256:" not in text and any("weights.sha256" in n for n in outcome.notes)


def test_model_new_needs_a_size_it_cannot_guess(scratch_repo: Path) -> None:
    spec = lifecycle.ModelSpec("mixtral-2", "mistralai/Mixtral-8x7B-v0.1", "c" * 40, "H100-80GB")
    with pytest.raises(UsageError, match="--params-b"):
        lifecycle.new_model(scratch_repo, spec)
    assert not (scratch_repo / "catalog" / "models" / "mixtral-2.yaml").exists()


@pytest.mark.parametrize(
    "name", ["../../escape", "Upper", "-dash", "a" * 64, "dots.in.name", "3-llama"]
)
def test_model_new_refuses_names_that_are_not_dns_labels(scratch_repo: Path, name: str) -> None:
    spec = lifecycle.ModelSpec(name, "Qwen/Qwen2.5-7B-Instruct", "e" * 40, "L4")
    before = sorted(p.relative_to(scratch_repo) for p in scratch_repo.rglob("*"))
    with pytest.raises(UsageError, match="DNS-1035"):
        lifecycle.new_model(scratch_repo, spec)
    assert sorted(p.relative_to(scratch_repo) for p in scratch_repo.rglob("*")) == before


def test_model_new_refuses_to_replace_a_model_without_force(scratch_repo: Path) -> None:
    path = scratch_repo / "catalog" / "models" / "bge-m3.yaml"
    before = path.read_bytes()
    # bge-m3 is served in prod, which requires pinned weights: the replacement pins them too
    spec = lifecycle.ModelSpec(
        "bge-m3",
        "BAAI/bge-m3",
        "d" * 40,
        "L4",
        params_b=0.57,
        task="embed",
        weights_sha256="e" * 64,
    )
    with pytest.raises(UsageError, match="already exists"):
        lifecycle.new_model(scratch_repo, spec)
    assert path.read_bytes() == before
    outcome = lifecycle.new_model(scratch_repo, spec, force=True)
    assert outcome.changed and "d" * 40 in path.read_text()


# ------------------------------------------------------------------ CLI


def test_cli_exit_codes_and_refusal(scratch_repo: Path) -> None:
    runner = CliRunner()
    root = ["--root", str(scratch_repo)]
    env_file = scratch_repo / "catalog" / "environments" / "dev.yaml"
    before = env_file.read_bytes()

    r = runner.invoke(app, ["deploy", "bge-m3", "--env", "nope", *root])
    assert r.exit_code == 2, r.output
    r = runner.invoke(app, ["deploy", "bge-m3", "--env", "dev", "--min", "3", "--max", "1", *root])
    assert r.exit_code == 1, r.output
    assert "catalog/environments/dev.yaml:" in r.output and "greater than" in r.output
    assert env_file.read_bytes() == before
    r = runner.invoke(app, ["stop", "--env", "dev", "--dry-run", "--commit", *root])
    assert r.exit_code == 2, r.output

    r = runner.invoke(app, ["stop", "--env", "dev", *root])
    assert r.exit_code == 0, r.output
    assert "+  suspended: true" in r.output
    assert "stopped dev: its models scale to zero" in r.output


def test_commit_lands_the_catalog_change_then_the_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{var}_NAME", "llmgen test")
        monkeypatch.setenv(f"GIT_{var}_EMAIL", "test@example.com")
    from llmgen.lifecycle.scaffold import init

    root = tmp_path / "repo"
    init(root)
    repo = git.Repo.init(root, initial_branch="main")
    repo.git.add("-A")
    repo.git.commit("-m", "scaffold")
    start = repo.head.commit.hexsha

    r = CliRunner().invoke(app, ["stop", "--env", "dev", "--commit", "--root", str(root)])
    assert r.exit_code == 0, r.output
    commits = list(repo.iter_commits(f"{start}..HEAD"))
    assert len(commits) == 2
    rendered, edited = commits
    assert edited.message.startswith("catalog: stop dev")
    assert list(edited.stats.files) == ["catalog/environments/dev.yaml"]
    assert rendered.stats.files and all(p.startswith("generated/") for p in rendered.stats.files)
    assert not repo.is_dirty(untracked_files=False)
