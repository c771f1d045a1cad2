"""clouds: everything that differs between AWS and GCP, one class per cloud
behind `CloudProvider` (base.py): node pools, workload identity, weights
mirrors, secret-store backends, load-balancer annotations, cloud add-ons.

It sits below plan because plan asks it for pools and identities, and render
asks it for the resources; it imports only `catalog` and the foundation
modules at run time (plan types appear under TYPE_CHECKING only).
"""

from __future__ import annotations

from llmgen.clouds import aws, gcp  # noqa: F401  (importing registers the built-in clouds)
from llmgen.clouds.base import (
    REGISTRY,
    CloudProvider,
    NodePoolResource,
    WeightsSync,
    register,
    unregister,
)


def get_provider(name: str) -> CloudProvider:
    try:
        return REGISTRY[name]()
    except KeyError:
        raise KeyError(f"no cloud provider named {name!r}; known: {sorted(REGISTRY)}") from None


def known_clouds() -> list[str]:
    return sorted(REGISTRY)


def registered() -> list[type[CloudProvider]]:
    """Every registered provider class, by name."""
    return [REGISTRY[n] for n in sorted(REGISTRY)]


__all__ = [
    "CloudProvider",
    "NodePoolResource",
    "WeightsSync",
    "get_provider",
    "known_clouds",
    "register",
    "registered",
    "unregister",
]
