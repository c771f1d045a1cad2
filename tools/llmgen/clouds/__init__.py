"""Cloud providers: one class per cloud behind `CloudProvider` (see base.py)."""

from __future__ import annotations

from .base import CloudProvider, get_provider, known_clouds, register, unregister

__all__ = ["CloudProvider", "get_provider", "known_clouds", "register", "unregister"]
