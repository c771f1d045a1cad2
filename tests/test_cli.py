"""The CLI in process: exit codes and exact text for render, check, diff."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmgen.cli.app import app
from llmgen.render import pipeline
from llmgen.render.write import read_tree

runner = CliRunner()


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted((root / "generated").rglob("*"))
        if p.is_file()
    }


def test_render_then_check_is_clean(scratch_repo: Path) -> None:
    result = runner.invoke(app, ["render", "--root", str(scratch_repo)])
    assert result.exit_code == 0, result.output
    assert "rendered" in result.stdout and "added, 0 changed, 0 removed" in result.stdout
    result = runner.invoke(app, ["render", "--check", "--root", str(scratch_repo)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("generated/ is up to date (")
    result = runner.invoke(app, ["render", "--root", str(scratch_repo)])
    assert result.stdout.strip().endswith("generated/ is up to date (inputs unchanged)")


def test_check_fails_after_a_catalog_edit_and_names_the_stale_files(scratch_repo: Path) -> None:
    pipeline.render(scratch_repo)
    model = scratch_repo / "catalog" / "models" / "bge-m3.yaml"
    model.write_text(model.read_text().replace("cpu: 4", "cpu: 5"))
    result = runner.invoke(app, ["render", "--check", "--root", str(scratch_repo)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "generated/ is stale; run 'llmgen render':"
    assert "  changed: generated/clusters/prod-aws-use1/models/bge-m3/bge-m3.yaml" in lines
    # No other model's file is touched (gateway-wide files may be: they route
    # every model of the environment).
    others = [x for x in lines[1:] if "/models/" in x and "bge-m3" not in x]
    assert not others


def test_invalid_catalog_exits_1_with_a_located_error_and_leaves_generated_alone(
    scratch_repo: Path,
) -> None:
    pipeline.render(scratch_repo)
    before = _snapshot(scratch_repo)
    model = scratch_repo / "catalog" / "models" / "bge-m3.yaml"
    model.write_text(model.read_text().replace("gpuCount: 1", "gpuCount: one"))
    for args in (["render"], ["render", "--check"], ["diff"]):
        result = runner.invoke(app, [*args, "--root", str(scratch_repo)])
        assert result.exit_code == 1, (args, result.output)
        assert "catalog/models/bge-m3.yaml:" in result.stdout
        assert "spec.resources.gpuCount" in result.stdout
        assert "Traceback" not in result.output
    assert _snapshot(scratch_repo) == before


def test_diff_lists_resources_then_a_unified_diff(scratch_repo: Path) -> None:
    pipeline.render(scratch_repo)
    model = scratch_repo / "catalog" / "models" / "bge-m3.yaml"
    model.write_text(model.read_text().replace("cpu: 4", "cpu: 5"))
    result = runner.invoke(app, ["diff", "--cluster", "dev-aws-use2", "--root", str(scratch_repo)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "dev-aws-use2: changed Deployment/llm-bge-m3/bge-m3" in out
    # Resources are compared as documents: the model's other resources share
    # the file but did not change.
    assert "ServiceAccount/llm-bge-m3/bge-m3" not in out
    assert "prod-aws-use1" not in out
    assert '-              cpu: "4"' in out and '+              cpu: "5"' in out
    md = runner.invoke(app, ["diff", "--format", "markdown", "--root", str(scratch_repo)]).stdout
    assert md.startswith("### llmgen diff")
    assert "| changed | `Deployment/llm-bge-m3/bge-m3` |" in md


def test_render_one_environment_keeps_the_other_clusters(scratch_repo: Path) -> None:
    pipeline.render(scratch_repo)
    before = read_tree(scratch_repo)
    for path in (scratch_repo / "catalog" / "models").glob("*.yaml"):
        path.write_text(path.read_text().replace("cooldownSeconds: 300", "cooldownSeconds: 301"))
    model = scratch_repo / "catalog" / "models" / "bge-m3.yaml"
    model.write_text(model.read_text().replace("cpu: 4", "cpu: 5"))
    result = runner.invoke(app, ["render", "--env", "dev", "--root", str(scratch_repo)])
    assert result.exit_code == 0, result.output
    after = read_tree(scratch_repo)
    changed = {p for p in after if after[p] != before.get(p)}
    assert changed and all(p.startswith("generated/clusters/dev-aws-use2/") for p in changed)
    assert after.keys() == before.keys()


def test_unknown_environment_is_a_usage_error_with_a_suggestion(scratch_repo: Path) -> None:
    result = runner.invoke(app, ["render", "--env", "prdo", "--root", str(scratch_repo)])
    assert result.exit_code == 2
    assert "no environment named 'prdo'; did you mean 'prod'?" in result.output


def test_a_bug_exits_3_without_a_traceback(
    scratch_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "render", broken)
    result = runner.invoke(app, ["render", "--root", str(scratch_repo)])
    assert result.exit_code == 3
    assert "internal error: RuntimeError: boom" in result.output
    assert "Traceback" not in result.output


def test_validate_github_format_annotates_the_line(scratch_repo: Path) -> None:
    model = scratch_repo / "catalog" / "models" / "bge-m3.yaml"
    model.write_text(model.read_text().replace("gpuCount: 1", "gpuCount: one"))
    result = runner.invoke(app, ["validate", "--format", "github", "--root", str(scratch_repo)])
    assert result.exit_code == 1
    line = next(x for x in result.stdout.splitlines() if "gpuCount" in x)
    assert line.startswith("::error file=catalog/models/bge-m3.yaml,line=")


def test_no_catalog_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "has no catalog/ folder" in result.output


def test_a_credential_in_the_catalog_is_refused_at_its_line(scratch_repo: Path) -> None:
    pipeline.render(scratch_repo)
    before = _snapshot(scratch_repo)
    env = scratch_repo / "catalog" / "environments" / "dev.yaml"
    fake_key = "AKIA" + "IOSFODNN7EXAMPLE"  # AWS's documented example key id
    env.write_text(
        env.read_text().replace(
            "  requirePinned: false\n",
            "  requirePinned: false\n  config:\n    LOG_LEVEL: info\n"
            f"    S3_ACCESS_KEY_ID: {fake_key}\n",
        )
    )
    result = runner.invoke(app, ["render", "--root", str(scratch_repo)])
    assert result.exit_code == 1, result.output
    line = next(x for x in result.stdout.splitlines() if "S3_ACCESS_KEY_ID" in x)
    assert line.startswith("catalog/environments/dev.yaml:")
    assert "spec.config.S3_ACCESS_KEY_ID" in line and "looks like an AWS access key ID" in line
    assert fake_key not in result.output
    assert _snapshot(scratch_repo) == before


def test_verify_finds_a_credential_written_into_generated(
    scratch_repo: Path, crd_schemas: Path
) -> None:
    pipeline.render(scratch_repo)
    target = (
        scratch_repo
        / "generated"
        / "clusters"
        / "dev-aws-use2"
        / "models"
        / "bge-m3"
        / "bge-m3.yaml"
    )
    fake_key = "AKIA" + "IOSFODNN7EXAMPLE"
    target.write_text(target.read_text() + f"# pasted by hand: {fake_key}\n")
    args = [
        "verify",
        "--no-kustomize",
        "--crd-schemas",
        str(crd_schemas),
        "--root",
        str(scratch_repo),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "generated/clusters/dev-aws-use2/models/bge-m3/bge-m3.yaml:" in result.stdout
    assert "AWS access key ID" in result.stdout
    assert fake_key not in result.output


def test_verify_also_scans_files_that_are_not_yaml(scratch_repo: Path, crd_schemas: Path) -> None:
    pipeline.render(scratch_repo)
    fake_key = "AKIA" + "IOSFODNN7EXAMPLE"
    (scratch_repo / "generated" / "notes.txt").write_text(f"key {fake_key}\n")
    args = ["verify", "--no-kustomize", "--crd-schemas", str(crd_schemas)]
    result = runner.invoke(app, [*args, "--root", str(scratch_repo)])
    assert result.exit_code == 1, result.output
    assert "generated/notes.txt:1:" in result.stdout and fake_key not in result.output
