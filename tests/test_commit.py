"""`llmgen commit` on real temporary git repositories with a bare remote."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmgen.cli.app import app
from llmgen.gitops.commit import (
    LOCK_NAME,
    TRAILER_HASH,
    CommitError,
    HandEditsError,
    StaleInputsError,
    commit,
)
from llmgen.render import pipeline

DEV_ENV = "catalog/environments/dev.yaml"


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture
def gitrepo(scratch_repo: Path, tmp_path: Path) -> Path:
    """The shipped catalog in a fresh repository whose `origin` is a bare repo."""
    root = scratch_repo
    (root / "README.md").write_text("# platform\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.name", "Test")
    _git(root, "config", "user.email", "test@example.com")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "initial catalog")
    remote = tmp_path / "remote.git"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    _git(root, "remote", "add", "origin", str(remote))
    _git(root, "push", "-q", "origin", "main")
    return root


def _model_file(root: Path, cluster: str, model: str) -> Path:
    """The generated file holding `model`'s Deployment in `cluster` (any layout)."""
    for path in sorted((root / "generated/clusters" / cluster).rglob("*.yaml")):
        text = path.read_text()
        if "kind: Deployment\n" in text and f"llmgen.io/model: {model}\n" in text:
            return path
    raise AssertionError(f"no Deployment of {model} in {cluster}")


def _changed_in_head(root: Path) -> list[str]:
    return _git(root, "diff", "--name-only", "HEAD~1", "HEAD").splitlines()


def _bump_dev_bge(root: Path, commit_it: bool = True) -> None:
    """A valid catalog change: bge-m3 may scale to 2 replicas in dev, committed
    (llmgen commit refuses to render from uncommitted catalog changes)."""
    path = root / DEV_ENV
    text = path.read_text()
    old = "- name: bge-m3\n      replicas: {min: 1, max: 1}"
    assert old in text
    path.write_text(text.replace(old, "- name: bge-m3\n      replicas: {min: 1, max: 2}"))
    if commit_it:
        _git(root, "commit", "-q", "-m", "dev: bge-m3 up to 2", "--", DEV_ENV)


def test_first_commit_adds_generated_only_and_rerun_is_noop(gitrepo: Path) -> None:
    first = commit(gitrepo)
    assert first.committed and first.commit == _git(gitrepo, "rev-parse", "HEAD")
    changed = _changed_in_head(gitrepo)
    assert changed and all(p.startswith("generated/clusters/") for p in changed)
    # The summary names every cluster and every model it gained.
    clusters = {c.cluster: c for c in first.clusters}
    assert set(clusters) == {p.stem for p in (gitrepo / "catalog/clusters").glob("*.yaml")}
    assert "bge-m3" in clusters["dev-aws-use2"].models_added
    body = _git(gitrepo, "log", "-1", "--format=%B")
    assert "dev-aws-use2: models added: " in body
    trailer = _git(gitrepo, "log", "-1", f"--format=%(trailers:key={TRAILER_HASH},valueonly)")
    assert trailer.startswith("sha256:") and len(trailer) == len("sha256:") + 64

    again = commit(gitrepo)
    assert not again.committed and again.commit is None
    assert _git(gitrepo, "rev-parse", "HEAD") == first.commit
    assert _git(gitrepo, "status", "--porcelain") == ""


def test_commit_leaves_other_staged_and_dirty_files_alone(gitrepo: Path) -> None:
    commit(gitrepo)
    (gitrepo / "README.md").write_text("# platform\nstaged but not ours\n")
    _git(gitrepo, "add", "README.md")
    _bump_dev_bge(gitrepo)
    (gitrepo / "notes.txt").write_text("untracked\n")

    result = commit(gitrepo)
    assert result.committed
    changed = _changed_in_head(gitrepo)
    # Only dev's bge-m3 bound changed; README.md and notes.txt stay out.
    assert changed and all(p.startswith("generated/clusters/dev-aws-use2/") for p in changed)
    assert _git(gitrepo, "diff", "--cached", "--name-only") == "README.md"
    assert (gitrepo / "notes.txt").exists()
    assert _git(gitrepo, "status", "--porcelain", "--", "generated") == ""


def test_uncommitted_catalog_change_is_refused_with_the_reason(gitrepo: Path) -> None:
    """The commit would hold generated/ of the edited catalog beside the old catalog/."""
    commit(gitrepo)
    head = _git(gitrepo, "rev-parse", "HEAD")
    _bump_dev_bge(gitrepo, commit_it=False)
    before = {p: p.read_bytes() for p in (gitrepo / "generated").rglob("*") if p.is_file()}
    res = CliRunner().invoke(app, ["commit", "--root", str(gitrepo)])
    assert res.exit_code == 1
    assert res.output == (
        "llmgen: refusing to commit: 1 render input(s) have uncommitted changes:\n"
        f"  {DEV_ENV}\n"
        "generated/ would be rendered from them while the commit keeps the old ones, "
        "so the commit's generated/ would not match its catalog. Commit them first "
        "(or use a lifecycle verb's --commit, which commits both), or stash them.\n"
    )
    assert _git(gitrepo, "rev-parse", "HEAD") == head
    after = {p: p.read_bytes() for p in (gitrepo / "generated").rglob("*") if p.is_file()}
    assert after == before
    # A new, untracked overlay file counts too.
    _git(gitrepo, "checkout", "--", DEV_ENV)
    (gitrepo / "overlays/NOTES.md").write_text("not yet\n")
    with pytest.raises(StaleInputsError) as info:
        commit(gitrepo)
    assert info.value.paths == ["overlays/NOTES.md"]


def test_start_render_stop_commit_is_not_a_hand_edit(gitrepo: Path) -> None:
    """Output of an earlier render (of a catalog state since undone) is llmgen's own."""
    commit(gitrepo)
    head = _git(gitrepo, "rev-parse", "HEAD")
    _bump_dev_bge(gitrepo, commit_it=False)
    pipeline.render(gitrepo)  # generated/ now shows max 2
    _git(gitrepo, "checkout", "--", DEV_ENV)  # and the catalog goes back
    dirty = _git(gitrepo, "status", "--porcelain", "--", "generated").splitlines()
    assert dirty, "the render changed generated/"
    result = commit(gitrepo)
    assert not result.committed and not result.overwritten  # nothing real to commit
    assert _git(gitrepo, "rev-parse", "HEAD") == head
    assert _git(gitrepo, "status", "--porcelain", "--", "generated") == ""
    # A hand edit on top of such output is still refused.
    _bump_dev_bge(gitrepo, commit_it=False)
    pipeline.render(gitrepo)
    _git(gitrepo, "checkout", "--", DEV_ENV)
    target = _model_file(gitrepo, "dev-aws-use2", "bge-m3")
    target.write_text(target.read_text() + "# tuned by hand\n")
    with pytest.raises(HandEditsError) as info:
        commit(gitrepo)
    assert info.value.paths == [str(target.relative_to(gitrepo))]


def test_catalog_change_summarised_per_cluster(gitrepo: Path) -> None:
    commit(gitrepo)
    path = gitrepo / DEV_ENV
    text = path.read_text()
    entry = "    - name: bge-m3\n      replicas: {min: 1, max: 1}\n"
    assert entry in text
    path.write_text(text.replace(entry, ""))  # dev drops bge-m3
    _git(gitrepo, "commit", "-q", "-am", "dev: drop bge-m3")
    result = commit(gitrepo, message="Drop bge-m3 from dev")
    assert [c.cluster for c in result.clusters] == ["dev-aws-use2"]
    dev = result.clusters[0]
    assert dev.models_removed == ("bge-m3",) and not dev.models_added
    removed = {r.kind for r in dev.resources if r.change == "removed"}
    assert {"Deployment", "Namespace"} <= removed
    body = _git(gitrepo, "log", "-1", "--format=%B")
    subject, blank, first, *_ = body.splitlines()
    assert (subject, blank) == ("Drop bge-m3 from dev", "")
    assert first.startswith("dev-aws-use2: models ") and first.endswith("removed: bge-m3")
    dev = gitrepo / "generated/clusters/dev-aws-use2"
    assert not any("llmgen.io/model: bge-m3" in p.read_text() for p in dev.rglob("*.yaml"))


def test_push_lands_on_the_remote(gitrepo: Path, tmp_path: Path) -> None:
    result = commit(gitrepo, push=True)
    assert result.pushed and result.remote == "origin"
    remote_head = _git(tmp_path / "remote.git", "rev-parse", "refs/heads/main")
    assert remote_head == result.commit


def test_branch_is_created_and_pushed_without_moving_main(gitrepo: Path, tmp_path: Path) -> None:
    main_before = _git(gitrepo, "rev-parse", "main")
    result = commit(gitrepo, branch="llmgen/render", push=True)
    assert result.created_branch and result.branch == "llmgen/render"
    assert _git(gitrepo, "symbolic-ref", "--short", "HEAD") == "llmgen/render"
    assert _git(gitrepo, "rev-parse", "main") == main_before
    assert _git(tmp_path / "remote.git", "rev-parse", "refs/heads/llmgen/render") == result.commit
    assert _git(gitrepo, "rev-parse", "HEAD~1") == main_before  # extends history, never rewrites


def test_existing_other_branch_is_refused(gitrepo: Path) -> None:
    _git(gitrepo, "branch", "elsewhere")
    with pytest.raises(CommitError, match="already exists and is not checked out"):
        commit(gitrepo, branch="elsewhere")
    assert not (gitrepo / "generated").exists()


def test_hand_edit_is_refused_then_forced(gitrepo: Path) -> None:
    commit(gitrepo)
    _bump_dev_bge(gitrepo)
    head = _git(gitrepo, "rev-parse", "HEAD")
    target = _model_file(gitrepo, "dev-aws-use2", "bge-m3")
    edited = target.read_text() + "# tuned by hand\n"
    target.write_text(edited)

    runner = CliRunner()
    res = runner.invoke(app, ["commit", "--root", str(gitrepo)])
    assert res.exit_code == 1
    assert "edited by hand" in res.output
    assert str(target.relative_to(gitrepo)) in res.output
    assert "--force" in res.output
    assert target.read_text() == edited  # refused before anything was written
    assert _git(gitrepo, "rev-parse", "HEAD") == head

    forced = commit(gitrepo, force=True)
    assert forced.committed
    assert forced.overwritten == [str(target.relative_to(gitrepo))]
    assert "# tuned by hand" not in target.read_text()


def test_rendered_but_uncommitted_output_is_not_a_hand_edit(gitrepo: Path) -> None:
    commit(gitrepo)
    _bump_dev_bge(gitrepo)
    pipeline.render(gitrepo)  # generated/ now differs from HEAD, explained by the catalog
    result = commit(gitrepo)
    assert result.committed and not result.overwritten


def test_hand_added_file_is_a_hand_edit(gitrepo: Path) -> None:
    commit(gitrepo)
    extra = _model_file(gitrepo, "dev-aws-use2", "bge-m3").with_name("configmap-extra.yaml")
    extra.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n")
    with pytest.raises(HandEditsError) as info:
        commit(gitrepo)
    assert info.value.paths == [str(extra.relative_to(gitrepo))]
    assert extra.exists()


def test_invalid_catalog_is_refused_with_diagnostics(gitrepo: Path) -> None:
    commit(gitrepo)
    head = _git(gitrepo, "rev-parse", "HEAD")
    model = gitrepo / "catalog/models/bge-m3.yaml"
    model.write_text(
        model.read_text().replace("apiVersion: llmgen.io/v1alpha1", "apiVersion: x/v1")
    )
    before = {p: p.read_bytes() for p in (gitrepo / "generated").rglob("*") if p.is_file()}
    res = CliRunner().invoke(app, ["commit", "--root", str(gitrepo)])
    assert res.exit_code == 1
    assert "catalog/models/bge-m3.yaml:" in res.output and "apiVersion" in res.output
    assert _git(gitrepo, "rev-parse", "HEAD") == head
    after = {p: p.read_bytes() for p in (gitrepo / "generated").rglob("*") if p.is_file()}
    assert after == before


def test_detached_push_needs_a_branch(gitrepo: Path) -> None:
    _git(gitrepo, "checkout", "-q", "--detach")
    res = CliRunner().invoke(app, ["commit", "--root", str(gitrepo), "--push"])
    assert res.exit_code == 2
    assert "--branch" in res.output


def test_cli_reports_nothing_to_commit(gitrepo: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["commit", "--root", str(gitrepo), "-m", "Render"])
    assert first.exit_code == 0, first.output
    assert "committed " in first.output and "on main" in first.output
    second = runner.invoke(app, ["commit", "--root", str(gitrepo)])
    assert second.exit_code == 0
    assert "nothing to commit" in second.output


def test_lock_held_elsewhere_is_reported(gitrepo: Path) -> None:
    with (gitrepo / ".git" / LOCK_NAME).open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        with pytest.raises(CommitError, match="holds"):
            commit(gitrepo, lock_timeout=0)
    assert commit(gitrepo, lock_timeout=0).committed


def _waiting_on(lock: Path, pids: set[int]) -> set[int]:
    """Pids blocked in flock() on `lock`, read from /proc/locks."""
    inode = str(lock.stat().st_ino)
    waiting = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and fields[-3].split(":")[-1] == inode:
            pid = int(fields[fields.index("->") + 4])
            if pid in pids:
                waiting.add(pid)
    return waiting


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks")
def test_two_concurrent_commits_do_not_interleave(gitrepo: Path) -> None:
    _bump_dev_bge(gitrepo)
    lock = gitrepo / ".git" / LOCK_NAME
    llmgen = shutil.which("llmgen")
    cmd = [llmgen] if llmgen else [sys.executable, "-c", "from llmgen.cli import main; main()"]
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    with lock.open("a") as fh:
        # Hold the lock until both runs are blocked on it, so they really race.
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        procs = [
            subprocess.Popen(
                [*cmd, "commit", "--root", str(gitrepo)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(2)
        ]
        pids = {p.pid for p in procs}
        for _ in range(600):
            if _waiting_on(lock, pids) == pids or any(p.poll() is not None for p in procs):
                break
            time.sleep(0.1)
        assert _waiting_on(lock, pids) == pids, "both runs should be waiting for the lock"
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    said = sorted("nothing to commit" in out for out, _err in outputs)
    assert said == [False, True], outputs  # exactly one committed; the other found it done
    # The catalog commit of _bump_dev_bge, then exactly one generated/ commit.
    assert _git(gitrepo, "rev-list", "--count", "HEAD") == "3"
    assert _git(gitrepo, "status", "--porcelain", "--", "generated") == ""
    _git(gitrepo, "fsck", "--no-progress")


def test_catalog_in_a_subfolder_commits_only_its_generated(
    scratch_repo: Path, tmp_path: Path
) -> None:
    top = tmp_path / "mono"
    top.mkdir()
    shutil.move(str(scratch_repo), top / "platform")
    (top / "service.py").write_text("print('not ours')\n")
    _git(top, "init", "-q", "-b", "main")
    _git(top, "config", "user.name", "Test")
    _git(top, "config", "user.email", "test@example.com")
    _git(top, "add", ".")
    _git(top, "commit", "-q", "-m", "monorepo")
    (top / "service.py").write_text("print('dirty, not ours')\n")

    result = commit(top / "platform")
    assert result.committed and result.clusters
    changed = _changed_in_head(top)
    assert changed and all(p.startswith("platform/generated/clusters/") for p in changed)
    assert _git(top, "status", "--porcelain") == "M service.py"
    assert not commit(top / "platform").committed
