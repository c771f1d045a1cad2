"""Cluster versions are honoured: by validate (features rendered) and by verify (schemas).

`RENDERED_FEATURES` is checked against a real render (each listed field is
rendered: the shipped catalog, with bge-m3 on a vLLM that drains itself so its
preStop is a plain sleep) and the strict schemas kubernetes-validate ships per
Kubernetes minor (the field is unknown to the oldest shipped minor and known
from its `since` minor; the model documents hold nothing newer than the table
says). verify picks each cluster's schemas from its catalog version.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from llmgen.catalog.rules_versions import RENDERED_FEATURES, Feature
from llmgen.catalog.validate import validate
from llmgen.cli import app
from llmgen.verify.runner import catalog_facts, verify_tree
from llmgen.verify.schemas import SchemaStore, schema_errors

REPO = Path(__file__).resolve().parents[1]
OLDEST_SHIPPED = "1.25"


BGE = "catalog/models/bge-m3.yaml"
V011, V018 = "vllm/vllm-openai:v0.11.0@", "vllm/vllm-openai:v0.18.0@"


def on_v018(root: Path) -> None:
    """bge-m3 on vLLM 0.18 (same digest form): its pods drain themselves, preStop sleeps."""
    path = root / BGE
    path.write_text(path.read_text().replace(V011, V018))


@pytest.fixture(scope="module")
def model_docs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], ...]:
    root = tmp_path_factory.mktemp("render") / "repo"
    root.mkdir()
    for name in ("catalog", "templates", "schemas", "overlays"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, root / name)
    on_v018(root)
    result = CliRunner().invoke(app, ["render", "--root", str(root)])
    assert result.exit_code == 0, result.output
    docs: list[Any] = []
    for path in sorted((root / "generated" / "clusters").glob("*/models/*/*.yaml")):
        docs += yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader)
    return tuple(d for d in docs if isinstance(d, dict))


def rendered(docs: tuple[dict[str, Any], ...], kind: str) -> Iterator[dict[str, Any]]:
    return (d for d in docs if d.get("kind") == kind)


def has(node: Any, path: tuple[str, ...]) -> bool:
    if not path:
        return True
    head, rest = path[0], path[1:]
    if head == "*":
        return isinstance(node, list) and any(has(item, rest) for item in node)
    return isinstance(node, dict) and head in node and has(node[head], rest)


@functools.cache
def _store(version: str, crd_schemas: Path) -> SchemaStore:
    return SchemaStore(crd_schemas, version)


def _errors(version: str, doc: dict[str, Any], crd_schemas: Path) -> list[str]:
    store = _store(version, crd_schemas)
    validator = store.validator(doc["apiVersion"], doc["kind"])
    assert validator is not None
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in schema_errors(validator, doc)]


@pytest.mark.parametrize("feature", RENDERED_FEATURES, ids=lambda f: f.name)
def test_each_listed_field_is_rendered_and_versioned(
    feature: Feature, crd_schemas: Path, model_docs: tuple[dict[str, Any], ...]
) -> None:
    doc = next(d for d in rendered(model_docs, feature.kind) if has(d, feature.path))
    field = feature.path[-1]
    # Unknown to the oldest minor kubernetes-validate ships ...
    assert any(f'unknown field "{field}"' in e for e in _errors(OLDEST_SHIPPED, doc, crd_schemas))
    # ... and known from the minor the table says it works in.
    since = f"{feature.since[0]}.{feature.since[1]}"
    assert _errors(since, doc, crd_schemas) == []


def test_nothing_newer_than_the_table_is_rendered(
    crd_schemas: Path, model_docs: tuple[dict[str, Any], ...]
) -> None:
    newest = max(f.since for f in RENDERED_FEATURES)
    version = f"{newest[0]}.{newest[1]}"
    for kind in ("Deployment", "PodDisruptionBudget", "Service", "ServiceAccount", "Namespace"):
        docs = list(rendered(model_docs, kind))
        assert docs, kind
        for doc in docs:
            assert _errors(version, doc, crd_schemas) == [], (kind, doc["metadata"]["name"])


def test_validate_refuses_a_cluster_older_than_the_rendered_fields(scratch_repo: Path) -> None:
    # A GKE cluster: EKS clusters with GPU pools need 1.30 anyway, for gpu-readiness's
    # admission policy (rules_names.readiness_kubernetes), whatever the models render.
    path = scratch_repo / "catalog/clusters/staging-gcp-usc1.yaml"
    path.write_text(
        path.read_text().replace('kubernetesVersion: "1.33"', 'kubernetesVersion: "1.29"')
    )
    # vLLM 0.11 pods drain with an exec hook: nothing rendered for them needs 1.30.
    assert validate(scratch_repo).ok
    on_v018(scratch_repo)
    assert [str(d) for d in validate(scratch_repo).errors] == [
        "catalog/clusters/staging-gcp-usc1.yaml:9:22: spec.kubernetesVersion: Kubernetes 1.29 is "
        "older than the fields llmgen renders for the models on 'staging-gcp-usc1' (1.30 or "
        "newer): "
        "lifecycle.preStop.sleep needs 1.30 (feature gate PodLifecycleSleepAction: alpha (off) "
        "in 1.29, on by default from 1.30 (KEP-3960)); an older API server drops them silently"
    ]
    path.write_text(path.read_text().replace('"1.29"', '"1.26"'))
    (error,) = validate(scratch_repo).errors
    assert "PodDisruptionBudget spec.unhealthyPodEvictionPolicy needs 1.27" in error.message
    path.write_text(path.read_text().replace('"1.26"', '"1.30"'))
    assert validate(scratch_repo).ok


def test_verify_checks_each_cluster_against_its_own_version(
    scratch_repo: Path, crd_schemas: Path
) -> None:
    shutil.copytree(REPO / "generated", scratch_repo / "generated")
    path = scratch_repo / "catalog/clusters/dev-aws-use2.yaml"
    path.write_text(
        path.read_text().replace('kubernetesVersion: "1.33"', 'kubernetesVersion: "1.25"')
    )
    # --kubernetes-version overrides every cluster's: the baseline at 1.33.
    facts = catalog_facts(scratch_repo)
    forced = verify_tree(
        scratch_repo, crd_schemas, kubernetes_version="1.33", kustomize=False, clusters=facts
    )
    assert forced.kubernetes_schemas == "1.33"
    report = verify_tree(scratch_repo, crd_schemas, kustomize=False, clusters=facts)
    assert report.kubernetes_schemas == "1.25, 1.33"
    extra = {str(d) for d in report.diagnostics if d.is_error} - {
        str(d) for d in forced.diagnostics if d.is_error
    }
    # Only dev-aws-use2's folder is checked against 1.25, and its model PDBs'
    # unhealthyPodEvictionPolicy is unknown there (see RENDERED_FEATURES).
    assert extra and all(e.startswith("generated/clusters/dev-aws-use2/") for e in extra)
    assert any(
        e.startswith("generated/clusters/dev-aws-use2/models/")
        and 'unknown field "unhealthyPodEvictionPolicy"' in e
        for e in extra
    )


def test_a_malformed_kubernetes_version_option_is_a_usage_error(crd_schemas: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "verify",
            "--root",
            str(REPO),
            "--crd-schemas",
            str(crd_schemas),
            "--kubernetes-version",
            "latest",
            "--no-kustomize",
        ],
    )
    assert result.exit_code == 2
    assert "not a Kubernetes version" in result.output
