"""CLI conventions: eager --version, --format choices, SARIF, the JSON envelope,
shell completion of catalog names (issue 17). In process through CliRunner."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import llmgen.catalog.load as load
from llmgen import __version__
from llmgen.cli.main import app
from llmgen.verify.kustomize import find_kubectl

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def test_version_works_without_a_subcommand() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    # The real kubectl, asked independently, and kubernetes-validate's data folder.
    client = json.loads(
        subprocess.run(
            [str(find_kubectl()), "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    import kubernetes_validate

    folders = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    minors = sorted(
        {tuple(int(x) for x in f.name[1:].split("-")[0].split(".")[:2]) for f in folders.iterdir()}
    )
    from importlib.metadata import version

    assert result.output == (
        f"llmgen {__version__} (catalog llmgen.io/v1alpha1)\n"
        f"kubectl: {client['clientVersion']['gitVersion']}\n"
        f"kustomize: {client['kustomizeVersion']}\n"
        f"schemas: Kubernetes {'.'.join(map(str, minors[0]))} to "
        f"{'.'.join(map(str, minors[-1]))} (kubernetes-validate {version('kubernetes-validate')})\n"
    )
    # Eager: it wins over a subcommand and its missing options too.
    assert runner.invoke(app, ["--version", "secrets", "check"]).output == result.output


@pytest.mark.parametrize(
    "argv",
    [
        ["validate"],
        ["render"],
        ["render", "--check"],
        ["diff"],
        ["verify"],
        ["commit"],
        ["plan"],
        ["status"],
        ["secrets", "check", "--env", "dev"],
        ["deploy", "bge-m3", "--env", "dev"],
        ["stop", "--env", "dev"],
    ],
    ids=" ".join,
)
def test_an_unknown_format_is_a_usage_error(argv: list[str], scratch_repo: Path) -> None:
    result = runner.invoke(app, [*argv, "--root", str(scratch_repo), "--format", "xml"])
    assert result.exit_code == 2, result.output
    # Newer typer (its own click) prefixes "Value error, "; the choices are the same.
    last = result.output.splitlines()[-1].replace("Value error, ", "")
    assert last.startswith("Error: Invalid value for '--format': 'xml' is not one of '")


def _break_bge(root: Path) -> None:
    model = root / "catalog" / "models" / "bge-m3.yaml"
    model.write_text(model.read_text().replace("  task: embed\n", "  task: embedd\n"))


def test_validate_sarif_locates_each_problem(scratch_repo: Path) -> None:
    _break_bge(scratch_repo)
    result = runner.invoke(app, ["validate", "--root", str(scratch_repo), "--format", "sarif"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["version"] == "2.1.0"
    assert doc["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    (run,) = doc["runs"]
    assert run["tool"]["driver"] == {
        "name": "llmgen",
        "version": __version__,
        "rules": [{"id": "llmgen/validate", "name": "validate"}],
    }
    errors = [r for r in run["results"] if r["level"] == "error"]
    assert errors == [
        {
            "ruleId": "llmgen/validate",
            "level": "error",
            "message": {"text": errors[0]["message"]["text"]},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": "catalog/models/bge-m3.yaml"},
                        "region": {"startLine": 8, "startColumn": 9},
                    }
                }
            ],
        }
    ]
    assert errors[0]["message"]["text"].startswith("spec.task: ")
    assert "'embedd'" in errors[0]["message"]["text"]


def _envelope(output: str, command: str, ok: bool) -> dict[str, object]:
    doc = json.loads(output)
    assert {k: doc[k] for k in ("apiVersion", "tool", "version", "command", "ok")} == {
        "apiVersion": "llmgen.io/report/v1",
        "tool": "llmgen",
        "version": __version__,
        "command": command,
        "ok": ok,
    }
    return doc  # type: ignore[no-any-return]


def test_every_reporting_command_prints_the_envelope(scratch_repo: Path) -> None:
    root = ["--root", str(scratch_repo), "--format", "json"]
    doc = _envelope(runner.invoke(app, ["validate", *root]).stdout, "validate", True)
    # The shipped prod budget caps the 70B model: the budget and its entry warn.
    assert doc["summary"] == "OK: 0 error(s), 2 warning(s)"
    assert len(doc["diagnostics"]) == 2

    done = runner.invoke(app, ["render", *root])
    doc = _envelope(done.stdout, "render", True)
    assert done.exit_code == 0 and doc["noop"] is False and doc["changed"] == []
    assert doc["added"] and doc["removed"] == []

    fresh = runner.invoke(app, ["render", "--check", *root])
    doc = _envelope(fresh.stdout, "render", True)
    assert fresh.exit_code == 0 and (doc["added"], doc["changed"], doc["removed"]) == ([], [], [])

    _break_bge(scratch_repo)
    bad = runner.invoke(app, ["render", "--check", *root])
    assert bad.exit_code == 1
    diags: list[dict[str, object]] = _envelope(bad.stdout, "render", False)["diagnostics"]  # type: ignore[assignment]
    (diag,) = [d for d in diags if d["severity"] == "error"]
    assert (diag["file"], diag["line"], diag["path"]) == (
        "catalog/models/bge-m3.yaml",
        8,
        "spec.task",
    )

    model = scratch_repo / "catalog" / "models" / "bge-m3.yaml"
    model.write_text(model.read_text().replace("  task: embedd\n", "  task: embed\n"))
    model.write_text(model.read_text().replace("cpu: 4", "cpu: 5"))
    stale = runner.invoke(app, ["render", "--check", *root])
    assert stale.exit_code == 1
    doc = _envelope(stale.stdout, "render", False)
    assert doc["changed"] and doc["added"] == [] and doc["removed"] == []

    diff = runner.invoke(app, ["diff", *root])
    doc = _envelope(diff.stdout, "diff", True)
    assert diff.exit_code == 0
    changes: list[dict[str, str]] = doc["changes"]  # type: ignore[assignment]
    assert {c["change"] for c in changes} == {"changed"}
    assert {c["kind"] for c in changes} == {"Deployment"}
    assert all(set(c) == {"cluster", "change", "kind", "namespace", "name"} for c in changes)
    assert str(doc["unified_diff"]).startswith("--- ")

    dry = runner.invoke(app, ["stop", "--env", "dev", "--dry-run", *root])
    doc = _envelope(dry.stdout, "stop", True)
    assert dry.exit_code == 0
    assert (doc["changed"], doc["written"], doc["paths"]) == (
        True,
        False,
        ["catalog/environments/dev.yaml"],
    )
    assert "+  suspended: true" in str(doc["diff"])

    plan = runner.invoke(app, ["plan", *root])
    assert "environments" in _envelope(plan.stdout, "plan", True)


def test_completion_offers_catalog_names(
    scratch_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(scratch_repo / "catalog")

    def complete(words: str) -> list[str]:
        env = {
            "_LLMGEN_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split(" ")) - 1),
        }
        result = runner.invoke(app, [], env=env, prog_name="llmgen")
        assert result.exit_code == 0, result.output
        return result.output.split()

    assert complete("llmgen render --env ") == ["dev", "prod", "staging"]
    assert complete("llmgen stop --env dev --cluster prod") == [
        "prod-aws-use1",
        "prod-aws-usw2",
        "prod-gcp-euw4",
        "prod-gcp-usc1",
    ]
    assert complete("llmgen deploy bge") == ["bge-m3"]
    installed = runner.invoke(app, ["--show-completion", "bash"], prog_name="llmgen")
    assert installed.exit_code == 0 and "_LLMGEN_COMPLETE=complete_bash" in installed.output


def test_loader_without_libyaml_reads_the_same_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, problems = load.load_catalog(REPO)
    assert problems == []
    monkeypatch.setattr(load, "_LOADER", yaml.SafeLoader)
    slow, problems = load.load_catalog(REPO)
    assert problems == []
    assert [(d.file, d.data) for d in slow] == [(d.file, d.data) for d in fast]
    assert [d.locate(("spec",)) for d in slow] == [d.locate(("spec",)) for d in fast]
