"""Provenance headers hash only the inputs of their file (issue 17): one model's
edit re-stamps that model's files (and the few that list every model of the
environment), not every file of the environment."""

from __future__ import annotations

from pathlib import Path

from llmgen.render import pipeline
from llmgen.render.write import read_tree

DEV = "catalog/environments/dev.yaml"


def _changes(before: dict[str, bytes], after: dict[str, bytes]) -> tuple[set[str], set[str]]:
    headers, bodies = set(), set()
    for path, new in after.items():
        old = before.get(path)
        if old is None:
            continue
        old_head, _, old_body = old.partition(b"\n")
        new_head, _, new_body = new.partition(b"\n")
        if old_head != new_head:
            headers.add(path)
        if old_body != new_body:
            bodies.add(path)
    return headers, bodies


def _edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_one_deployment_edit_restamps_only_what_it_changes(scratch_repo: Path) -> None:
    pipeline.render(scratch_repo)
    before = read_tree(scratch_repo)
    _edit(
        scratch_repo,
        DEV,
        "    - name: bge-m3\n      replicas: {min: 1, max: 1}",
        "    - name: bge-m3\n      replicas: {min: 1, max: 2}",
    )
    pipeline.render(scratch_repo)
    headers, bodies = _changes(before, read_tree(scratch_repo))
    assert bodies <= headers  # a changed file never keeps its old provenance
    assert "generated/clusters/dev-aws-use2/models/bge-m3/bge-m3.yaml" in bodies
    # Before: 39 files re-stamped for 3 real changes. Now only bge-m3's own files
    # (its folder and its Flux Kustomization) and the environment's routing files
    # (which name every model) move.
    noise = headers - bodies
    own = noise & {"generated/clusters/dev-aws-use2/kustomization-model-bge-m3.yaml"}
    assert all("/infrastructure/" in p and "/dev-aws-use2/" in p for p in noise - own), noise
    assert not [p for p in headers if "/models/" in p and "bge-m3" not in p]
    assert len(noise - own) <= 4


def test_a_model_file_edit_leaves_other_models_alone(scratch_repo: Path) -> None:
    pipeline.render(scratch_repo)
    before = read_tree(scratch_repo)
    _edit(scratch_repo, "catalog/models/bge-m3.yaml", "cpu: 4", "cpu: 5")
    pipeline.render(scratch_repo)
    headers, bodies = _changes(before, read_tree(scratch_repo))
    assert bodies <= headers
    assert bodies and all("bge-m3" in p for p in bodies)
    assert not [p for p in headers if "/models/" in p and "bge-m3" not in p]
    assert not [p for p in headers if p.endswith("kustomization.yaml")]
