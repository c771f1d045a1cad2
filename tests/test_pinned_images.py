"""Pinned environments pin every image llmgen renders, tool images included.

`requirePinned` checked the model's and canary's vLLM images only; the
weights-fetch images (aws-cli, gcloud) and the gpu-readiness image were
rendered by tag into the same pinned environment. They now come from
`catalog.images` defaults, overridable in the Platform's `spec.images`, and a
pinned environment refuses any of them without an @sha256 digest.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from llmgen.catalog.validate import validate
from llmgen.render import pipeline

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _images(files: dict[str, bytes], cluster: str) -> set[str]:
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "image" and isinstance(v, str):
                    found.add(v)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for path, body in files.items():
        if path.startswith(f"generated/clusters/{cluster}/"):
            for doc in yaml.safe_load_all(body):
                walk(doc)
    return found


def test_every_image_of_a_pinned_environment_has_a_digest(files: dict[str, bytes]) -> None:
    for cluster in ("prod-aws-use1", "prod-aws-usw2", "prod-gcp-usc1", "prod-gcp-euw4"):
        images = _images(files, cluster)
        assert images
        assert all(DIGEST.search(i) for i in images), (cluster, sorted(images))


def test_a_tool_image_without_digest_is_refused_in_a_pinned_environment(
    scratch_repo: Path,
) -> None:
    path = scratch_repo / "catalog/platform.yaml"
    text = path.read_text()
    text = re.sub(r"(gpuReadiness: [^@\n]+)@sha256:[0-9a-f]{64}", r"\1", text)
    path.write_text(text)
    errors = [str(d) for d in validate(scratch_repo).errors]
    assert any(
        e.startswith("catalog/environments/prod.yaml:")
        and "spec.requirePinned" in e
        and "spec.images.gpuReadiness" in e
        for e in errors
    ), errors


def test_the_platform_override_is_what_renders(scratch_repo: Path) -> None:
    path = scratch_repo / "catalog/platform.yaml"
    digest = "ab" * 32
    text = re.sub(
        r"weightsFetchAws: .*",
        f"weightsFetchAws: registry.example.com/aws-cli:2@sha256:{digest}",
        path.read_text(),
    )
    path.write_text(text)
    files = pipeline.check(scratch_repo).files
    assert f"registry.example.com/aws-cli:2@sha256:{digest}" in _images(files, "prod-aws-use1")
