"""Git failures are clean: a stale .git/index.lock is refused before anything changes.

Without the check, `llmgen commit` wrote generated/, made the commit through
its private index and then died (exit 3) refreshing the user's index, and a
`--commit` lifecycle verb had already rewritten the catalog file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "tools")}
DEV_ENV = "catalog/environments/dev.yaml"


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def _llmgen(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmgen", *args, "--root", str(root)],
        env=ENV,
        capture_output=True,
        text=True,
    )


@pytest.fixture
def locked_repo(scratch_repo: Path) -> Path:
    """The shipped catalog committed, with a stale index.lock left by a crashed git."""
    root = scratch_repo
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.name", "Test")
    _git(root, "config", "user.email", "test@example.com")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "initial catalog")
    (root / ".git" / "index.lock").write_text("")
    return root


def _state(root: Path) -> tuple[str, str, bool]:
    return (
        _git(root, "rev-parse", "HEAD"),
        (root / DEV_ENV).read_text(),
        (root / "generated").exists(),
    )


def test_commit_refuses_a_stale_index_lock_before_writing(locked_repo: Path) -> None:
    before = _state(locked_repo)
    result = _llmgen(locked_repo, "commit")
    assert result.returncode == 1, result.stderr
    assert "index.lock" in result.stderr and "Traceback" not in result.stderr
    assert "internal error" not in result.stderr
    assert _state(locked_repo) == before


def test_a_commit_verb_refuses_before_editing_the_catalog(locked_repo: Path) -> None:
    before = _state(locked_repo)
    result = _llmgen(locked_repo, "stop", "--env", "dev", "--commit")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "index.lock" in result.stderr
    assert _state(locked_repo) == before


def test_without_the_lock_the_verb_commits(locked_repo: Path) -> None:
    (locked_repo / ".git" / "index.lock").unlink()
    result = _llmgen(locked_repo, "stop", "--env", "dev", "--commit")
    assert result.returncode == 0, result.stdout + result.stderr
