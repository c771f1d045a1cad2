"""Hostile and unlucky catalog input (issue 21): refused at its line, never rendered.

Each test reproduces a failure found by an attack pass: symlinks out of the
repository, NaN and infinity, reserved and capturing names, canary images
that skip the reference grammar, and credentials echoed in messages.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmgen.catalog.validate import validate
from llmgen.errors import CatalogError
from llmgen.render import pipeline
from llmgen.render.write import GENERATED

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "tools")}

# Credential-shaped test values, assembled so no scanner mistakes this file for a leak.
AWS_KEY = "AKIA" + "Q3EGZX7VJ2LMN4PR"
HF_TOKEN = "hf_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z"
HF_ORG = "api_org_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z"
OPENAI_KEY = "sk-" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zT3BlbkFJ"
OPENAI_PROJ = "sk-proj-" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z_aB3dE5fG7h-J9kL1m"
GITHUB_TOKEN = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
PASSWORD_URL = "https://deploy:" + "hunter2hunter2" + "@git.example.com/org/repo.git"


def _llmgen(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmgen", *args, "--root", str(root)],
        env=ENV,
        capture_output=True,
        text=True,
    )


def _edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new, 1))


def _line_of(root: Path, rel: str, needle: str) -> int:
    lines = (root / rel).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def _errors(root: Path) -> list[str]:
    return [str(d) for d in validate(root).errors]


# ------------------------------------------------------------------ symlinks


def test_a_catalog_symlink_out_of_the_repo_is_refused_located(
    scratch_repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text((scratch_repo / "catalog/models/bge-m3.yaml").read_text())
    (scratch_repo / "catalog/models/bge-m3.yaml").unlink()
    (scratch_repo / "catalog/models/bge-m3.yaml").symlink_to(outside)
    errors = _errors(scratch_repo)
    assert any(
        e.startswith("catalog/models/bge-m3.yaml:1:1:") and "outside the repository" in e
        for e in errors
    ), errors


def test_an_overlay_symlink_out_of_the_repo_is_refused_located(
    scratch_repo: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret-dir"
    secret.mkdir()
    (secret / "kustomization.yaml").write_text("resources: []\n")
    (scratch_repo / "overlays/prod/leak").symlink_to(secret, target_is_directory=True)
    result = _llmgen(scratch_repo, "render")
    assert result.returncode == 1, result.stderr
    assert "overlays/prod/leak:1:1:" in result.stdout + result.stderr
    assert not (scratch_repo / GENERATED).exists()


def test_a_symlink_inside_the_repo_is_fine(scratch_repo: Path) -> None:
    (scratch_repo / "overlays/shared").mkdir()
    (scratch_repo / "overlays/prod/shared").symlink_to("../shared", target_is_directory=True)
    assert _errors(scratch_repo) == []


# ------------------------------------------------------------------ numbers


@pytest.mark.parametrize("value", [".nan", ".NaN", ".inf", "-.inf", "+.Inf"])
def test_nan_and_infinity_are_refused_at_their_line(scratch_repo: Path, value: str) -> None:
    rel = "catalog/models/bge-m3.yaml"
    _edit(scratch_repo, rel, "queueLength: 32", f"queueLength: {value}")
    line = _line_of(scratch_repo, rel, "queueLength:")
    result = _llmgen(scratch_repo, "validate")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{rel}:{line}:20: spec.scaling.targets.queueLength:" in result.stdout
    assert "finite" in result.stdout


def test_model_new_refuses_a_nan_flag(scratch_repo: Path) -> None:
    result = _llmgen(
        scratch_repo,
        "model",
        "new",
        "tiny-model",
        "--from-hf",
        "org/Tiny-1B",
        "--revision",
        "0" * 40,
        "--gpu",
        "L4",
        "--params-b",
        "nan",
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--params-b" in result.stderr and "finite" in result.stderr
    assert not (scratch_repo / "catalog/models/tiny-model.yaml").exists()


# ------------------------------------------------------------------ reserved names


def test_a_model_named_kustomization_is_refused_at_its_name(scratch_repo: Path) -> None:
    src = scratch_repo / "catalog/models/bge-m3.yaml"
    text = src.read_text().replace("name: bge-m3", "name: kustomization", 1)
    (scratch_repo / "catalog/models/kustomization.yaml").write_text(text)
    _edit(scratch_repo, "catalog/environments/dev.yaml", "- name: bge-m3", "- name: kustomization")
    errors = _errors(scratch_repo)
    assert any(
        e.startswith("catalog/models/kustomization.yaml:6:9: metadata.name:") and "reserved" in e
        for e in errors
    ), errors


def test_an_addon_named_kustomization_is_refused_at_its_key(scratch_repo: Path) -> None:
    _edit(
        scratch_repo,
        "catalog/platform.yaml",
        "    keda:\n",
        "    kustomization:\n      chart: x\n      repository: https://charts.example.com\n"
        "      version: 1.0.0\n    keda:\n",
    )
    line = _line_of(scratch_repo, "catalog/platform.yaml", "kustomization:")
    errors = _errors(scratch_repo)
    assert any(
        e.startswith(f"catalog/platform.yaml:{line}:5: spec.addons.kustomization:")
        and "reserved" in e
        for e in errors
    ), errors


# ------------------------------------------------------------------ canary grammar


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("image", "vllm/vllm-openai:v0.11.1 --privileged"),
        ("image", "UPPER/case:tag"),
        ("revision", "main; rm -rf /"),
        ("revision", "-rf"),
    ],
)
def test_canary_image_and_revision_follow_the_model_grammar(
    scratch_repo: Path, key: str, value: str
) -> None:
    _edit(
        scratch_repo,
        "catalog/environments/dev.yaml",
        "    - name: bge-m3\n      replicas: {min: 1, max: 1}\n",
        f"    - name: bge-m3\n      replicas: {{min: 1, max: 1}}\n"
        f"      canary:\n        {key}: '{value}'\n",
    )
    line = _line_of(scratch_repo, "catalog/environments/dev.yaml", f"{key}: '")
    errors = _errors(scratch_repo)
    assert any(
        e.startswith(f"catalog/environments/dev.yaml:{line}:") and f"canary.{key}:" in e
        for e in errors
    ), errors


# ------------------------------------------------------------------ routes


@pytest.mark.parametrize(
    ("prefix", "why"),
    [
        ("/v1", "/v1/"),
        ("/v1/chat", "/v1/chat/completions"),
        ("/v1/embeddings", "/v1/embeddings"),
        ("/v1/models", "/v1/models"),
    ],
)
def test_a_route_prefix_cannot_capture_another_route(
    scratch_repo: Path, prefix: str, why: str
) -> None:
    rel = "catalog/models/bge-m3.yaml"
    _edit(scratch_repo, rel, "routePrefix: /v1/bge-m3", f"routePrefix: {prefix}")
    line = _line_of(scratch_repo, rel, "routePrefix:")
    errors = _errors(scratch_repo)
    assert any(
        e.startswith(f"{rel}:{line}:") and "spec.serving.routePrefix" in e and why in e
        for e in errors
    ), errors


def test_a_route_captured_by_another_model_is_refused(scratch_repo: Path) -> None:
    # The other way round: bge-m3's own route is under another model's prefix.
    _edit(
        scratch_repo,
        "catalog/models/llama-3-1-8b-instruct.yaml",
        "routePrefix: /v1/llama-3.1-8b",
        "routePrefix: /v1/team",
    )
    rel = "catalog/models/bge-m3.yaml"
    _edit(scratch_repo, rel, "routePrefix: /v1/bge-m3", "routePrefix: /v1/team/bge")
    line = _line_of(scratch_repo, "catalog/models/llama-3-1-8b-instruct.yaml", "routePrefix:")
    errors = _errors(scratch_repo)
    assert any(
        e.startswith(f"catalog/models/llama-3-1-8b-instruct.yaml:{line}:")
        and "captures model 'bge-m3'" in e
        for e in errors
    ), errors


# ------------------------------------------------------------------ credentials


@pytest.mark.parametrize(
    "value", [AWS_KEY, HF_TOKEN, HF_ORG, OPENAI_KEY, OPENAI_PROJ, GITHUB_TOKEN]
)
def test_schema_errors_never_echo_a_credential(scratch_repo: Path, value: str) -> None:
    rel = "catalog/models/bge-m3.yaml"
    _edit(scratch_repo, rel, "parametersB: 0.57", f"parametersB: {value}")
    result = _llmgen(scratch_repo, "validate")
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert value not in out and value[:12] not in out, out
    line = _line_of(scratch_repo, rel, "parametersB:")
    assert f"{rel}:{line}:16: spec.parametersB:" in out


@pytest.mark.parametrize(
    "value", [AWS_KEY, HF_TOKEN, HF_ORG, OPENAI_KEY, OPENAI_PROJ, GITHUB_TOKEN, PASSWORD_URL]
)
def test_validate_runs_the_credential_guard(scratch_repo: Path, value: str) -> None:
    rel = "catalog/models/bge-m3.yaml"
    note = f"kind: Model\nmetadata:\n  annotations:\n    note: '{value}'\n"
    _edit(scratch_repo, rel, "kind: Model\nmetadata:\n", note)
    result = _llmgen(scratch_repo, "validate")
    assert result.returncode == 1, result.stdout
    out = result.stdout + result.stderr
    assert f"{rel}:7:11: metadata.annotations.note:" in out, out
    assert value not in out


@pytest.mark.parametrize(
    ("rel", "old", "new"),
    [
        (
            "catalog/platform.yaml",
            "url: ssh://git@github.com/example-org/llm-platform.git",
            f"url: {PASSWORD_URL}",
        ),
        (
            "catalog/platform.yaml",
            "repository: https://kedacore.github.io/charts",
            "repository: https://bot:" + "s3cretpassw0rd" + "@kedacore.github.io/charts",
        ),
        (
            "catalog/environments/dev.yaml",
            "server: https://vault.example.com:8200",
            "server: https://admin:" + "s3cretpassw0rd" + "@vault.example.com:8200",
        ),
    ],
)
def test_a_url_with_a_password_is_refused_and_never_printed(
    scratch_repo: Path, rel: str, old: str, new: str
) -> None:
    _edit(scratch_repo, rel, old, new)
    result = _llmgen(scratch_repo, "render")
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "s3cretpassw0rd" not in out and "hunter2" not in out
    assert re.search(rf"{rel}:\d+:\d+: .*password", out), out
    assert not (scratch_repo / GENERATED).exists()


def test_a_user_only_ssh_url_is_fine(scratch_repo: Path) -> None:
    assert _errors(scratch_repo) == []


def test_the_runbook_url_never_carries_userinfo() -> None:
    from llmgen.catalog.model import Platform
    from llmgen.render.concerns.monitoring import runbook_base

    fields: dict[str, object] = {f: None for f in Platform.__dataclass_fields__}
    fields |= {"git_url": "https://bot@git.example.com/org/repo.git", "git_branch": "main"}
    platform = Platform(**fields)  # type: ignore[arg-type]
    assert runbook_base(platform) == "https://git.example.com/org/repo/blob/main/docs/runbooks.md"


def test_render_refuses_before_writing(scratch_repo: Path) -> None:
    _edit(scratch_repo, "catalog/models/bge-m3.yaml", "parametersB: 0.57", "parametersB: .nan")
    with pytest.raises(CatalogError):
        pipeline.render(scratch_repo)
    assert not (scratch_repo / GENERATED).exists()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(["v1", "chat", "team", "a", "b"]), max_size=4).map(
            lambda segs: "/" + "/".join(segs)
        ),
        max_size=12,
    )
)
def test_nested_routes_found_by_index_are_every_capturing_pair(prefixes: list[str]) -> None:
    """route_capture's index finds exactly the pairs testing every pair would, in order."""
    from llmgen.catalog.rules_names import captures, nested

    pairs = [
        (i, j) for i, p in enumerate(prefixes) for j, q in enumerate(prefixes) if captures(p, q)
    ]
    assert list(nested(prefixes)) == pairs
