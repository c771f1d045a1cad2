"""Shared fixtures: the repo, a scratch copy of it, CRD schemas, golden updates."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import settings

from llmgen.plan.build import Plan, build_plan
from llmgen.render.engine import render_plan
from llmgen.render.pipeline import checked_catalog
from llmgen.resources import templates_dir

REPO = Path(__file__).resolve().parents[1]

# CI replays the same examples on every run (a red CI must be reproducible);
# local runs keep exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
# .ci/run also runs the property tests once with fresh random examples: each
# test's own max_examples is the fixed budget; a failure prints its blob to replay.
settings.register_profile("explore", derandomize=False, print_blob=True)
if os.environ.get("LLMGEN_HYPOTHESIS") == "explore":
    settings.load_profile("explore")
elif os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="Rewrite tests/golden/*/expected from the current render (review the diff!).",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """In CI a skip is a failure: .ci/run installs every tool the tests use."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every tool is installed: {report.longrepr}"


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


@pytest.fixture(scope="session")
def plan() -> Plan:
    """The shipped catalog, validated and planned (read-only: plans are frozen)."""
    catalog, _ = checked_catalog(REPO)
    return build_plan(catalog)


@pytest.fixture(scope="session")
def files(plan: Plan) -> dict[str, bytes]:
    """The shipped catalog rendered in memory; tests must not modify it."""
    return render_plan(plan, templates_dir(REPO), REPO).files


@pytest.fixture
def scratch_repo(tmp_path: Path) -> Path:
    """A copy of the shipped catalog, templates, schemas and overlays in tmp_path."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("catalog", "templates", "schemas", "overlays"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, root / name)
    return root
