"""LoRA adapters in the model pods: fetched and verified like the base weights,
loaded by vLLM at start.

Each adapter is copied from its cloud-local mirror into its own folder of the
`adapters` emptyDir by a `fetch-adapter-<i>` init container and checked by a
`verify-adapter-<i>` container against the mirror's manifest (and the
catalog's `weights.sha256` where pinned), with the same script as the base
weights. vLLM then serves them from start (vLLM's OpenAI server,
`--enable-lora --lora-modules name=path ...`, `--max-loras` = the number of
adapters so none is evicted, `--max-lora-rank` = the largest rank): a request
whose `model` is an adapter's name runs on the base weights with that adapter,
and `GET /v1/models` on a replica lists them. The gateway reaches the base
model's replicas for an adapter name through the body router's base-model
mapping (bodyrouting.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmgen.render.concerns import weights

if TYPE_CHECKING:
    from llmgen.catalog.model import Adapter, Model
    from llmgen.clouds import CloudProvider

ADAPTERS_DIR = "/models/adapters"
VOLUME = "adapters"
#: A LoRA adapter of rank r over a 70B model is well under 1 GiB (r = 16:
#: ~0.2 GiB in bf16); 2 GiB per adapter leaves room for rank 128 on 8B models.
GIB_PER_ADAPTER = 2
#: Adapters are small: two copy workers and two CPUs are plenty (the copy
#: tools size their pools from this, not from the node's core count).
ADAPTER_COPY_CPUS = 2


def adapter_dir(index: int) -> str:
    """The adapter's folder: by position, so no catalog text reaches a path."""
    return f"{ADAPTERS_DIR}/{index}"


def lora_args(model: Model) -> list[str]:
    """vLLM's LoRA flags, empty for a model without adapters."""
    if not model.adapters:
        return []
    modules = [f"{a.name}={adapter_dir(i)}" for i, a in enumerate(model.adapters)]
    return [
        "--enable-lora",
        "--max-loras", str(len(model.adapters)),
        "--max-lora-rank", str(max_rank(model)),
        "--lora-modules", *modules,
    ]  # fmt: skip


def max_rank(model: Model) -> int:
    """vLLM accepts ranks from a fixed set; round the largest up to the next one it takes."""
    largest = max(a.rank for a in model.adapters)
    for allowed in (8, 16, 32, 64, 128, 256, 320, 512):
        if largest <= allowed:
            return allowed
    return largest


def size_gib(model: Model) -> int:
    return GIB_PER_ADAPTER * len(model.adapters)


def mirrored(provider: CloudProvider, adapter: Adapter) -> str:
    return adapter.weight_uris.get(provider.name, "")


def init_containers(
    provider: CloudProvider,
    model: Model,
    security: dict[str, Any],
    tmp_volume: str,
    image: str | None = None,
) -> list[dict[str, Any]]:
    """fetch-adapter-<i> and verify-adapter-<i> per adapter with a mirror on this
    cloud; `image` is the Platform's weights-fetch image (None: the cloud's own)."""
    out: list[dict[str, Any]] = []
    tmp = {"name": tmp_volume, "mountPath": "/tmp"}
    resources = {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": str(ADAPTER_COPY_CPUS), "memory": "1Gi"},
    }
    for i, a in enumerate(model.adapters):
        uri = mirrored(provider, a)
        if not uri:
            continue
        folder = adapter_dir(i)
        sync = provider.weights_sync(uri, folder, ADAPTER_COPY_CPUS)
        mount = {"name": VOLUME, "mountPath": ADAPTERS_DIR}
        verify_env = [
            {"name": "WEIGHTS_DIR", "value": folder},
            {"name": "WEIGHTS_MANIFEST", "value": weights.MANIFEST},
            {"name": "VERIFY_PARALLELISM", "value": str(ADAPTER_COPY_CPUS)},
        ]
        if a.weights_sha256:
            verify_env.append({"name": "WEIGHTS_SHA256", "value": a.weights_sha256})
        out += [
            {
                "name": f"fetch-adapter-{i}",
                "image": image or sync.image,
                "imagePullPolicy": weights.pull_policy(image or sync.image),
                "command": list(sync.command),
                "env": [{"name": k, "value": v} for k, v in sorted(sync.env.items())],
                "resources": resources,
                "securityContext": security,
                "volumeMounts": [mount, tmp],
            },
            {
                "name": f"verify-adapter-{i}",
                "image": model.image,
                "imagePullPolicy": weights.pull_policy(model.image),
                "command": [
                    "/bin/sh",
                    "-ec",
                    weights.VERIFY_SCRIPT if a.weights_sha256 else weights.VERIFY_FILES_SCRIPT,
                ],
                "env": verify_env,
                "resources": resources,
                "securityContext": security,
                "volumeMounts": [{**mount, "readOnly": True}, tmp],
            },
        ]
    return out
