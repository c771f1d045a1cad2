"""`llmgen diff --base REF`: catalog-level pull-request summaries on real git repositories."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmgen.cli.app import app
from llmgen.errors import UsageError
from llmgen.gitops.changes import document_changes
from llmgen.gitops.prsummary import pr_summary
from llmgen.gitops.prsummaryview import format_summary
from llmgen.plan.build import Placement, Plan, build_plan
from llmgen.render.pipeline import checked_catalog

DEV_ENV = "catalog/environments/dev.yaml"
QWEN_IN_DEV = "    - name: qwen2-5-32b-instruct-awq\n      replicas: {min: 0, max: 1}\n"


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture
def gitrepo(scratch_repo: Path) -> Path:
    """The shipped catalog committed on main, with its rendered generated/."""
    root = scratch_repo
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.name", "Test")
    _git(root, "config", "user.email", "test@example.com")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "initial catalog")
    return root


def _status(root: Path) -> str:
    return _git(root, "status", "--porcelain", "--untracked-files=all")


def _plan(root: Path) -> Plan:
    return build_plan(checked_catalog(root)[0])


def test_removed_model_shows_gpu_and_cost_deltas(gitrepo: Path) -> None:
    before = _plan(gitrepo).environments["dev"]
    qwen = [p for p in before.placements if p.model.name == "qwen2-5-32b-instruct-awq"]
    assert len(qwen) == 1
    env_file = gitrepo / DEV_ENV
    env_file.write_text(env_file.read_text().replace(QWEN_IN_DEV, ""))
    status = _status(gitrepo)

    s = pr_summary(gitrepo, "main")
    assert _status(gitrepo) == status  # reading the base touched nothing
    assert [(m.environment, m.cluster, m.model, m.change) for m in s.models] == [
        ("dev", "dev-aws-use2", "qwen2-5-32b-instruct-awq", "removed")
    ]
    (dev,) = [e for e in s.environments if e.changed]
    assert dev.environment == "dev"
    assert (dev.models_before, dev.models_after) == (3, 2)
    assert dev.after.gpus_max == dev.before.gpus_max - qwen[0].gpus_max
    assert dev.after.usd_max == pytest.approx(
        dev.before.usd_max - qwen[0].monthly_usd_max, abs=0.02
    )
    removed = {(r.kind, r.namespace) for r in s.resources if r.change == "removed"}
    assert ("Deployment", "llm-qwen2-5-32b-instruct-awq") in removed
    # The other dev models' files changed (provenance hash), their resources did not.
    other_models = [
        r
        for r in s.resources
        if r.namespace.startswith("llm-") and r.namespace != "llm-qwen2-5-32b-instruct-awq"
    ]
    assert other_models == []

    md = format_summary(s, "markdown")
    assert "| dev | 2 (was 3) |" in md
    assert "| dev-aws-use2 | qwen2-5-32b-instruct-awq | removed |" in md
    assert f"−${qwen[0].monthly_usd_max:,.0f}" in md


def test_changed_revision_is_named_in_every_cluster_running_the_model(gitrepo: Path) -> None:
    model = gitrepo / "catalog/models/bge-m3.yaml"
    text = model.read_text()
    old_rev = "5617a9f61b028005a4858fdac845db406aefb181"
    assert old_rev in text
    model.write_text(text.replace(old_rev, "ab" * 20))
    clusters = {p.cluster.name for p in _placements(gitrepo, "bge-m3")}

    s = pr_summary(gitrepo, "main")
    assert {m.cluster for m in s.models} == clusters
    assert all(m.change == "changed" and m.model == "bge-m3" for m in s.models)
    assert all(f"revision {old_rev[:12]} → {'ab' * 6}" in m.details for m in s.models)
    deployments = {r.cluster for r in s.resources if r.kind == "Deployment" and r.name == "bge-m3"}
    assert deployments == clusters
    assert not [e for e in s.environments if e.changed]  # same capacity, same cost


def _placements(root: Path, model: str) -> list[Placement]:
    envs = _plan(root).environments.values()
    return [p for ep in envs for p in ep.placements if p.model.name == model]


def test_no_change_says_so(gitrepo: Path) -> None:
    s = pr_summary(gitrepo, "HEAD")
    assert not s.models and not s.resources
    text = format_summary(s, "text")
    assert "No model, capacity or cost changes." in text and "No resource changes." in text


def test_env_filter_limits_models_and_resources(gitrepo: Path) -> None:
    model = gitrepo / "catalog/models/bge-m3.yaml"
    model.write_text(model.read_text().replace("5617a9f61b02", "5617a9f61b03"))
    s = pr_summary(gitrepo, "main", envs=["prod"])
    assert s.models and {m.environment for m in s.models} == {"prod"}
    prod = {c.name for c in _plan(gitrepo).clusters.values() if c.env_name == "prod"}
    assert {r.cluster for r in s.resources} <= prod
    with pytest.raises(UsageError, match="no environment named 'nope'"):
        pr_summary(gitrepo, "main", envs=["nope"])


def test_invalid_base_falls_back_to_committed_generated(gitrepo: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["render", "--root", str(gitrepo)]).exit_code == 0
    env_file = gitrepo / DEV_ENV
    good = env_file.read_text()
    env_file.write_text(good.replace("domain:", "domian:"))
    _git(gitrepo, "add", ".")
    _git(gitrepo, "commit", "-q", "-m", "generated/ plus a broken catalog")
    env_file.write_text(good)

    s = pr_summary(gitrepo, "main")
    assert not s.catalog_compared and not s.models
    assert any("does not validate" in n for n in s.notes)
    assert any("as committed at main" in n for n in s.notes)
    assert s.resources == []  # the committed generated/ is what the fixed catalog renders


def test_document_changes_compare_data_not_bytes() -> None:
    head = b"# Generated by llmgen from catalog inputs sha256:%s.\n"
    doc_a = b"apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: n}\nspec: {x: 1}\n"
    doc_b = b"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a, namespace: n}\n"
    path = "generated/clusters/c1/models/a.yaml"
    old = {path: head % b"1111" + doc_a + b"---\n" + doc_b}
    assert document_changes(old, {path: head % b"2222" + doc_a + b"---\n" + doc_b}) == []
    changed = document_changes(old, {path: doc_a.replace(b"x: 1", b"x: 2") + b"---\n" + doc_b})
    assert [(c.change, c.kind, c.name) for c in changed] == [("changed", "Service", "a")]


def test_cli_markdown_json_and_bad_ref(gitrepo: Path) -> None:
    env_file = gitrepo / DEV_ENV
    env_file.write_text(env_file.read_text().replace(QWEN_IN_DEV, ""))
    runner = CliRunner()
    args = ["diff", "--root", str(gitrepo), "--base", "main"]
    md = runner.invoke(app, [*args, "--format", "markdown"])
    assert md.exit_code == 0, md.output
    assert md.output.startswith("### llmgen: changes against main (")
    assert "<details><summary>Every resource</summary>" in md.output
    js = runner.invoke(app, [*args, "--format", "json"])
    data = json.loads(js.output)
    assert data["models"][0]["change"] == "removed"
    assert data["base_commit"] == _git(gitrepo, "rev-parse", "main")
    bad = runner.invoke(app, ["diff", "--root", str(gitrepo), "--base", "no-such-ref"])
    assert bad.exit_code == 2
    assert "no-such-ref" in bad.output


A10G_POOL = "minNodes: 0\n      maxNodes: 2\n      zones: [us-east-2a, us-east-2b]"


def test_idle_nodes_count_in_the_budget_figures(gitrepo: Path) -> None:
    """Two a10g-x4 nodes kept by minNodes and used by no model cost 2 × $2.4642/h
    (g5.12xlarge spot) × 730 h = $3,597.73/month, at the minimum and the maximum."""
    cluster = gitrepo / "catalog/clusters/dev-aws-use2.yaml"
    text = cluster.read_text()
    assert text.count(A10G_POOL) == 1
    cluster.write_text(text.replace(A10G_POOL, A10G_POOL.replace("minNodes: 0", "minNodes: 2")))
    s = pr_summary(gitrepo, "main")
    (dev,) = [e for e in s.environments if e.changed]
    idle = 2 * 2.4642 * 730
    assert dev.after.usd_min - dev.before.usd_min == pytest.approx(idle, abs=0.02)
    # They also come off dev's $5,000 budget first: $1,402 is left for replicas, so
    # qwen keeps its one replica and llama-8b's maximum is capped 2→1 ($0.4277/h less).
    assert dev.after.usd_max - dev.before.usd_max == pytest.approx(idle - 0.4277 * 730, abs=0.02)
    assert dev.after.usd_max <= 5000
    assert dev.after.gpus_max == dev.before.gpus_max - 1  # the capped llama-8b replica
    plan = _plan(gitrepo).environments["dev"]
    assert plan.allocation.idle_nodes == {"dev-aws-use2/a10g-x4": 2}
    assert plan.idle_monthly_usd == pytest.approx(idle, abs=0.01)


def test_new_revision_lists_the_weights_the_pr_needs_mirrored(gitrepo: Path) -> None:
    """A canary of a new revision in prod: that revision must reach both clouds' mirrors."""
    new = "1a" * 20
    env_file = gitrepo / "catalog/environments/prod.yaml"
    original = env_file.read_text()
    entry = "    - name: mixtral-8x7b-instruct\n      replicas: {min: 2, max: 4}\n"
    assert entry in original
    env_file.write_text(
        original.replace(
            entry,
            f"{entry}      canary: {{revision: {new}, weightsSha256: {'ab' * 32}}}\n",
        )
    )
    s = pr_summary(gitrepo, "main")
    assert [(w.cloud, w.model, w.revision, w.pinned) for w in s.weights] == [
        ("aws", "mixtral-8x7b-instruct", new, True),
        ("gcp", "mixtral-8x7b-instruct", new, True),
    ]
    mixtral = checked_catalog(gitrepo)[0].models["mixtral-8x7b-instruct"]
    from llmgen.catalog.cost import weights_disk_gib

    assert all(w.gib == round(weights_disk_gib(mixtral), 1) for w in s.weights)
    assert all(new in w.uri and w.uri.endswith(f"/{new}/") for w in s.weights)
    text = format_summary(s, "text")
    assert "Weights to mirror (2 revision(s), 174.0 GiB):" in text
    md = format_summary(s, "markdown")
    assert "#### Weights to mirror" in md
    data = json.loads(format_summary(s, "json"))
    assert data["weights"][0]["gib"] == s.weights[0].gib
    # Nothing new to mirror when only replicas change.
    env_file.write_text(original.replace(entry, entry.replace("max: 4", "max: 3")))
    assert pr_summary(gitrepo, "main").weights == []
