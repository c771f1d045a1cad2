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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmgen.catalog import fit, images

if TYPE_CHECKING:
    from llmgen.catalog.model import Model
    from llmgen.clouds import CloudProvider
    from llmgen.plan.build import ClusterPlan

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
# Files are hashed VERIFY_PARALLELISM at a time: GNU xargs hands each
# sha256sum a batch of manifest lines (newline-delimited, so names with
# spaces survive) and exits 123 when any batch fails, which fails the script.
_CHECK_FILES = (
    'xargs -r -d "\\n" -P "$VERIFY_PARALLELISM" -n 16'
    ' sh -c \'printf "%s\\n" "$@" | sha256sum -c --quiet --strict -\' verify'
    ' < "$WEIGHTS_MANIFEST"\n'
)
VERIFY_SCRIPT = (
    'cd "$WEIGHTS_DIR"\necho "$WEIGHTS_SHA256  $WEIGHTS_MANIFEST" | sha256sum -c -\n' + _CHECK_FILES
)
# Weights the catalog does not pin (a canary of another revision without
# `canary.weightsSha256`, outside pinned environments): every file
# still has to match the mirror's manifest, so a partial or corrupted copy
# never starts; only the manifest's own pin is missing.
VERIFY_FILES_SCRIPT = 'cd "$WEIGHTS_DIR"\n' + _CHECK_FILES


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


@dataclass(frozen=True)
class NodeIO:
    """What one replica gets of its node's disk and network, on the pool's slowest shape."""

    #: read (and write) throughput of the disk behind emptyDirs, MiB/s, this replica's share
    disk_mibps: float
    #: network bandwidth for the weights copy, Gbit/s, this replica's share
    network_gbps: float


#: Reading safetensors into GPU memory runs at no more than this per GPU
#: (host-to-device copies with tensor-parallel workers loading in parallel).
GPU_LOAD_GIBPS = 1.0
#: A copy from the object store reaches about this share of the NIC's bandwidth.
NETWORK_EFFICIENCY = 0.5
#: CUDA initialisation, torch.compile and CUDA graph capture, on top of reading weights.
ENGINE_INIT_SECONDS = 300
#: Node provisioning plus the vLLM image pull (about 10 GB), before any init container runs.
NODE_AND_IMAGE_SECONDS = 900
#: CPUs of the copy and verify containers; the copy tools' worker counts match.
COPY_CPUS = 4
#: Parallel sha256sum processes (the verify container's CPU limit).
VERIFY_PARALLELISM = COPY_CPUS
#: One sha256sum process hashes about this many MiB/s (SHA extensions).
SHA256_MIBPS = 500
_GIB_IN_GBIT = 8 * 1.073741824


def startup_budget_seconds(model: Model, io: NodeIO) -> int:
    """How long vLLM may take from start to /health answering.

    Weights are already on local disk when vLLM starts (init containers do the
    download, and they have no deadline), so this covers reading them at the
    slower of the replica's share of the node's disk and the GPUs' load rate,
    plus ENGINE_INIT_SECONDS.
    """
    rate_mibps = min(io.disk_mibps, GPU_LOAD_GIBPS * 1024 * max(1, model.gpu_count))
    return ENGINE_INIT_SECONDS + math.ceil(weights_gib(model) * 1024 / max(rate_mibps, 1))


def copy_seconds(model: Model, io: NodeIO) -> int:
    """The weights copy: the slower of the network share and the local disk."""
    by_network = weights_gib(model) * _GIB_IN_GBIT / max(io.network_gbps * NETWORK_EFFICIENCY, 0.1)
    by_disk = weights_gib(model) * 1024 / max(io.disk_mibps, 1)
    return math.ceil(max(by_network, by_disk))


def verify_seconds(model: Model, io: NodeIO) -> int:
    rate = min(io.disk_mibps, SHA256_MIBPS * VERIFY_PARALLELISM)
    return math.ceil(weights_gib(model) * 1024 / max(rate, 1))


def cold_start_seconds(model: Model, io: NodeIO, mirrored: bool) -> int:
    """A new replica's planned time to Ready on a new node: node and image, copy, verify, load."""
    total = NODE_AND_IMAGE_SECONDS + startup_budget_seconds(model, io)
    if mirrored:
        total += copy_seconds(model, io) + verify_seconds(model, io)
    return total


def shm_size_gib(model: Model) -> int:
    """`/dev/shm` for NCCL between tensor-parallel workers (see catalog/fit.py)."""
    return fit.shm_gib(model)


#: The catalog/images.py key of each cloud's weights-fetch image.
FETCH_IMAGE_KEYS = {"aws": "weightsFetchAws", "gcp": "weightsFetchGcp"}


def fetch_image(cp: ClusterPlan) -> str | None:
    """The Platform's weights-fetch image for this cluster's cloud (None: the cloud's own)."""
    key = FETCH_IMAGE_KEYS.get(cp.provider.name)
    return images.tool_image(cp.platform, key) if key else None


def wait_container(
    provider: CloudProvider,
    uri: str,
    security: dict[str, Any],
    tmp: dict[str, Any],
    image: str | None = None,
) -> dict[str, Any]:
    """wait-for-mirror: poll until the mirror holds its manifest, which the weights
    sync Job writes last (render/concerns/weightsync.py), so no pod ever copies
    a half-written prefix of a new revision; a mirror filled by hand has it too."""
    wait = provider.mirror_wait(uri)
    env = {**wait.env, "WEIGHTS_MANIFEST": MANIFEST}
    return {
        "name": "wait-for-mirror",
        "image": image or wait.image,
        "imagePullPolicy": pull_policy(image or wait.image),
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
    provider: CloudProvider,
    model: Model,
    security: dict[str, Any],
    tmp_volume: str,
    image: str | None = None,
) -> list[dict[str, Any]]:
    """fetch-weights then verify-weights; empty when the cloud has no mirror.

    verify-weights pins the manifest to `weights_sha256`; a model without one
    (a canary of a revision the catalog does not pin) checks its files against
    the mirror's manifest only.
    """
    uri = provider.weights_uri(model)
    if not uri:
        return []
    sync = provider.weights_sync(uri, WEIGHTS_DIR, COPY_CPUS)
    tmp = {"name": tmp_volume, "mountPath": "/tmp"}
    writable = [{"name": "weights", "mountPath": WEIGHTS_DIR}, tmp]
    read_only = [{"name": "weights", "mountPath": WEIGHTS_DIR, "readOnly": True}, tmp]
    # Copying is network- and disk-bound: a modest CPU request, and enough
    # memory for multipart buffers.
    pinned = bool(model.weights_sha256)
    verify_env = [
        {"name": "WEIGHTS_DIR", "value": WEIGHTS_DIR},
        {"name": "WEIGHTS_MANIFEST", "value": MANIFEST},
        {"name": "VERIFY_PARALLELISM", "value": str(VERIFY_PARALLELISM)},
    ]
    if pinned:
        verify_env.append({"name": "WEIGHTS_SHA256", "value": model.weights_sha256})
    # The copy tools run a fixed number of workers (weights_sync), so 4 CPUs
    # and 4Gi hold their buffers whatever the node's core count.
    resources = {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": str(COPY_CPUS), "memory": "4Gi"},
    }
    return [
        wait_container(provider, uri, security, tmp, image),
        {
            "name": "fetch-weights",
            "image": image or sync.image,
            "imagePullPolicy": pull_policy(image or sync.image),
            "command": list(sync.command),
            "env": [{"name": k, "value": v} for k, v in sorted(sync.env.items())],
            "resources": resources,
            "securityContext": security,
            "volumeMounts": writable,
        },
        {
            "name": "verify-weights",
            "image": model.image,
            "imagePullPolicy": pull_policy(model.image),
            "command": ["/bin/sh", "-ec", VERIFY_SCRIPT if pinned else VERIFY_FILES_SCRIPT],
            "env": verify_env,
            "resources": resources,
            "securityContext": security,
            "volumeMounts": read_only,
        },
    ]


def pull_policy(image: str) -> str:
    """IfNotPresent for a digest-pinned image (its bytes cannot change), else Always."""
    return "IfNotPresent" if "@sha256:" in image else "Always"
