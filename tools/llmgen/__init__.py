"""llmgen: render GitOps manifests for LLM inference from a YAML catalog."""

from __future__ import annotations

__version__ = "0.1.0"
API_VERSION = "llmgen.io/v1alpha1"
