"""Cloud providers: one class per cloud behind `CloudProvider` (see base.py)."""

from __future__ import annotations

from .base import (
    CloudProvider,
    NodePoolResource,
    WeightsSync,
    get_provider,
    known_clouds,
    register,
    registered,
    unregister,
)

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
