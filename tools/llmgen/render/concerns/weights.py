"""Model weights: how big they are, and the init containers that fetch and verify them.

Decision: weights are copied by an init container from the cloud-local mirror
(`weights.uris[cloud]`, at the pinned revision) into an emptyDir, then a
second init container checks them against `weights.sha256` before vLLM may
start. The emptyDir lives on the node's local disk (instance-store NVMe in
RAID0 on EKS, a boot disk sized for it on GKE), so:

- a vLLM crash or OOM restarts only the container; the pod's emptyDir and its
  verified weights stay, nothing is downloaded again;
- a new pod copies from the in-region mirror at object-store speed, which is
  faster than a ReadWriteMany share (EFS/Filestore) for 100+ GB and needs no
  zone-pinned ReadWriteOnce volume that replicas in other zones could not share;
- the namespace can enforce the `restricted` Pod Security level (no hostPath).

`weights.sha256` is the SHA-256 of a manifest file, `MANIFEST`, stored in the
mirror beside the weights: `sha256sum` output listing every file. Checking the
manifest's hash and then every file against the manifest pins the exact bytes
with one catalog value, however many shards a model has.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmgen.catalog.model import Model
    from llmgen.clouds import CloudProvider

WEIGHTS_DIR = "/models/weights"
MANIFEST = "llmgen-manifest.sha256"

# Bytes per parameter by quantization (4-bit schemes) or dtype.
_QUANT_BYTES = {
    "awq": 0.5,
    "awq_marlin": 0.5,
    "gptq": 0.5,
    "gptq_marlin": 0.5,
    "bitsandbytes": 0.5,
    "fp8": 1.0,
    "int8": 1.0,
}
_DTYPE_BYTES = {"float32": 4.0, "float": 4.0, "bfloat16": 2.0, "float16": 2.0, "half": 2.0}

# The verify step reads its inputs from the environment, never from text
# pasted into the script, so no catalog value can change what the shell runs.
VERIFY_SCRIPT = (
    'cd "$WEIGHTS_DIR"\n'
    'echo "$WEIGHTS_SHA256  $WEIGHTS_MANIFEST" | sha256sum -c -\n'
    'sha256sum -c --quiet --strict "$WEIGHTS_MANIFEST"\n'
)
# Weights the catalog does not pin (a canary of another revision without
# `canary.weightsSha256`, outside pinned environments): every file
# still has to match the mirror's manifest, so a partial or corrupted copy
# never starts; only the manifest's own pin is missing.
VERIFY_FILES_SCRIPT = 'cd "$WEIGHTS_DIR"\nsha256sum -c --quiet --strict "$WEIGHTS_MANIFEST"\n'


def bytes_per_parameter(model: Model) -> float:
    if model.quantization:
        return _QUANT_BYTES.get(model.quantization.lower(), 2.0)
    return _DTYPE_BYTES.get(model.dtype.lower(), 2.0)


def weights_gib(model: Model) -> float:
    """Approximate on-disk size of the weights in GiB."""
    return model.parameters_b * 1e9 * bytes_per_parameter(model) / 2**30


def cache_size_gib(model: Model) -> int:
    """The weights emptyDir's size limit: the weights plus 25 % (tokenizer, configs)."""
    return max(1, math.ceil(weights_gib(model) * 1.25))


def startup_budget_seconds(model: Model) -> int:
    """How long vLLM may take from start to /health answering.

    Weights are already on local disk when vLLM starts (init containers do the
    download, and they have no deadline), so this covers reading them into GPU
    memory at a conservative 0.25 GiB/s per GPU plus a fixed 5 minutes for
    CUDA initialisation, torch.compile and CUDA graph capture.
    """
    per_gpu = weights_gib(model) / max(1, model.gpu_count)
    return 300 + math.ceil(per_gpu / 0.25)


def shm_size_gib(model: Model) -> int:
    """`/dev/shm` for NCCL between tensor-parallel workers; 2 GiB is enough for one GPU."""
    if model.gpu_count <= 1:
        return 2
    return min(16, 4 * model.gpu_count)


def wait_container(
    provider: CloudProvider, uri: str, security: dict[str, Any], tmp: dict[str, Any]
) -> dict[str, Any]:
    """wait-for-mirror: poll until the mirror holds its manifest, which the weights
    sync Job writes last (render/concerns/weightsync.py), so no pod ever copies
    a half-written prefix of a new revision; a mirror filled by hand has it too."""
    wait = provider.mirror_wait(uri)
    env = {**wait.env, "WEIGHTS_MANIFEST": MANIFEST}
    return {
        "name": "wait-for-mirror",
        "image": wait.image,
        "imagePullPolicy": "Always",
        "command": list(wait.command),
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "resources": {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "512Mi"},
        },
        "securityContext": security,
        "volumeMounts": [tmp],
    }


def init_containers(
    provider: CloudProvider, model: Model, security: dict[str, Any], tmp_volume: str
) -> list[dict[str, Any]]:
    """fetch-weights then verify-weights; empty when the cloud has no mirror.

    verify-weights pins the manifest to `weights_sha256`; a model without one
    (a canary of a revision the catalog does not pin) checks its files against
    the mirror's manifest only.
    """
    uri = provider.weights_uri(model)
    if not uri:
        return []
    sync = provider.weights_sync(uri, WEIGHTS_DIR)
    tmp = {"name": tmp_volume, "mountPath": "/tmp"}
    writable = [{"name": "weights", "mountPath": WEIGHTS_DIR}, tmp]
    read_only = [{"name": "weights", "mountPath": WEIGHTS_DIR, "readOnly": True}, tmp]
    # Copying is network- and disk-bound: a modest CPU request, and enough
    # memory for multipart buffers.
    pinned = bool(model.weights_sha256)
    verify_env = [
        {"name": "WEIGHTS_DIR", "value": WEIGHTS_DIR},
        {"name": "WEIGHTS_MANIFEST", "value": MANIFEST},
    ]
    if pinned:
        verify_env.append({"name": "WEIGHTS_SHA256", "value": model.weights_sha256})
    resources = {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"cpu": "4", "memory": "2Gi"},
    }
    return [
        wait_container(provider, uri, security, tmp),
        {
            "name": "fetch-weights",
            "image": sync.image,
            "imagePullPolicy": "Always",
            "command": list(sync.command),
            "env": [{"name": k, "value": v} for k, v in sorted(sync.env.items())],
            "resources": resources,
            "securityContext": security,
            "volumeMounts": writable,
        },
        {
            "name": "verify-weights",
            "image": model.image,
            "imagePullPolicy": "Always",
            "command": ["/bin/sh", "-ec", VERIFY_SCRIPT if pinned else VERIFY_FILES_SCRIPT],
            "env": verify_env,
            "resources": resources,
            "securityContext": security,
            "volumeMounts": read_only,
        },
    ]
