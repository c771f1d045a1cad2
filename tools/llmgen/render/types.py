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

#: The three Flux layers, in apply order; each is its own kustomize root.
LAYERS = (
    "infrastructure/controllers",
    "infrastructure/configs",
    "infrastructure/mesh-identity",
    "models",
    "weights",
)
#: What each layer waits for. Identity material fetched or issued from outside
#: the cluster (mesh CA and peer secrets, the gateway certificate) sits in its
#: own layer that nothing waits on: one peer's missing secret or a slow ACME
#: order must not hold back every model rollout.
LAYER_DEPENDS = {
    "infrastructure/controllers": (),
    "infrastructure/configs": ("infrastructure/controllers",),
    "infrastructure/mesh-identity": ("infrastructure/configs",),
    "models": ("infrastructure/configs",),
    # Weights sync Jobs (render/concerns/weightsync.py) need the secret stores
    # of configs. Nothing depends on this layer: kstatus calls a started Job
    # Current, so a dependency would not wait for the copy; model pods wait
    # for the mirror's manifest instead.
    "weights": ("infrastructure/configs",),
}
#: Layers only some clusters render (folder and Flux Kustomization only where
#: a concern puts something in them): `weights` on each cloud's sync cluster.
OPTIONAL_LAYERS = frozenset({"weights"})


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
