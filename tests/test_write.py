"""Writing generated/: atomic swap, stale files removed, nothing outside touched."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmgen.render import pipeline
from llmgen.render.write import read_tree, recover, write_tree

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "bench"))
import gencatalog  # noqa: E402


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path, body in sorted(read_tree(root).items()):
        h.update(path.encode() + b"\0" + body)
    return h.hexdigest()


def test_write_replaces_the_tree_and_drops_stale_files(tmp_path: Path) -> None:
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "keep.yaml").write_text("untouched\n")
    write_tree(tmp_path, {"generated/a/one.yaml": b"1\n", "generated/a/two.yaml": b"2\n"})
    write_tree(tmp_path, {"generated/a/one.yaml": b"1b\n"})
    assert read_tree(tmp_path) == {"generated/a/one.yaml": b"1b\n"}
    assert (tmp_path / "catalog" / "keep.yaml").read_text() == "untouched\n"
    # .llmgen/ holds the render lock (and the no-op cache): llmgen's own, git-ignored
    assert sorted(p.name for p in tmp_path.iterdir()) == [".llmgen", "catalog", "generated"]


def test_write_refuses_paths_outside_generated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside generated/"):
        write_tree(tmp_path, {"catalog/evil.yaml": b"x"})
    assert not (tmp_path / "catalog").exists()


def test_recover_restores_a_tree_moved_away_by_a_killed_swap(tmp_path: Path) -> None:
    # The two-rename fallback was killed between its renames.
    old = tmp_path / ".generated.old-123"
    (old / "clusters").mkdir(parents=True)
    (old / "clusters" / "x.yaml").write_text("old\n")
    (tmp_path / ".generated.new-123").mkdir()
    recover(tmp_path)
    assert (tmp_path / "generated" / "clusters" / "x.yaml").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generated"]


@pytest.mark.slow
def test_a_killed_render_leaves_the_old_or_the_new_tree_whole(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    gencatalog.generate(root, models=60, clusters=4, environments=2)
    pipeline.render(root)
    old = _digest(root)

    # The new catalog: every model asks for more CPU, so every model file changes.
    for path in (root / "catalog" / "models").glob("*.yaml"):
        path.write_text(path.read_text().replace("cpu: 8", "cpu: 9"))
    expected_root = tmp_path / "expected"
    shutil.copytree(root / "catalog", expected_root / "catalog")
    shutil.copytree(root / "templates", expected_root / "templates")
    shutil.copytree(root / "schemas", expected_root / "schemas")
    pipeline.render(expected_root)
    new = _digest(expected_root)
    assert new != old

    cmd = [sys.executable, "-m", "llmgen", "render", "--root", str(root)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "tools")}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    full = time.perf_counter() - start
    # Put the old tree back each time, then kill a render at spread-out moments.
    for fraction in (0.3, 0.5, 0.65, 0.8, 0.9, 0.97):
        for path in (root / "catalog" / "models").glob("*.yaml"):
            path.write_text(path.read_text().replace("cpu: 9", "cpu: 8"))
        pipeline.render(root)
        assert _digest(root) == old
        for path in (root / "catalog" / "models").glob("*.yaml"):
            path.write_text(path.read_text().replace("cpu: 8", "cpu: 9"))
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(full * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = _digest(root)
        assert state in (old, new), (
            f"killed at {fraction:.0%} of a render: generated/ is neither tree"
        )
    # The next run cleans whatever the killed one left beside generated/.
    pipeline.render(root)
    assert _digest(root) == new
    assert not list(root.glob(".generated.*"))


def test_the_no_op_cache_covers_llmgen_itself(scratch_repo: Path) -> None:
    from llmgen.render import write as write_mod
    from llmgen.resources import templates_dir

    key = write_mod.inputs_key(scratch_repo, templates_dir(scratch_repo), "v", "all")
    package = Path(write_mod.__file__).resolve().parents[1]  # tools/llmgen
    hashed = []
    real_read = Path.read_bytes

    def spy(path: Path) -> bytes:
        hashed.append(path)
        return real_read(path)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "read_bytes", spy)
        assert write_mod.inputs_key(scratch_repo, templates_dir(scratch_repo), "v", "all") == key
    # every stage's code counts, not only the write module's own folder
    assert package / "render" / "engine.py" in hashed
    assert package / "plan" / "build.py" in hashed
