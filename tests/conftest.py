"""Shared fixtures: the repo, a scratch copy of it, CRD schemas, golden updates."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="Rewrite tests/golden/*/expected from the current render (review the diff!).",
    )


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def crd_schemas() -> Path:
    """The strict CRD schemas shared with the project (../shared/crd-schemas)."""
    path = REPO.parent / "shared" / "crd-schemas"
    if not path.is_dir():
        pytest.fail(f"CRD schemas not found at {path}; CI lays ../shared beside the repo")
    return path


@pytest.fixture
def scratch_repo(tmp_path: Path) -> Path:
    """A copy of the shipped catalog, templates, schemas and overlays in tmp_path."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("catalog", "templates", "schemas", "overlays"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, root / name)
    return root
