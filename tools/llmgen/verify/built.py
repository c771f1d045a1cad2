"""What Flux applies: the kustomize-built output of each Flux path, mapped back to sources.

Flux applies `kustomize build <spec.path>`, not the files: overlays
(Kustomize Components under `overlays/`), patches and `namespace:` change
objects on the way. Each built object is matched to the generated document
it came from by kind, namespace and name. An unchanged object is the source
document itself (already checked); a changed one keeps the source's file and
text, so a finding still points at the generated line, and names the
overlays that changed it; an object no generated file holds (added by an
overlay) is located at the overlay.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmgen.catalog.load import PathKey
from llmgen.errors import Diagnostic
from llmgen.verify.manifests import Manifest, split_documents

Key = tuple[str, str, str]  # (kind, namespace, name)


@dataclass(frozen=True, slots=True)
class Overlaid(Manifest):
    """A generated document as an overlay changed it: findings say which overlay."""

    changed_by: str = ""

    def diagnostic(
        self, path: PathKey, message: str, *, at: PathKey | None = None, **kw: Any
    ) -> Diagnostic:
        text = f"{message} (as built with {self.changed_by})"
        return Manifest.diagnostic(self, path, text, at=at, **kw)


@dataclass(frozen=True, slots=True)
class Built:
    """One object Flux applies, and whether an overlay changed it."""

    manifest: Manifest
    changed_by: str  # the overlays of the folder when the object differs; "" if not


def flux_paths(flux: list[Manifest]) -> set[str]:
    """Repo-relative folders that Flux Kustomizations apply (`spec.path`)."""
    out: set[str] = set()
    for m in flux:
        if m.kind != "Kustomization" or not isinstance(m.data, dict):
            continue
        spec = m.data.get("spec")
        path = spec.get("path") if isinstance(spec, dict) else None
        if isinstance(path, str):
            out.add(os.path.normpath(path.lstrip("/")).replace(os.sep, "/"))
    return out


def overlays(folder: str, config: Manifest | None) -> str:
    """The components a folder's kustomization.yaml adds, as repo-relative files."""
    if config is None or not isinstance(config.data, dict):
        return ""
    found = []
    for entry in config.data.get("components") or []:
        if isinstance(entry, str):
            path = os.path.normpath(f"{folder}/{entry}").replace(os.sep, "/")
            found.append(f"{path}/kustomization.yaml")
    return ", ".join(found)


def map_built(
    folder: str,
    text: str,
    sources: Mapping[Key, Manifest],
    changed_by: str,
) -> list[Built]:
    """The objects of one folder's build, each tied to its generated document."""
    out: list[Built] = []
    for item in split_documents(text, folder):
        if not isinstance(item, Manifest) or not isinstance(item.data, dict):
            continue
        source = sources.get((item.kind, item.namespace, item.name))
        if source is not None and source.data == item.data:
            out.append(Built(source, ""))
        elif source is not None:
            why = changed_by or f"kustomize build of {folder}"
            located = Overlaid(
                source.file, source.line, item.data, source.text, source.text_line, why
            )
            out.append(Built(located, why))
        else:
            why = changed_by or f"kustomize build of {folder}"
            where = changed_by.split(", ")[0] if changed_by else f"{folder}/kustomization.yaml"
            out.append(Built(Overlaid(where, 1, item.data, "", 1, why), why))
    return out
