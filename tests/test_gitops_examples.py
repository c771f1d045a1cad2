"""The shipped CI examples and pre-commit hooks: valid, and their commands really work.

The `run:` steps of the GitHub Actions examples are executed with bash in a
temporary catalog repository (with a bare `origin`), as the runner would,
so a renamed flag or a broken pipeline fails here rather than in a user's CI.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "github-actions"
PR_WORKFLOW = EXAMPLES / "llmgen-pull-request.yaml"
MAIN_WORKFLOW = EXAMPLES / "llmgen-main.yaml"
HOOKS = REPO / ".pre-commit-hooks.yaml"


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def _steps(workflow: Path) -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(workflow.read_text())
    (job,) = doc["jobs"].values()
    return {s["id"]: s for s in job["steps"] if "id" in s}


def _run_step(
    step: dict[str, Any], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run a step's script the way the runner does (bash -e), with its env: resolved."""
    step_env = {k: env[k] for k in step.get("env", {}) if k in env}
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=cwd,
        env={**os.environ, **env, **step_env},
        capture_output=True,
        text=True,
    )


@pytest.fixture
def catalog_repo(scratch_repo: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A catalog repository with generated/ committed on main and pushed to a bare origin."""
    root = scratch_repo
    remote = tmp_path / "origin.git"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.name", "Test")
    _git(root, "config", "user.email", "test@example.com")
    _git(root, "remote", "add", "origin", str(remote))
    subprocess.run(["llmgen", "render"], cwd=root, check=True, capture_output=True)
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "catalog and generated/")
    _git(root, "push", "-q", "-u", "origin", "main")
    return root, remote


def test_workflows_match_the_github_schema() -> None:
    cj = pytest.importorskip("check_jsonschema", reason="check-jsonschema vendors the schema")
    from jsonschema import Draft7Validator

    schema = json.loads(
        (Path(cj.__file__).parent / "builtin_schemas/vendor/github-workflows.json").read_text()
    )
    for workflow in (PR_WORKFLOW, MAIN_WORKFLOW):
        # YAML 1.2, as GitHub reads it: `on` is a key, not the boolean PyYAML makes of it.
        doc = YAML(typ="safe").load(workflow.read_text())
        errors = list(Draft7Validator(schema).iter_errors(doc))
        assert errors == [], f"{workflow.name}: {[e.message for e in errors]}"


@pytest.mark.parametrize("workflow", [PR_WORKFLOW, MAIN_WORKFLOW], ids=lambda p: p.stem)
def test_no_expression_is_expanded_inside_a_script(workflow: Path) -> None:
    # ${{ }} inside run: is pasted into the shell before it runs: script injection.
    for step_id, step in _steps(workflow).items():
        assert "${{" not in step.get("run", ""), step_id


def test_pull_request_steps_run_and_summarise(
    catalog_repo: tuple[Path, Path], tmp_path: Path
) -> None:
    root, _remote = catalog_repo
    _git(root, "switch", "-q", "-c", "drop-qwen-from-dev")
    env_file = root / "catalog/environments/dev.yaml"
    qwen = "    - name: qwen2-5-32b-instruct-awq\n      replicas: {min: 0, max: 1}\n"
    env_file.write_text(env_file.read_text().replace(qwen, ""))
    subprocess.run(["llmgen", "render"], cwd=root, check=True, capture_output=True)
    _git(root, "commit", "-q", "-am", "dev: drop qwen")
    _git(root, "fetch", "-q", "origin")

    steps = _steps(PR_WORKFLOW)
    env = {"BASE_REF": "main", "RUNNER_TEMP": str(tmp_path)}
    for step_id in ("validate", "render-check", "plan", "diff"):
        done = _run_step(steps[step_id], root, env)
        assert done.returncode == 0, (step_id, done.stdout, done.stderr)
    diff = (tmp_path / "diff.md").read_text()
    assert diff.startswith("### llmgen: changes against origin/main (")
    assert "| dev-aws-use2 | qwen2-5-32b-instruct-awq | removed |" in diff
    assert (tmp_path / "plan.md").read_text().strip()

    # A catalog change without its render fails the check with an annotation.
    env_file.write_text(env_file.read_text().replace("max: 2}", "max: 3}", 1))
    stale = _run_step(steps["render-check"], root, env)
    assert stale.returncode == 1
    assert "::error title=llmgen::generated/ is stale" in stale.stdout


def test_main_steps_commit_and_push(catalog_repo: tuple[Path, Path], tmp_path: Path) -> None:
    root, remote = catalog_repo
    env_file = root / "catalog/environments/dev.yaml"
    qwen = "    - name: qwen2-5-32b-instruct-awq\n      replicas: {min: 0, max: 1}\n"
    env_file.write_text(env_file.read_text().replace(qwen, ""))
    _git(root, "commit", "-q", "-am", "dev: drop qwen (merged without its render)")
    merged = _git(root, "rev-parse", "HEAD")

    steps = _steps(MAIN_WORKFLOW)
    for step_id in ("identity", "validate", "render", "commit"):
        done = _run_step(steps[step_id], root, {})
        assert done.returncode == 0, (step_id, done.stdout, done.stderr)
    pushed = _git(remote, "rev-parse", "refs/heads/main")
    assert _git(root, "rev-parse", "HEAD") == pushed
    assert _git(root, "rev-parse", f"{pushed}~1") == merged
    assert _git(root, "log", "-1", "--format=%an") == "llmgen"
    changed = _git(root, "diff", "--name-only", merged, pushed).splitlines()
    assert changed and all(p.startswith("generated/clusters/dev-aws-use2/") for p in changed)
    again = _run_step(steps["commit"], root, {})
    assert again.returncode == 0 and "nothing to commit" in again.stdout


def test_hooks_manifest_is_valid_and_its_entries_work(catalog_repo: tuple[Path, Path]) -> None:
    hooks = yaml.safe_load(HOOKS.read_text())
    try:
        from pre_commit.clientlib import load_manifest
    except ImportError:
        pass  # the structural checks below still run
    else:
        assert [h["id"] for h in load_manifest(str(HOOKS))] == [h["id"] for h in hooks]
    by_id = {h["id"]: h for h in hooks}
    assert {"llmgen-validate", "llmgen-render-check"} <= set(by_id)
    for hook in hooks:
        assert hook["pass_filenames"] is False  # the catalog is checked as a whole
        assert re.search(hook["files"], "catalog/models/bge-m3.yaml")
    assert not re.search(by_id["llmgen-validate"]["files"], "README.md")

    root, _remote = catalog_repo
    for hook_id in ("llmgen-validate", "llmgen-render-check"):
        done = subprocess.run(shlex.split(by_id[hook_id]["entry"]), cwd=root, capture_output=True)
        assert done.returncode == 0, (hook_id, done.stdout, done.stderr)
    env_file = root / "catalog/environments/dev.yaml"
    env_file.write_text(env_file.read_text().replace("max: 2}", "max: 3}", 1))
    entry = shlex.split(by_id["llmgen-render-check"]["entry"])
    assert subprocess.run(entry, cwd=root, capture_output=True).returncode == 1
    fix = shlex.split(by_id["llmgen-render"]["entry"])
    assert subprocess.run(fix, cwd=root, capture_output=True).returncode == 0
    assert subprocess.run(entry, cwd=root, capture_output=True).returncode == 0
