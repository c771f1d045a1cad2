"""Progress for render and verify: a bar on stderr on a terminal only (issue 17)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from llmgen.cli import progress
from llmgen.render import pipeline
from llmgen.verify.runner import verify_tree


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_only_on_a_terminal_without_quiet_or_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert progress.wanted(_Stream(True)) is True
    assert progress.wanted(_Stream(False)) is False
    assert progress.wanted(_Stream(True), quiet=True) is False
    monkeypatch.setenv("CI", "true")
    assert progress.wanted(_Stream(True)) is False


def test_verify_reports_documents_then_builds(scratch_repo: Path, crd_schemas: Path) -> None:
    pipeline.render(scratch_repo)
    calls: list[tuple[str, int, int]] = []
    report = verify_tree(scratch_repo, crd_schemas, progress=lambda *a: calls.append(a))
    assert report.ok
    stages = [c[0] for c in calls]
    assert stages[0] == "schemas" and stages[-1] == "kustomize build"
    assert stages.index("kustomize build") > max(i for i, s in enumerate(stages) if s == "schemas")
    last_schemas = [c for c in calls if c[0] == "schemas"][-1]
    assert last_schemas[1] == last_schemas[2] > 0
    builds = [c for c in calls if c[0] == "kustomize build"]
    assert builds[0][1] == 0 and builds[-1] == ("kustomize build", report.folders, report.folders)
    assert [c[1] for c in builds] == sorted(c[1] for c in builds)


def test_render_reports_its_phases(scratch_repo: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    pipeline.render(scratch_repo, progress=lambda *a: calls.append(a))
    assert calls == [
        ("validate", 0, 4),
        ("plan", 1, 4),
        ("render", 2, 4),
        ("compare", 3, 4),
        ("write", 4, 4),
    ]


def test_bar_draws_on_a_terminal_console() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with progress.bar("verify", True, console) as step:
        assert step is not None
        step("kustomize build", 3, 7)
    assert "verify: kustomize build" in out.getvalue()
    assert "3/7" in out.getvalue()
    with progress.bar("verify", False) as none:
        assert none is None


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux `script` for a pty")
def test_a_real_terminal_gets_the_bar_and_quiet_removes_it(scratch_repo: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CI"}

    def on_pty(*args: str) -> str:
        cmd = " ".join(["llmgen", *args, "--root", str(scratch_repo)])
        done = subprocess.run(
            ["script", "-qc", cmd, "/dev/null"], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stdout
        return done.stdout

    shown = on_pty("render")
    assert "render: " in shown and "rendered " in shown
    shutil.rmtree(scratch_repo / ".llmgen", ignore_errors=True)  # no no-op render
    shutil.rmtree(scratch_repo / "generated")
    quiet = on_pty("--quiet", "render")
    assert "render: " not in quiet and "rendered " in quiet
