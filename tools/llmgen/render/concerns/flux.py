"""The Flux skeleton of a cluster folder: its source and three ordered layers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from llmgen.render.types import LAYER_DEPENDS, LAYERS, OPTIONAL_LAYERS, Output

if TYPE_CHECKING:
    from llmgen.plan.build import ClusterPlan

SOURCE_NAME = "llmgen"
FLUX_NAMESPACE = "flux-system"

# Per layer: how long Flux waits for health, and how often it re-applies.
# Model layers wait longest: a 70B model can take many minutes to become ready.
_TIMEOUTS = {
    "infrastructure/controllers": "10m",
    "infrastructure/configs": "10m",
    "infrastructure/mesh-identity": "10m",
    "models": "30m",
    # Health here is the Jobs having started (kstatus), not the copy finishing.
    "weights": "10m",
}


def layer_name(layer: str) -> str:
    return layer.replace("/", "-")


def layers_of(cp: ClusterPlan) -> tuple[str, ...]:
    """The layers this cluster renders: every fixed one, and `weights` on a sync cluster."""
    return tuple(
        layer for layer in LAYERS if layer not in OPTIONAL_LAYERS or bool(cp.mirror_items)
    )


def outputs(cp: ClusterPlan) -> Iterator[Output]:
    p = cp.platform
    labels = cp.labels
    yield Output(
        path=f"gitrepository-{SOURCE_NAME}.yaml",
        template="flux/gitrepository.yaml.j2",
        context={
            "name": SOURCE_NAME,
            "namespace": FLUX_NAMESPACE,
            "labels": labels,
            "url": p.git_url,
            "branch": p.git_branch,
            "secret": p.git_secret,
            "interval": p.git_interval,
        },
    )
    for layer in layers_of(cp):
        name = layer_name(layer)
        yield Output(
            path=f"kustomization-{name}.yaml",
            template="flux/kustomization.yaml.j2",
            context={
                "name": name,
                "namespace": FLUX_NAMESPACE,
                "labels": labels,
                "path": f"./generated/clusters/{cp.name}/{layer}",
                "source": SOURCE_NAME,
                "depends_on": [layer_name(d) for d in LAYER_DEPENDS[layer]],
                "timeout": _TIMEOUTS[layer],
                "interval": "10m",
                "retry_interval": "1m",
            },
        )
