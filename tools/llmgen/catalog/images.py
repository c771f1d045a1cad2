"""The tool images llmgen renders besides the models' own, and their overrides.

Each is pinned by version tag here; the Platform's `spec.images.<key>`
replaces it (a mirror, or the same tag with its `@sha256:` digest). An
environment with `requirePinned` refuses any of them without a digest
(`catalog/rules_names.py pinned_tool_images`), as it does the vLLM images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmgen.catalog.model import Platform

#: key -> (default image, what runs it, which clusters render it)
TOOL_IMAGES: dict[str, tuple[str, str, str]] = {
    # AWS CLI for `aws s3 sync` of the weights mirror (fetch-weights on EKS).
    "weightsFetchAws": ("public.ecr.aws/aws-cli/aws-cli:2.27.0", "the weights fetch", "aws"),
    # gcloud for `gcloud storage rsync` of the weights mirror (fetch-weights on GKE).
    "weightsFetchGcp": (
        "gcr.io/google.com/cloudsdktool/google-cloud-cli:540.0.0-slim",
        "the weights fetch",
        "gcp",
    ),
    # Shell plus kubectl for the gpu-readiness DaemonSet (EKS with GPU pools).
    "gpuReadiness": ("alpine/k8s:1.33.5", "the gpu-readiness DaemonSet", "aws"),
    # The Gateway API Inference Extension's body-based router beside every
    # ingress gateway (render/concerns/bodyrouting.py).
    "bodyRouter": (
        "registry.k8s.io/gateway-api-inference-extension/bbr:v1.3.0",
        "the body-based router",
        "any",
    ),
    # The Gateway API Inference Extension's endpoint picker, one per
    # InferencePool (render/concerns/inferencepool.py): only in environments
    # with `routing.endpointPicking: inferencePool`.
    "endpointPicker": (
        "registry.k8s.io/gateway-api-inference-extension/epp:v1.3.0",
        "the endpoint picker",
        "any",
    ),
}


def default(key: str) -> str:
    return TOOL_IMAGES[key][0]


def tool_image(platform: Platform | None, key: str) -> str:
    """The image to render for `key`: the Platform's override, else the default."""
    if platform is not None and key in platform.images:
        return platform.images[key]
    return default(key)
