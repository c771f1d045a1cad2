"""Shell completion of catalog names: environments, clusters and models.

Runs inside the shell's completion call, so it reads only `metadata.name` of
the files of one catalog folder and never fails: a broken file completes
nothing rather than printing an error into the user's prompt.
"""

from __future__ import annotations

from pathlib import Path

import typer

#: completion kind -> the catalog folder holding those documents
FOLDERS = {"environments": "environments", "clusters": "clusters", "models": "models"}


def _root(ctx: typer.Context) -> Path | None:
    given = ctx.params.get("root")
    if given is not None:
        return Path(given)
    here = Path.cwd()
    for candidate in (here, *here.parents):
        if (candidate / "catalog").is_dir():
            return candidate
    return None


def names_in(folder: Path) -> list[str]:
    """Sorted `metadata.name` of every YAML document in `folder`."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    found: set[str] = set()
    for path in sorted(folder.glob("*.y*ml")):
        try:
            for doc in yaml.load_all(path.read_text(encoding="utf-8"), Loader=loader):
                name = doc.get("metadata", {}).get("name") if isinstance(doc, dict) else None
                if isinstance(name, str):
                    found.add(name)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError):
            continue
    return sorted(found)


def catalog_names(ctx: typer.Context, kind: str) -> list[str]:
    root = _root(ctx)
    if root is None:
        return []
    return names_in(root / "catalog" / FOLDERS[kind])
