"""`llmgen verify` with several CRD schema folders (`--crd-schemas` repeated,
or LLMGEN_CRD_SCHEMAS separated like PATH): a kind's schema, and the CEL rules
in it, come from the first folder that has the kind at that version.

A repository keeps the schemas a shared catalog lacks (or corrects) in a folder
of its own and lists it first; the shared folder is ../shared/crd-schemas.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmgen.cli.main import app
from llmgen.verify.runner import verify_documents
from llmgen.verify.schemas import crd_folders_from_env

FIXTURE = Path(__file__).parent / "fixtures" / "verify" / "valid"
MODEL = "generated/clusters/c1/models/llama.yaml"
WIDGET: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"size": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.size <= 4", "message": "at most 4"}],
        },
    },
}
runner = CliRunner()


@pytest.fixture
def extra(tmp_path: Path, crd_schemas: Path) -> Path:
    """A repository's own folder: one kind the shared folder lacks, and KEDA's
    ScaledObject with a tighter maxReplicaCount than the shared schema."""
    folder = tmp_path / "crd-schemas"
    (folder / "example.com").mkdir(parents=True)
    (folder / "example.com" / "widget_v1.json").write_text(json.dumps(WIDGET))
    shared = json.loads((crd_schemas / "keda.sh" / "scaledobject_v1alpha1.json").read_text())
    shared["properties"]["spec"]["properties"]["maxReplicaCount"]["maximum"] = 2
    (folder / "keda.sh").mkdir()
    (folder / "keda.sh" / "scaledobject_v1alpha1.json").write_text(json.dumps(shared))
    return folder


def widget(spec: dict[str, Any]) -> tuple[str, int, dict[str, Any]]:
    data = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    return ("w.yaml", 1, {**data, "spec": spec})


def scaled(max_replicas: int) -> tuple[str, int, dict[str, Any]]:
    data = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "llama", "namespace": "llm"},
        "spec": {
            "scaleTargetRef": {"name": "llama"},
            "maxReplicaCount": max_replicas,
            "triggers": [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}}],
        },
    }
    return ("s.yaml", 1, data)


def test_a_kind_only_the_second_folder_has_is_checked_with_its_schema_and_rules(
    extra: Path, crd_schemas: Path
) -> None:
    docs = [widget({"size": 2, "colour": "red"}), widget({"size": 8}), scaled(1)]
    assert [str(d) for d in verify_documents(docs, [crd_schemas, extra])] == [
        'w.yaml:1:1: Widget/w: spec: unknown field "colour"',
        "w.yaml:1:1: Widget/w: spec: at most 4 (CRD rule `self.size <= 4`)",
    ]
    missing = "w.yaml:1:1: Widget/w: no schema for example.com/v1 Widget; add it to --crd-schemas"
    assert [str(d) for d in verify_documents(docs, [crd_schemas])] == [missing, missing]


def test_the_first_folder_that_has_a_kind_wins(extra: Path, crd_schemas: Path) -> None:
    docs = [scaled(4)]
    assert [str(d) for d in verify_documents(docs, [extra, crd_schemas])] == [
        "s.yaml:1:1: ScaledObject/llm/llama: spec.maxReplicaCount: 4 is greater than the "
        "maximum of 2"
    ]
    assert verify_documents(docs, [crd_schemas, extra]) == []


def test_the_environment_variable_lists_folders_like_path() -> None:
    value = os.pathsep.join(["a", "", "b c", " "])
    assert crd_folders_from_env(value) == [Path("a"), Path("b c")]
    assert crd_folders_from_env("") == []


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(FIXTURE, root)
    (root / "catalog").mkdir()
    return root


def test_cli_takes_several_folders_from_options_or_the_environment(
    tree: Path, extra: Path, crd_schemas: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fixture's ScaledObject asks maxReplicaCount 4: refused by `extra`'s schema."""
    verify = ["verify", "--no-kustomize", "--root", str(tree)]
    finding = (
        f"{MODEL}:74:20: ScaledObject/llm-llama/llama: spec.maxReplicaCount: 4 is greater "
        "than the maximum of 2"
    )
    monkeypatch.setenv("LLMGEN_CRD_SCHEMAS", os.pathsep.join([str(extra), "", str(crd_schemas)]))
    result = runner.invoke(app, verify)
    assert result.exit_code == 1 and finding in result.stdout, result.output
    # Options replace the variable; their order is the precedence.
    both = ["--crd-schemas", str(crd_schemas), "--crd-schemas", str(extra)]
    result = runner.invoke(app, [*verify, *both])
    assert result.exit_code == 0, result.output
    monkeypatch.delenv("LLMGEN_CRD_SCHEMAS")
    result = runner.invoke(app, [*verify, "--crd-schemas", str(tree / "missing")])
    assert result.exit_code == 2 and "is not a folder" in result.output
    result = runner.invoke(app, verify)
    assert result.exit_code == 2 and "LLMGEN_CRD_SCHEMAS" in result.output
