"""Where llmgen finds its schemas and templates.

A repository's own `schemas/` or `templates/` folder wins, so a team can
adapt them; otherwise the copies packaged into the wheel (`llmgen/_data/`)
are used, and in a source checkout without a wheel the folders next to
`tools/`.
"""

from __future__ import annotations

from pathlib import Path

import llmgen


def _data_dir(root: Path | None, name: str) -> Path:
    if root is not None and (root / name).is_dir():
        return root / name
    packaged = Path(llmgen.__file__).parent / "_data" / name
    if packaged.is_dir():
        return packaged
    # tools/llmgen/resources.py -> the repository root is two folders up from the package.
    return Path(__file__).resolve().parents[2] / name


def schemas_dir(root: Path | None) -> Path:
    """The folder holding `<kind>.schema.json` for every catalog kind."""
    return _data_dir(root, "schemas")


def templates_dir(root: Path | None) -> Path:
    """The folder holding the jinja2 templates, one subfolder per concern."""
    return _data_dir(root, "templates")
