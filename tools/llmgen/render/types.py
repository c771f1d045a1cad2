"""What the concerns hand the engine: `Output` (one file to render), the Flux
layers and what each waits for, and the file-name rule. Concerns import these
from here, so the engine can import the concerns without a cycle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmgen.errors import RenderSafetyError

#: The infrastructure Flux layers, in apply order; each is its own kustomize
#: root and its own Flux Kustomization. Models follow: one Flux Kustomization
#: per model, at `models/<model>` (`model_layer`). The graph is documented in
#: docs/layers.md.
INFRA_LAYERS = (
    "infrastructure/controllers",
    "infrastructure/mesh-ca",
    "infrastructure/istio",
    "infrastructure/node-pools",
    "infrastructure/configs",
    "infrastructure/mesh-identity",
    # The weights sync Jobs, on a cloud's sync cluster only (OPTIONAL_LAYERS).
    "weights",
)
MODELS = "models"
WEIGHTS = "weights"
#: Folders holding one Flux path (and one Flux Kustomization) per model, so no
#: Flux path grows with the catalog: `models/<model>` (its workloads where it
#: is placed, its gateway routes where it is routed) and `weights/<model>`
#: (the sync Jobs of its revisions, on a cloud's sync cluster; `weights`
#: itself is a layer: the namespace, its policy and the shared alerts).
COLLECTIONS = (MODELS, WEIGHTS)
#: The LAYER_DEPENDS key of the `weights/<model>` folders.
WEIGHTS_ITEMS = f"{WEIGHTS}/*"
#: Every layer folder a rendered path may start with (`models` holds one
#: folder, and one Flux Kustomization, per model).
LAYERS = (*INFRA_LAYERS, MODELS)
#: What each layer needs to exist before it applies, and nothing else: one rule
#: for every layer. A dependency is "ready" when the objects its dependents
#: need exist (CRDs Established, the mesh CA Secret, istiod's injection
#: webhook), never when an unrelated add-on is healthy (flux.py renders those
#: health checks). Node pools, gateway policy, mesh identity and weights are
#: leaves: nothing waits on them, so none of them can block a model change or
#: a stop.
LAYER_DEPENDS: dict[str, tuple[str, ...]] = {
    "infrastructure/controllers": (),
    # the ClusterSecretStore and ExternalSecret CRDs, and ESO running
    "infrastructure/mesh-ca": ("infrastructure/controllers",),
    # istiod must find a complete /etc/cacerts at its first start
    "infrastructure/istio": ("infrastructure/mesh-ca",),
    "infrastructure/node-pools": ("infrastructure/controllers",),
    "infrastructure/configs": ("infrastructure/controllers", "infrastructure/istio"),
    "infrastructure/mesh-identity": ("infrastructure/controllers", "infrastructure/istio"),
    MODELS: ("infrastructure/controllers", "infrastructure/istio"),
    # Weights sync Jobs (render/concerns/weightsync.py): like models, what must
    # exist first is the ExternalSecret (and PrometheusRule) CRDs; External
    # Secrets retries until configs' ClusterSecretStore exists, so configs
    # stays a leaf. Nothing depends on this layer: kstatus calls a started Job
    # Current, so a dependency would not wait for the copy; model pods wait
    # for the mirror's manifest instead.
    "weights": ("infrastructure/controllers",),
    # One model's sync Jobs: their namespace is the `weights` layer's.
    WEIGHTS_ITEMS: ("infrastructure/controllers", "weights"),
}
#: Layers only some clusters render (folder and Flux Kustomization only where
#: a concern puts something in them): `weights` on each cloud's sync cluster.
OPTIONAL_LAYERS = frozenset({"weights"})


#: Flux kustomize-controller never deletes an object carrying this annotation,
#: neither when it leaves the source nor when its Kustomization is deleted
#: (fluxcd.io kustomize docs, "Garbage collection"). On what a prune must never
#: take: infrastructure namespaces (istio-system holds `cacerts`) and the
#: releases of the mesh's CRDs, certificates and secret sync.
PRUNE_DISABLED = {"kustomize.toolkit.fluxcd.io/prune": "disabled"}


def model_layer(model: str) -> str:
    """`llama` -> `models/llama`: the folder (and Flux path) of one model."""
    return f"{MODELS}/{model}"


def weights_layer(model: str) -> str:
    """`llama` -> `weights/llama`: the sync Jobs of one model's revisions."""
    return f"{WEIGHTS}/{model}"


def collection_of(layer: str) -> str | None:
    """`models/llama` -> `models`, `weights/llama` -> `weights`; a plain layer -> None."""
    return next((c for c in COLLECTIONS if layer.startswith(c + "/")), None)


def layer_family(layer: str) -> str:
    """The LAYER_DEPENDS key of a layer: per-model folders share their collection's."""
    return {MODELS: MODELS, WEIGHTS: WEIGHTS_ITEMS}.get(collection_of(layer) or "", layer)


@dataclass(frozen=True)
class Output:
    """One file a concern asks for: `path` is relative to the cluster folder."""

    path: str
    template: str
    context: Mapping[str, Any]
    input_hash: str = ""


_SAFE_SEGMENT = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z")


def file_name(kind: str, name: str) -> str:
    """`Deployment`, `llama-3` -> `deployment-llama-3.yaml` (names are DNS-1123)."""
    if not _SAFE_SEGMENT.match(name):
        raise RenderSafetyError(name, "object name is not a safe file name")
    return f"{kind.lower()}-{name}.yaml"
