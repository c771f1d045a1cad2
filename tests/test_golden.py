"""Golden files: each case's catalog renders to exactly its expected/ tree.

`pytest --update-golden` rewrites expected/ from the current render; review
the diff like any other change. The expected trees are checked with the real
tools in the same run: strict schemas for every document and `kustomize
build` for every folder (llmgen verify).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llmgen.render import pipeline
from llmgen.verify.runner import catalog_facts, verify_tree

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "catalog").is_dir())


def _tree(base: Path) -> dict[str, bytes]:
    return {
        p.relative_to(base).as_posix(): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    src = GOLDEN / request.param
    root = tmp_path / request.param
    shutil.copytree(src / "catalog", root / "catalog")
    if (src / "overlays").is_dir():
        shutil.copytree(src / "overlays", root / "overlays")
    return request.param, root


def test_golden_render(case: tuple[str, Path], request: pytest.FixtureRequest) -> None:
    name, root = case
    pipeline.render(root)
    got = _tree(root / "generated")
    expected_dir = GOLDEN / name / "expected"
    if request.config.getoption("--update-golden"):
        shutil.rmtree(expected_dir, ignore_errors=True)
        shutil.copytree(root / "generated", expected_dir)
    expected = _tree(expected_dir)
    missing = sorted(expected.keys() - got.keys())
    extra = sorted(got.keys() - expected.keys())
    changed = sorted(k for k in expected.keys() & got.keys() if expected[k] != got[k])
    assert not (missing or extra or changed), (
        f"golden {name} differs (run pytest --update-golden and review):\n"
        f"missing: {missing[:10]}\nextra: {extra[:10]}\nchanged: {changed[:10]}"
    )


def test_golden_expected_passes_real_tools(
    case: tuple[str, Path], crd_schemas: Path, tmp_path: Path
) -> None:
    name, _ = case
    root = tmp_path / "expected-root"
    shutil.copytree(GOLDEN / name / "expected", root / "generated")
    shutil.copytree(GOLDEN / name / "catalog", root / "catalog")
    if (GOLDEN / name / "overlays").is_dir():
        shutil.copytree(GOLDEN / name / "overlays", root / "overlays")
    report = verify_tree(root, crd_schemas, kustomize=True, clusters=catalog_facts(root))
    assert report.documents > 0
    assert [str(d) for d in report.diagnostics if d.is_error] == []
