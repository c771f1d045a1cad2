"""Write the rendered tree: deterministic, atomic, and only inside generated/.

The new tree is built beside the old one (`.generated.new-<pid>/`) and then
swapped in with one `renameat2(RENAME_EXCHANGE)` call, so a reader (or a
killed run) only ever sees the whole old tree or the whole new one. Where the
kernel lacks renameat2, two renames are used and a half-done swap is repaired
on the next run. Stale files disappear because the new tree holds only what
was rendered; nothing outside generated/ is touched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

GENERATED = "generated"
CACHE_DIR = ".llmgen"
_NEW_PREFIX = ".generated.new-"
_OLD_PREFIX = ".generated.old-"


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


def recover(root: Path) -> None:
    """Repair what a killed run left: restore a moved-away tree, drop temp trees."""
    gen = root / GENERATED
    olds = sorted(root.glob(_OLD_PREFIX + "*"))
    if not gen.exists() and olds:
        olds[-1].rename(gen)
        olds = olds[:-1]
    for leftover in [*olds, *root.glob(_NEW_PREFIX + "*")]:
        shutil.rmtree(leftover, ignore_errors=True)


def write_tree(root: Path, files: dict[str, bytes], keep: dict[str, bytes] | None = None) -> None:
    """Replace generated/ with exactly `files` (plus `keep`, for partial renders)."""
    recover(root)
    staging = root / f"{_NEW_PREFIX}{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    made: set[str] = set()
    for rel, data in sorted({**(keep or {}), **files}.items()):
        if not rel.startswith(GENERATED + "/"):
            raise ValueError(f"refusing to write outside {GENERATED}/: {rel}")
        target = staging / rel[len(GENERATED) + 1 :]
        parent = str(target.parent)
        if parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(parent)
        with open(target, "wb") as fh:  # noqa: PTH123  (hot loop: skip Path overhead)
            fh.write(data)
    staging.mkdir(exist_ok=True)
    gen = root / GENERATED
    if not gen.exists():
        staging.rename(gen)
        return
    if _exchange(staging, gen):
        shutil.rmtree(staging)
        return
    old = root / f"{_OLD_PREFIX}{os.getpid()}"
    gen.rename(old)
    staging.rename(gen)
    shutil.rmtree(old)


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
    try:
        state = json.loads(_cache_file(root).read_text())
    except (OSError, ValueError):
        return False
    return bool(state.get("key") == key and state.get("tree") == tree_fingerprint(root))


def save_cache(root: Path, key: str) -> None:
    path = _cache_file(root)
    try:
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "tree": tree_fingerprint(root)}))
        tmp.replace(path)
    except OSError:
        pass  # the cache only saves time; a read-only checkout still renders


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
    path = _written_file(root)
    try:
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, sort_keys=True))
        tmp.replace(path)
    except OSError:
        pass  # only a hint for commit; a read-only checkout still renders
