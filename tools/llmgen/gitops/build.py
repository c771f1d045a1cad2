"""`llmgen build --cluster C`: the fully built stream of one cluster.

For tools that do not run Flux's kustomize-controller (Argo CD, `kubectl diff`,
`kubectl apply --server-side --dry-run=server`). The cluster folder's root
kustomization lists Flux Kustomizations; each one's `spec.path` is built with
the kustomize inside kubectl, in `dependsOn` order (what Flux applies first
comes first), so the stream is what Flux would apply, in the same order.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llmgen.errors import LlmgenError, UsageError
from llmgen.verify.kustomize import find_kubectl

GENERATED = "generated"
FLUX_KUSTOMIZATION = "kustomize.toolkit.fluxcd.io/"


class BuildError(LlmgenError):
    """kustomize could not build a folder of generated/ (stale or hand-edited)."""

    exit_code = 1


@dataclass(frozen=True)
class Layer:
    name: str
    namespace: str
    path: str  # repo-relative, as the Flux Kustomization names it
    depends_on: tuple[str, ...]


def _kustomize(kubectl: Path, folder: Path, root: Path) -> str:
    done = subprocess.run(
        [str(kubectl), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        where = folder.relative_to(root).as_posix()
        raise BuildError(f"kustomize build of {where} failed: {done.stderr.strip()}")
    return done.stdout


def _layers(flux_stream: str) -> list[Layer]:
    layers = []
    for doc in yaml.safe_load_all(flux_stream):
        if not isinstance(doc, dict) or doc.get("kind") != "Kustomization":
            continue
        if not str(doc.get("apiVersion", "")).startswith(FLUX_KUSTOMIZATION):
            continue
        meta: dict[str, Any] = doc.get("metadata", {})
        spec: dict[str, Any] = doc.get("spec", {})
        layers.append(
            Layer(
                meta["name"],
                meta.get("namespace", ""),
                str(spec.get("path", "")),
                tuple(d["name"] for d in spec.get("dependsOn", [])),
            )
        )
    return layers


def apply_order(layers: list[Layer]) -> list[Layer]:
    """Dependencies first; ties by name, so the stream is deterministic."""
    by_name = {layer.name: layer for layer in layers}
    done: list[Layer] = []
    seen: set[str] = set()

    def visit(layer: Layer, stack: tuple[str, ...]) -> None:
        if layer.name in seen:
            return
        if layer.name in stack:
            raise BuildError(f"dependsOn cycle: {' -> '.join((*stack, layer.name))}")
        for dep in sorted(layer.depends_on):
            if dep in by_name:
                visit(by_name[dep], (*stack, layer.name))
        seen.add(layer.name)
        done.append(layer)

    for layer in sorted(layers, key=lambda x: x.name):
        visit(layer, ())
    return done


def build_cluster(root: Path, cluster: str, with_flux: bool = False) -> str:
    """Every resource Flux applies to `cluster`, built, as one YAML stream.

    With `with_flux`, the Flux objects of the cluster folder itself come first.
    """
    folder = root / GENERATED / "clusters" / cluster
    if not (folder / "kustomization.yaml").is_file():
        known = sorted(p.name for p in (root / GENERATED / "clusters").glob("*") if p.is_dir())
        raise UsageError(
            f"no rendered cluster {cluster!r} in {GENERATED}/clusters "
            f"(rendered: {', '.join(known) or 'none'}; run 'llmgen render')"
        )
    kubectl = find_kubectl()
    flux = _kustomize(kubectl, folder, root)
    parts = [flux] if with_flux else []
    for layer in apply_order(_layers(flux)):
        path = (root / layer.path).resolve()
        if not path.is_relative_to(root.resolve()):
            raise BuildError(f"Flux Kustomization {layer.name} points outside the repository")
        built = _kustomize(kubectl, path, root)
        head = f"# Flux Kustomization {layer.namespace}/{layer.name}: {layer.path}\n"
        parts.append(head + built)
    return "---\n".join(p if p.endswith("\n") else p + "\n" for p in parts if p.strip())
