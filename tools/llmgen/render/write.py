"""Write the rendered tree: deterministic, atomic, and only inside generated/.

The new tree is built beside the old one (`.generated.new-<pid>/`) and then
swapped in with one `renameat2(RENAME_EXCHANGE)` call, so a reader (or a
killed run) only ever sees the whole old tree or the whole new one. Where the
kernel lacks renameat2, two renames are used and a half-done swap is repaired
on the next run. Stale files disappear because the new tree holds only what
was rendered; nothing outside generated/ is touched.

One run at a time: `render_lock` holds an flock on `.llmgen/render.lock`
from the no-op check to the cache update, so parallel runs wait for each
other instead of removing each other's staging trees (the kernel drops the
lock of a killed run). No path is followed through a symlink: `.llmgen`,
its files, `generated/` and the staging trees must be what they claim, or
the run is refused before anything is written.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from llmgen.errors import LlmgenError, UsageError

GENERATED = "generated"
CACHE_DIR = ".llmgen"
LOCK_FILE = "render.lock"
#: How long a run waits for another one (seconds); LLMGEN_LOCK_TIMEOUT overrides.
LOCK_TIMEOUT = 600.0
_NEW_PREFIX = ".generated.new-"
_OLD_PREFIX = ".generated.old-"
#: Repositories whose render lock this process holds (the lock is re-entrant).
_HELD: set[str] = set()


class LockTimeoutError(LlmgenError):
    """Another llmgen run held the render lock for longer than we wait."""


def _refuse_symlink(path: Path, what: str) -> None:
    if path.is_symlink():
        raise UsageError(
            f"{path} is a symlink; refusing to follow it for {what} "
            "(llmgen writes only inside the repository: replace it with a real folder or file)"
        )


def _cache_dir(root: Path) -> Path:
    """`.llmgen/`, created if missing; refused when it is a symlink."""
    path = root / CACHE_DIR
    _refuse_symlink(path, "the render cache")
    path.mkdir(exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists() and not ignore.is_symlink():
        # git ignores the folder's contents (lock, cache) even without a rule in
        # the repository's own .gitignore, so `git status` stays clean.
        with contextlib.suppress(OSError):
            fd = os.open(ignore, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "w") as fh:
                fh.write("*\n")
    return path


def _lock_timeout() -> float:
    try:
        return float(os.environ.get("LLMGEN_LOCK_TIMEOUT", LOCK_TIMEOUT))
    except ValueError:
        return LOCK_TIMEOUT


@contextlib.contextmanager
def render_lock(root: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the repository's render lock (waiting up to `timeout` seconds for it).

    Re-entrant within a process. A read-only checkout, where the lock file
    cannot be created, renders unlocked: nothing can be written there anyway.
    """
    key = str(root.resolve())
    if key in _HELD:
        yield
        return
    try:
        folder = _cache_dir(root)
        fd = os.open(
            folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
        )
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            _refuse_symlink(root / CACHE_DIR / LOCK_FILE, "the render lock")
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            yield
            return
        raise
    try:
        _flock(fd, root / CACHE_DIR / LOCK_FILE, _lock_timeout() if timeout is None else timeout)
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def flock_within(fd: int, timeout: float, poll: float = 0.05) -> bool:
    """Take an exclusive flock on `fd`, waiting at most `timeout` seconds; False
    when another process still holds it then (render and commit locks)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


def _flock(fd: int, path: Path, timeout: float) -> None:
    if not flock_within(fd, timeout):
        raise LockTimeoutError(
            f"another llmgen run is rendering this repository (it holds {path}); "
            f"gave up after waiting {timeout:g}s. Run again when it has finished."
        )


@dataclass
class TreeDiff:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def summary(self) -> str:
        return f"{len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed"


def read_tree(root: Path, prefixes: Iterable[str] | None = None) -> dict[str, bytes]:
    """Every file under generated/ as repo-relative path -> bytes."""
    base = root / GENERATED
    out: dict[str, bytes] = {}
    if not base.is_dir():
        return out
    wanted = tuple(prefixes) if prefixes is not None else None
    for dirpath, _dirs, files in os.walk(base):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for f in files:
            rel = f"{rel_dir}/{f}"
            if wanted is None or rel.startswith(wanted):
                out[rel] = (Path(dirpath) / f).read_bytes()
    return out


def diff_trees(old: dict[str, bytes], new: dict[str, bytes]) -> TreeDiff:
    d = TreeDiff()
    for path in sorted(new):
        if path not in old:
            d.added.append(path)
        elif old[path] != new[path]:
            d.changed.append(path)
    d.removed = sorted(p for p in old if p not in new)
    return d


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2; False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc: int = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


def _remove(path: Path) -> None:
    """Remove a leftover tree; a symlink is unlinked, never followed."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def recover(root: Path) -> None:
    """Repair what a killed run left: restore a moved-away tree, drop temp trees.

    Call it holding the render lock: then every staging tree beside
    generated/ belongs to a run that is gone.
    """
    gen = root / GENERATED
    olds = sorted(p for p in root.glob(_OLD_PREFIX + "*") if not p.is_symlink())
    if not gen.exists() and not gen.is_symlink() and olds:
        olds[-1].rename(gen)
        olds = olds[:-1]
    for leftover in [*olds, *root.glob(_OLD_PREFIX + "*"), *root.glob(_NEW_PREFIX + "*")]:
        if leftover.exists() or leftover.is_symlink():
            _remove(leftover)


_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def write_tree(root: Path, files: dict[str, bytes], keep: dict[str, bytes] | None = None) -> None:
    """Replace generated/ with exactly `files` (plus `keep`, for partial renders)."""
    with render_lock(root):
        _write_tree(root, files, keep)


def _write_tree(root: Path, files: dict[str, bytes], keep: dict[str, bytes] | None) -> None:
    gen = root / GENERATED
    _refuse_symlink(gen, f"writing {GENERATED}/")
    recover(root)
    staging = root / f"{_NEW_PREFIX}{os.getpid()}"
    # A fresh folder of our own (O_EXCL semantics: mkdir fails on anything there).
    staging.mkdir()
    made: set[str] = {str(staging)}
    for rel, data in sorted({**(keep or {}), **files}.items()):
        parts = rel.split("/")
        if parts[0] != GENERATED or len(parts) < 2 or any(p in ("", ".", "..") for p in parts):
            _remove(staging)
            raise ValueError(f"refusing to write outside {GENERATED}/: {rel}")
        target = staging.joinpath(*parts[1:])
        parent = str(target.parent)
        if parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(parent)
        # O_EXCL|O_NOFOLLOW: the staging tree is ours alone, so a file that is
        # already there (or a symlink planted in it) is an error, never followed.
        fd = os.open(target, _WRITE_FLAGS, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    if not gen.exists():
        staging.rename(gen)
        return
    if _exchange(staging, gen):
        _remove(staging)
        return
    old = root / f"{_OLD_PREFIX}{os.getpid()}"
    gen.rename(old)
    staging.rename(gen)
    _remove(old)


# ------------------------------------------------------------- no-op cache


def inputs_key(root: Path, templates_dir: Path, version: str, scope: str) -> str:
    """Hash of everything a render reads: catalog, templates, overlays, and
    llmgen's own code (a changed generator must re-render even when the
    version number did not move, as in this repository)."""
    h = hashlib.sha256(f"{version}\0{scope}\0{templates_dir}\0".encode())
    code = Path(__file__).resolve().parents[1]  # the whole llmgen package
    for folder in (root / "catalog", templates_dir, root / "overlays", code):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_symlink():
                # Hashed by where it points, never read through: validate
                # refuses links that leave the repository.
                h.update(f"{path}\0->{path.readlink()}\0".encode())
                continue
            if path.is_file() and path.suffix != ".pyc":
                h.update(path.relative_to(folder.parent).as_posix().encode())
                h.update(b"\0")
                h.update(path.read_bytes())
    return h.hexdigest()


def tree_fingerprint(root: Path) -> str:
    """Cheap fingerprint of generated/: every file's path, size and mtime."""
    h = hashlib.sha256()
    base = root / GENERATED
    stack = [base]
    entries: list[str] = []
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    else:
                        st = e.stat(follow_symlinks=False)
                        entries.append(f"{e.path}\0{st.st_size}\0{st.st_mtime_ns}")
        except FileNotFoundError:
            continue
    for entry in sorted(entries):
        h.update(entry.encode())
    return h.hexdigest()


def _cache_file(root: Path) -> Path:
    return root / CACHE_DIR / "render-state.json"


def cache_hit(root: Path, key: str) -> bool:
    """True when the inputs are unchanged and generated/ is as the last run left it."""
    _refuse_symlink(root / CACHE_DIR, "the render cache")
    path = _cache_file(root)
    _refuse_symlink(path, "the render cache")
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return bool(state.get("key") == key and state.get("tree") == tree_fingerprint(root))


def tree_matches(
    root: Path, files: dict[str, bytes], prefixes: tuple[str, ...] | None = None
) -> bool:
    """Cheap check that generated/ (within `prefixes`) holds exactly `files` by path and size."""
    base = root / GENERATED
    on_disk: dict[str, int] = {}
    stack = [base]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    else:
                        rel = Path(e.path).relative_to(root).as_posix()
                        if prefixes is None or rel.startswith(prefixes):
                            on_disk[rel] = e.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            continue
    return on_disk == {p: len(b) for p, b in files.items()}


def _save_state(root: Path, name: str, text: str, what: str) -> None:
    """Write `.llmgen/<name>.json` atomically, never through a symlink. Both
    records only save time or hint, so a read-only checkout still renders."""
    try:
        folder = _cache_dir(root)
    except OSError:
        return
    path = folder / f"{name}.json"
    _refuse_symlink(path, what)
    tmp = folder / f"{name}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        tmp.replace(path)  # rename replaces a symlink itself, never its target
    except OSError:
        tmp.unlink(missing_ok=True)


def save_cache(root: Path, key: str) -> None:
    """Record `key` with the fingerprint of generated/ as it is now."""
    state = json.dumps({"key": key, "tree": tree_fingerprint(root)})
    _save_state(root, "render-state", state, "the render cache")


# ------------------------------------------------------ what render wrote


def _written_file(root: Path) -> Path:
    return root / CACHE_DIR / "rendered.json"


def written_digests(root: Path) -> dict[str, str]:
    """sha256 of each file the last renders wrote (repo-relative path -> hex).

    `llmgen commit` uses it to tell llmgen's own earlier output (a render of
    a catalog state since undone) from a hand edit. Empty when unknown.
    """
    try:
        data = json.loads(_written_file(root).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save_written(
    root: Path, files: dict[str, bytes], prefixes: tuple[str, ...] | None = None
) -> None:
    """Record what a render wrote; a partial render keeps the rest of the record."""
    record = {
        p: d for p, d in written_digests(root).items() if prefixes and not p.startswith(prefixes)
    }
    record.update({p: hashlib.sha256(b).hexdigest() for p, b in files.items()})
    _save_state(root, "rendered", json.dumps(record, sort_keys=True), "the render record")
