"""Names and routes that would collide: reserved file names, capturing route prefixes.

- A model's resources land in `models/<model>.yaml` and an add-on's in
  `infrastructure/controllers/<addon>.yaml`, beside each layer's
  `kustomization.yaml`: a model or add-on named `kustomization` would
  overwrite it (`names.RESERVED`).
- The gateway matches a model's `routePrefix` as a path prefix (with a
  trailing slash, `render/concerns/traffic.py match_prefix`) before the
  header routes under plain `/v1/`, longest prefix first. A prefix whose
  segments begin another route's segments takes that route's traffic: `/v1`
  takes every request, `/v1/chat` takes `/v1/chat/completions` from every
  header-routed client, `/v1/team` takes `/v1/team/bge/...`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from llmgen.catalog import images, names
from llmgen.catalog.rulekit import Context, Rule
from llmgen.errors import Diagnostic

#: The OpenAI-compatible paths vLLM serves under /v1 (vllm-project/vllm
#: docs/serving/openai_compatible_server.md: completions, chat, embeddings,
#: audio; plus its /v1 score, rerank, classify, pooling and LoRA routes),
#: which clients reach on the gateway's header routes under plain `/v1/`.
OPENAI_PATHS = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/models",
    "/v1/responses",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/v1/score",
    "/v1/rerank",
    "/v1/classify",
    "/v1/pooling",
    "/v1/load_lora_adapter",
    "/v1/unload_lora_adapter",
)


def _segments(path: str) -> tuple[str, ...]:
    return tuple(s for s in path.split("/") if s)


def captures(prefix: str, path: str) -> bool:
    """True when requests to `path` (or below it) match the route `prefix`."""
    p, q = _segments(prefix), _segments(path)
    return len(p) <= len(q) and q[: len(p)] == p


def reserved_names(ctx: Context) -> Iterator[Diagnostic]:
    """No model or add-on is named like a file llmgen writes beside it."""
    for model in ctx.catalog.models.values():
        if model.name in names.RESERVED:
            yield model.where.doc.diagnostic(
                ("metadata", "name"),
                f"{model.name!r} is a reserved name: models/{model.name}.yaml would replace "
                "the layer's own kustomization.yaml; choose another name",
            )
    platform = ctx.catalog.platform
    for addon in platform.addons.values() if platform is not None else ():
        if addon.name in names.RESERVED:
            yield addon.where.error(
                f"{addon.name!r} is a reserved name: infrastructure/controllers/"
                f"{addon.name}.yaml would replace the layer's own kustomization.yaml",
                key=True,
            )


def route_capture(ctx: Context) -> Iterator[Diagnostic]:
    """No routePrefix captures `/v1/`, vLLM's OpenAI paths or another model's route."""
    models = ctx.catalog.models
    for model in models.values():
        prefix = model.route_prefix
        fixed = ["/v1/", *OPENAI_PATHS]
        taken = next((p for p in fixed if captures(prefix, p)), None)
        if taken is not None:
            yield model.where.error(
                f"routePrefix {prefix!r} captures the gateway's {taken} route, which clients "
                "reach with the model header; use a prefix of its own such as "
                f"/v1/{model.name}",
                "serving",
                "routePrefix",
            )
    # Within an environment (one gateway), no route may sit under another's prefix.
    seen: set[tuple[str, str]] = set()
    for env in ctx.catalog.environments.values():
        placed = [models[d.name] for d in env.models if d.name in models]
        for i, j in nested([m.route_prefix for m in placed]):
            model, other = placed[i], placed[j]
            if other.name == model.name or other.route_prefix == model.route_prefix:
                continue  # equal prefixes are unique_routes' finding
            if (model.name, other.name) not in seen:
                seen.add((model.name, other.name))
                yield model.where.error(
                    f"routePrefix {model.route_prefix!r} captures model {other.name!r}'s "
                    f"route {other.route_prefix!r} in environment {env.name!r}",
                    "serving",
                    "routePrefix",
                )


def nested(prefixes: Sequence[str]) -> Iterator[tuple[int, int]]:
    """Every (i, j) with `captures(prefixes[i], prefixes[j])`, in (i, j) order.

    Each route is indexed under every leading run of its segments, so a
    prefix finds the routes it captures in one lookup instead of testing
    every pair (200 models: 40,000 pairs per environment).
    """
    below: dict[tuple[str, ...], list[int]] = {}
    for j, prefix in enumerate(prefixes):
        segs = _segments(prefix)
        for k in range(len(segs) + 1):
            below.setdefault(segs[:k], []).append(j)
    for i, prefix in enumerate(prefixes):
        for j in below.get(_segments(prefix), ()):
            yield i, j


#: The gpu-readiness DaemonSet (EKS clusters with GPU pools) is confined to its
#: own node by a ValidatingAdmissionPolicy on the token's node claim: VAP v1 and
#: the claim (ServiceAccountTokenPodNodeInfo) are on by default from 1.30.
READINESS_MIN_KUBERNETES = (1, 30)


def readiness_kubernetes(ctx: Context) -> Iterator[Diagnostic]:
    """EKS clusters with GPU pools run a Kubernetes that enforces gpu-readiness's policy."""
    for cluster in ctx.catalog.clusters.values():
        if cluster.cloud != "aws" or not cluster.node_pools:
            continue
        major, _, minor = cluster.kubernetes_version.partition(".")
        if (int(major), int(minor or 0)) < READINESS_MIN_KUBERNETES:
            yield cluster.where.error(
                f"Kubernetes {cluster.kubernetes_version} is too old: the gpu-readiness "
                "DaemonSet is confined to its own node by a ValidatingAdmissionPolicy on the "
                "service account token's node claim, which needs 1.30 or later",
                "kubernetesVersion",
            )


_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def pinned_tool_images(ctx: Context) -> Iterator[Diagnostic]:
    """Where requirePinned, the tool images rendered on its clusters carry a digest too."""
    cat = ctx.catalog
    if cat.platform is None:
        return  # a missing or invalid Platform is reported as such
    for env in cat.environments.values():
        if not env.require_pinned:
            continue
        clouds = {cat.clusters[c].cloud for c in env.clusters if c in cat.clusters}
        gpu_aws = any(
            cat.clusters[c].cloud == "aws" and cat.clusters[c].node_pools
            for c in env.clusters
            if c in cat.clusters
        )
        for key, (_default, what, cloud) in images.TOOL_IMAGES.items():
            if (cloud != "any" and cloud not in clouds) or (key == "gpuReadiness" and not gpu_aws):
                continue
            if key == "endpointPicker" and not env.uses_inference_pools:
                continue
            where = "on every cluster" if cloud == "any" else f"on {cloud}"
            image = images.tool_image(cat.platform, key)
            if not _DIGEST.search(image):
                yield env.where.error(
                    f"this environment requires pinned images, but {what} {where} runs "
                    f"{image!r} without a digest: set the Platform's spec.images.{key} to "
                    "that image with its @sha256:<digest> (crane digest IMAGE)",
                    "requirePinned",
                )


NAME_RULES: tuple[Rule, ...] = (
    reserved_names,
    route_capture,
    readiness_kubernetes,
    pinned_tool_images,
)
