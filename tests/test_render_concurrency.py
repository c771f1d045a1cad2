"""Parallel and interrupted renders: a whole tree every time, never exit 3.

Without a lock, each run's start-up clean-up removed the other runs' staging
trees (`.generated.new-<pid>`), a run then swapped a half-written tree in and
recorded it as up to date, and `--env dev` beside `--env staging` wrote back a
copy of the other environment read before it changed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmgen.errors import UsageError
from llmgen.render import pipeline
from llmgen.render.write import GENERATED, read_tree, write_tree

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "tools")}
#: Bounded: rounds x parallel runs; each round changes the catalog so every run writes.
ROUNDS = 4
RUNS = (["render"], ["render"], ["render", "--env", "dev"], ["render", "--env", "staging"])


def _bump(root: Path, n: int) -> None:
    """Change one value per environment so every run of the round has work to do."""
    for env in ("dev", "staging", "prod"):
        path = root / "catalog" / "environments" / f"{env}.yaml"
        text = path.read_text()
        marker = "\n  config:\n"
        if marker not in text:
            text = text.replace("\nspec:\n", f"\nspec:{marker}    ROUND: 'r0'\n", 1)
        lines = [
            f"    ROUND: 'r{n}'" if line.startswith("    ROUND: ") else line
            for line in text.splitlines()
        ]
        path.write_text("\n".join(lines) + "\n")


def test_parallel_renders_always_leave_a_whole_tree(scratch_repo: Path) -> None:
    root = scratch_repo
    for n in range(ROUNDS):
        _bump(root, n)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "llmgen", *args, "--root", str(root)],
                env=ENV,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for args in RUNS
        ]
        results = [(p.wait(), p.communicate()) for p in procs]
        for (rc, (_out, err)), args in zip(results, RUNS, strict=True):
            assert rc == 0, f"round {n}: llmgen {' '.join(args)} exited {rc}: {err.decode()}"
        fresh = pipeline.check(root)
        assert fresh.diff.empty, f"round {n}: generated/ is not whole: {fresh.diff.summary()}"
        assert not list(root.glob(".generated.*")), "a staging tree was left behind"


def test_a_damaged_tree_is_repaired_not_reported_up_to_date(scratch_repo: Path) -> None:
    pipeline.render(scratch_repo)
    files = sorted(read_tree(scratch_repo))
    (scratch_repo / files[0]).unlink()
    (scratch_repo / files[1]).write_bytes(b"edited by hand\n")
    outcome = pipeline.render(scratch_repo)
    assert not outcome.noop
    assert pipeline.check(scratch_repo).diff.empty


def test_a_leftover_staging_tree_is_cleaned_by_the_next_run(scratch_repo: Path) -> None:
    pipeline.render(scratch_repo)
    # A run killed after its swap (or out of disk space) left its staging tree.
    for name in (".generated.new-999999", ".generated.old-999998"):
        (scratch_repo / name / "clusters").mkdir(parents=True)
        (scratch_repo / name / "clusters" / "x.yaml").write_text("stale\n")
    pipeline.render(scratch_repo)
    assert not list(scratch_repo.glob(".generated.*"))
    assert pipeline.check(scratch_repo).diff.empty


def test_a_second_render_waits_for_the_lock(scratch_repo: Path) -> None:
    from llmgen.render.write import render_lock

    with render_lock(scratch_repo):
        proc = subprocess.run(
            [sys.executable, "-m", "llmgen", "render", "--root", str(scratch_repo)],
            env={**ENV, "LLMGEN_LOCK_TIMEOUT": "0.5"},
            capture_output=True,
            text=True,
        )
    assert proc.returncode == 1, proc.stderr
    assert "another llmgen run" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (scratch_repo / GENERATED).exists()


# ------------------------------------------------------------------ symlinks


def test_a_symlinked_cache_folder_is_refused(scratch_repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "render-state.json").write_text("precious\n")
    (scratch_repo / ".llmgen").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UsageError, match="symlink"):
        pipeline.render(scratch_repo)
    assert (outside / "render-state.json").read_text() == "precious\n"
    assert sorted(p.name for p in outside.iterdir()) == ["render-state.json"]


def test_a_symlinked_cache_file_is_refused(scratch_repo: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (scratch_repo / ".llmgen").mkdir()
    (scratch_repo / ".llmgen" / "render-state.json").symlink_to(victim)
    with pytest.raises(UsageError, match="symlink"):
        pipeline.render(scratch_repo)
    assert victim.read_text() == "precious\n"


def test_a_symlinked_generated_folder_is_refused(scratch_repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    (outside / "clusters").mkdir(parents=True)
    (outside / "clusters" / "keep.yaml").write_text("precious\n")
    (scratch_repo / GENERATED).symlink_to(outside, target_is_directory=True)
    with pytest.raises(UsageError, match="symlink"):
        write_tree(scratch_repo, {"generated/clusters/a.yaml": b"x\n"})
    assert (outside / "clusters" / "keep.yaml").read_text() == "precious\n"
    assert (scratch_repo / GENERATED).is_symlink()
