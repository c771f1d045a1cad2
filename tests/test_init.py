"""`llmgen init`: a new repository that validates, renders and verifies as it is."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from llmgen import __version__
from llmgen.cli.app import app
from llmgen.lifecycle.scaffold import FILES

REPO = Path(__file__).resolve().parents[1]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def kinds(folder: Path) -> set[tuple[str, str]]:
    """(kind, name) of every document rendered under `folder`."""
    found = set()
    for path in folder.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and "kind" in doc:
                found.add((doc["kind"], doc.get("metadata", {}).get("name", "")))
    return found


def test_init_then_validate_render_verify(tmp_path: Path, crd_schemas: Path) -> None:
    root = tmp_path / "new-repo"
    code, out = run("init", str(root))
    assert code == 0, out
    code, out = run("validate", "--root", str(root))
    assert code == 0, out
    assert "0 error(s), 0 warning(s)" in out
    code, out = run("render", "--root", str(root))
    assert code == 0, out
    clusters = sorted(p.name for p in (root / "generated" / "clusters").iterdir())
    assert clusters == ["dev-aws-use1", "dev-gcp-usc1"]  # one cluster per cloud
    for cluster in clusters:
        assert ("Deployment", "llama-3-1-8b-instruct") in kinds(
            root / "generated/clusters" / cluster
        )
    code, out = run("verify", "--root", str(root), "--crd-schemas", str(crd_schemas))
    findings = [line for line in out.splitlines() if line.startswith("generated/")]
    assert findings == [], out
    assert code == 0, out
    code, out = run("render", "--check", "--root", str(root))
    assert code == 0, out


def test_init_writes_the_repository_layout(tmp_path: Path) -> None:
    code, out = run("init", str(tmp_path))
    assert code == 0, out
    for rel in (
        "catalog/gpus.yaml",
        "catalog/platform.yaml",
        "catalog/environments/dev.yaml",
        "catalog/models/llama-3-1-8b-instruct.yaml",
        ".llmgen/schemas/model.schema.json",
        "overlays/README.md",
        ".gitignore",
        ".pre-commit-config.yaml",
        ".github/workflows/llmgen.yaml",
    ):
        assert (tmp_path / rel).is_file(), rel
    # Schemas and templates stay the installed llmgen's, so upgrades reach the repo.
    assert not (tmp_path / "schemas").exists() and not (tmp_path / "templates").exists()
    assert "/.llmgen/" in (tmp_path / ".gitignore").read_text().splitlines()
    # Editors read the git-ignored copy; every modeline resolves to a real file.
    for doc in sorted((tmp_path / "catalog").rglob("*.yaml")):
        first = doc.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), doc
        target = (doc.parent / first.split("=", 1)[1]).resolve()
        assert target.is_file() and ".llmgen/schemas" in target.as_posix(), doc
    workflow = yaml.safe_load((tmp_path / ".github/workflows/llmgen.yaml").read_text())
    steps = [s.get("run", "") for s in workflow["jobs"]["check"]["steps"]]
    assert 'python -m pip install "$LLMGEN_PACKAGE" "$KUBECTL_PACKAGE"' in steps
    assert "llmgen render --check" in steps
    hooks = yaml.safe_load((tmp_path / ".pre-commit-config.yaml").read_text())
    assert [h["id"] for h in hooks["repos"][0]["hooks"]] == [
        "llmgen-validate",
        "llmgen-render-check",
    ]
    # The editor's schemas are the installed llmgen's, byte for byte.
    for schema in (REPO / "schemas").glob("*.json"):
        assert (tmp_path / ".llmgen/schemas" / schema.name).read_bytes() == schema.read_bytes()


def test_eject_copies_and_validate_tells_when_the_copies_drift(tmp_path: Path) -> None:
    code, out = run("init", str(tmp_path))
    assert code == 0, out
    code, out = run("eject", "--root", str(tmp_path))
    assert code == 0, out
    assert out.startswith("copied ") and out.rstrip().endswith(f"of {tmp_path}")
    for schema in (REPO / "schemas").glob("*.json"):
        assert (tmp_path / "schemas" / schema.name).read_bytes() == schema.read_bytes()
    assert (tmp_path / "templates/flux/kustomization.yaml.j2").is_file()
    code, out = run("validate", "--root", str(tmp_path))
    assert (code, out) == (0, "OK: 0 error(s), 0 warning(s)\n")
    code, out = run("eject", "--root", str(tmp_path))
    assert code == 2 and f"{tmp_path / 'schemas'} exists; pass --force to replace it" in out

    template = tmp_path / "templates/flux/kustomization.yaml.j2"
    template.write_text(template.read_text() + "# ours\n")
    code, out = run("validate", "--root", str(tmp_path))
    assert code == 0
    assert out == (
        f"note: templates/ overrides llmgen {__version__}'s copy and differs from it "
        "(1 differ; e.g. templates/flux/kustomization.yaml.j2); llmgen uses yours. "
        "Delete templates/ to follow the installed llmgen, or 'llmgen eject --force' "
        "to take its copy again.\nOK: 0 error(s), 0 warning(s)\n"
    )
    code, out = run("eject", "--root", str(tmp_path), "--force")
    assert code == 0
    code, out = run("validate", "--root", str(tmp_path))
    assert (code, out) == (0, "OK: 0 error(s), 0 warning(s)\n")


def test_init_eject_copies_schemas_and_templates(tmp_path: Path) -> None:
    code, out = run("init", str(tmp_path), "--eject")
    assert code == 0, out
    assert (tmp_path / "schemas/model.schema.json").is_file()
    assert (tmp_path / "templates/flux/kustomization.yaml.j2").is_file()
    model = (tmp_path / "catalog/models/llama-3-1-8b-instruct.yaml").read_text()
    assert model.startswith("# yaml-language-server: $schema=../../schemas/model.schema.json\n")


def test_init_refuses_a_non_empty_folder_unless_forced(tmp_path: Path) -> None:
    mine = tmp_path / "notes.txt"
    mine.write_text("keep me\n")
    code, out = run("init", str(tmp_path))
    assert code == 2, out
    assert "not empty" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    code, out = run("init", str(tmp_path), "--force")
    assert code == 0, out
    assert mine.read_text() == "keep me\n"
    assert (tmp_path / "catalog" / "platform.yaml").is_file()
    # No scratch folder is left beside the target.
    assert not [p for p in tmp_path.parent.iterdir() if p.name.startswith(".llmgen-init-")]


def test_init_into_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    code, out = run("init", str(target))
    assert code == 2, out


@pytest.mark.parametrize("name", ["gpus.yaml"])
def test_scaffold_gpu_prices_match_the_shipped_catalog(name: str) -> None:
    # The scaffold's copy must not fall behind the maintained one.
    assert (FILES / "catalog" / name).read_bytes() == (REPO / "catalog" / name).read_bytes()


def test_scaffold_addon_versions_match_the_shipped_catalog() -> None:
    def addons(path: Path) -> object:
        return yaml.safe_load(path.read_text())["spec"]["addons"]

    shipped = addons(REPO / "catalog" / "platform.yaml")
    assert addons(FILES / "catalog" / "platform.yaml") == shipped


def test_init_json_reports_the_files_and_the_install_note(tmp_path: Path) -> None:
    import json

    code, out = run("init", str(tmp_path / "r"), "--format", "json")
    assert code == 0, out
    doc = json.loads(out)
    assert (doc["apiVersion"], doc["command"], doc["ok"]) == ("llmgen.io/report/v1", "init", True)
    assert ".github/workflows/llmgen.yaml" in doc["files"]
    assert doc["notes"] == [
        "set LLMGEN_PACKAGE in .github/workflows/llmgen.yaml to the llmgen repository "
        "and commit you vetted (the package index's 'llmgen' is another project)"
    ]
