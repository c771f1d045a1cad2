"""Where llmgen finds its schemas and templates.

A repository's own `schemas/` or `templates/` folder wins, so a team can
adapt them (`llmgen eject` copies them in); otherwise the copies packaged
into the wheel (`llmgen/_data/`) are used, and in a source checkout without
a wheel the folders next to `tools/`. `drift` tells a repository whose own
copies differ from the installed llmgen's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import llmgen

FOLDERS = ("schemas", "templates")


def packaged_dir(name: str) -> Path:
    """The installed llmgen's own copy of `schemas` or `templates`."""
    packaged = Path(llmgen.__file__).parent / "_data" / name
    if packaged.is_dir():
        return packaged
    # tools/llmgen/resources.py -> the repository root is two folders up from the package.
    return Path(__file__).resolve().parents[2] / name


def _data_dir(root: Path | None, name: str) -> Path:
    if root is not None and (root / name).is_dir():
        return root / name
    return packaged_dir(name)


def schemas_dir(root: Path | None) -> Path:
    """The folder holding `<kind>.schema.json` for every catalog kind."""
    return _data_dir(root, "schemas")


def templates_dir(root: Path | None) -> Path:
    """The folder holding the jinja2 templates, one subfolder per concern."""
    return _data_dir(root, "templates")


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def drift(root: Path) -> list[str]:
    """One note per repository folder (schemas/, templates/) that overrides the
    installed llmgen's copy and differs from it; empty when nothing does."""
    notes = []
    for name in FOLDERS:
        own = root / name
        if not own.is_dir():
            continue
        packaged = packaged_dir(name)
        if own.resolve() == packaged.resolve():
            continue
        mine, theirs = _digests(own), _digests(packaged)
        changed = sorted(k for k in mine.keys() & theirs.keys() if mine[k] != theirs[k])
        only_mine = sorted(mine.keys() - theirs.keys())
        missing = sorted(theirs.keys() - mine.keys())
        if not (changed or only_mine or missing):
            continue
        counts = [
            f"{len(v)} {what}"
            for v, what in (
                (changed, "differ"),
                (missing, "missing here"),
                (only_mine, "only here"),
            )
            if v
        ]
        first = (changed + missing + only_mine)[0]
        notes.append(
            f"{name}/ overrides llmgen {llmgen.__version__}'s copy and differs from it "
            f"({', '.join(counts)}; e.g. {name}/{first}); llmgen uses yours. "
            f"Delete {name}/ to follow the installed llmgen, or 'llmgen eject --force' "
            "to take its copy again."
        )
    return notes
