"""Packaging: the wheel carries the license and one version; 0.x dependencies are
capped; the floors are what .ci/run installs for its lowest-versions run."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from llmgen import __version__

REPO = Path(__file__).resolve().parents[1]


def _requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def test_zero_x_dependencies_are_capped() -> None:
    for req in _requirements():
        floors = [s.version for s in req.specifier if s.operator == ">="]
        assert floors, f"{req.name} has no floor"
        if floors[0].startswith("0."):
            assert any(s.operator == "<" for s in req.specifier), f"{req.name} is 0.x, uncapped"


def test_jsonschema_rs_floor_has_the_api_verify_uses() -> None:
    # verify/schemas.py reads ValidationErrorKind.name and .as_dict(), new in 0.46.
    (req,) = [r for r in _requirements() if r.name == "jsonschema-rs"]
    (floor,) = [s.version for s in req.specifier if s.operator == ">="]
    assert tuple(int(x) for x in floor.split(".")[:2]) >= (0, 46)
    source = (REPO / "tools/llmgen/verify/schemas.py").read_text()
    assert ".as_dict()" in source and "kind.name" in source


def test_the_wheel_carries_the_license_and_one_version(tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="the test extra installs hatchling")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("llmgen-*.whl")
    assert wheel.name == f"llmgen-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        info = f"llmgen-{__version__}.dist-info"
        assert z.read(f"{info}/licenses/LICENSE") == (REPO / "LICENSE").read_bytes()
        metadata = z.read(f"{info}/METADATA").decode()
    assert f"Version: {__version__}\n" in metadata
    assert "License-Expression: Apache-2.0\n" in metadata
    assert (REPO / "LICENSE").read_text().lstrip().startswith("Apache License\n")
