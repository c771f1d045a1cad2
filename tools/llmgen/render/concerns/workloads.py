"""Model workloads (layer models): Namespace, ServiceAccount, vLLM Deployment, Service, PDB.

Decisions made here, per placement:
- The Deployment has no `spec.replicas`: a KEDA ScaledObject owns the scale of
  the Deployment `<model>`, and a rendered count would fight it on every sync.
- Pods select their GPU pool through the cloud provider's node selector and
  tolerate its taints; `nvidia.com/gpu` requests = limits = `gpuCount`.
- Weights come from the cloud-local mirror through init containers and are
  verified before vLLM starts (see weights.py); the Hugging Face hub is
  switched off at run time whenever a mirror is used.
- Pods run under the `restricted` Pod Security level with a read-only root
  filesystem; everything vLLM writes goes to emptyDirs.
- An environment's canary runs as a second Deployment, `<model>-canary`, of
  the same shape with the canary's revision and/or image. Pods carry
  `llmgen.io/track: stable|canary` (the DestinationRule's subsets select on
  it); each Deployment and PodDisruptionBudget selects its own track, the
  Service selects both. The canary shares the model's ServiceAccount (the
  same identity reads the same mirror).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgen.catalog import names
from llmgen.catalog.model import at_revision
from llmgen.plan.routing import CANARY, STABLE
from llmgen.render.concerns import weights
from llmgen.render.concerns.istio import TRACK_LABEL
from llmgen.render.types import Output, file_name

if TYPE_CHECKING:
    from llmgen.catalog.model import Model
    from llmgen.plan.build import ClusterPlan, Placement

VLLM_PORT = 8000
#: Non-root IDs outside the range of host users (checkov CKV_K8S_40 asks >= 10000).
RUN_AS = 10001
#: Scratch space: torch.compile / Triton caches, Python temp files.
TMP_GIB = 20
#: Probes poll every PROBE_PERIOD seconds; the startup probe's threshold is the
#: model's load budget divided by it.
PROBE_PERIOD = 10
#: After SIGTERM is scheduled, keep serving while endpoints and the mesh stop
#: routing here, so streaming responses already under way can finish.
PRESTOP_SECONDS = 60
#: Then vLLM gets this long to exit on its own before SIGKILL.
SHUTDOWN_SECONDS = 30

CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": RUN_AS,
    "runAsGroup": RUN_AS,
    "seccompProfile": {"type": "RuntimeDefault"},
}

# checkov findings that are deliberate for an LLM server, with the reason a
# reviewer needs (checkov reads `checkov.io/skip<N>` annotations).
CHECKOV_SKIPS = (
    "CKV_K8S_11=No CPU limit: CFS throttling stalls token streaming and NCCL; "
    "CPU is requested and GPU-bound pods are alone on their nodes",
    "CKV_K8S_35=vLLM and huggingface_hub read HF_TOKEN and API keys from environment "
    "variables only; the values come from ExternalSecret-managed Secrets",
    "CKV_K8S_43=The weights-copy image is pinned by version tag in the cloud provider; "
    "the vLLM image is digest-pinned wherever the environment requires pinning",
)


def track_model(p: Placement, track: str) -> Model:
    """The model as `track` runs it: the catalog's for stable, the canary's overrides for canary.

    A canary of another revision reads that revision's mirror: the stable
    revision's path segment in each `weights.uris` entry is replaced. Where no
    segment names it, that mirror cannot be located, so the canary loads the
    new revision from the hub rather than silently serving the stable weights.
    The canary's manifest is pinned by `canary.weightsSha256` (required where
    the environment requires pinning); without it the canary checks its files
    against the mirror's manifest alone.
    """
    m = p.model
    canary = p.deployment.canary
    if track == STABLE or canary is None:
        return m
    image = canary.image or m.image
    revision = canary.revision or m.revision
    if revision == m.revision:
        return dataclasses.replace(m, image=image)
    uris: dict[str, str] = {}
    for cloud, uri in m.weight_uris.items():
        moved = at_revision(uri, m.revision, revision)
        if moved is not None:
            uris[cloud] = moved
    return dataclasses.replace(
        m,
        image=image,
        revision=revision,
        weight_uris=uris,
        weights_sha256=canary.weights_sha256 or "",
    )


def vllm_args(p: Placement, mirrored: bool, model: Model | None = None) -> list[str]:
    """The vLLM OpenAI server's arguments, decided from the catalog (`model`: a track's)."""
    m = model or p.model
    if mirrored:
        source = ["--model", weights.WEIGHTS_DIR]
    else:
        source = ["--model", m.repo, "--revision", m.revision]
    args = [
        *source,
        "--served-model-name", m.served_model_name,
        "--port", str(VLLM_PORT),
        "--tensor-parallel-size", str(m.tensor_parallel),
        "--max-model-len", str(m.max_model_len),
        "--dtype", m.dtype,
    ]  # fmt: skip
    if m.pipeline_parallel > 1:
        args += ["--pipeline-parallel-size", str(m.pipeline_parallel)]
    if m.quantization:
        args += ["--quantization", m.quantization]
    if m.task == "embed":
        args += ["--task", "embed"]
    return args + list(m.extra_args)


def env(p: Placement, mirrored: bool) -> list[dict[str, Any]]:
    """Environment of the vLLM container: caches on emptyDirs, hub policy, secrets."""
    out: list[dict[str, Any]] = [
        {"name": "HOME", "value": "/tmp"},
        {"name": "XDG_CACHE_HOME", "value": "/tmp/.cache"},
        {"name": "VLLM_CACHE_ROOT", "value": "/tmp/.cache/vllm"},
        {"name": "HF_HOME", "value": "/tmp/.cache/huggingface"},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
    ]
    if mirrored:
        # Verified local weights only: never reach the public hub at run time.
        out += [
            {"name": "HF_HUB_OFFLINE", "value": "1"},
            {"name": "TRANSFORMERS_OFFLINE", "value": "1"},
        ]
    for s in p.model.secrets:
        out.append(
            {
                "name": s.env,
                "valueFrom": {
                    "secretKeyRef": {"name": names.secret_name(p.model.name, s.env), "key": s.key}
                },
            }
        )
    return out


def reload_annotations(p: Placement) -> dict[str, str]:
    """Reloader restarts the pods when the Secrets or the environment ConfigMap change."""
    out: dict[str, str] = {}
    secrets = sorted({names.secret_name(p.model.name, s.env) for s in p.model.secrets})
    if secrets:
        out["secret.reloader.stakater.com/reload"] = ",".join(secrets)
    if p.environment.config:
        out["configmap.reloader.stakater.com/reload"] = names.ENV_CONFIGMAP
    return out


def checkov_annotations() -> dict[str, str]:
    return {f"checkov.io/skip{i}": why for i, why in enumerate(CHECKOV_SKIPS, start=1)}


def context(cp: ClusterPlan, p: Placement, track: str = STABLE) -> dict[str, Any]:
    """Template context of `track`'s Deployment and PDB; the stable track's also
    renders the shared Namespace, ServiceAccount and Service."""
    m = track_model(p, track)
    provider = cp.provider
    mirrored = bool(provider.weights_uri(m))
    shm = weights.shm_size_gib(m)
    cache = weights.cache_size_gib(m)
    memory = f"{math.ceil(m.memory_gib) + shm}Gi"  # /dev/shm is memory, charged to the pod
    return {
        "name": p.name if track == STABLE else names.canary_name(p.name),
        "service_account": p.name,
        "namespace": p.namespace,
        "labels": p.labels,
        "workload_labels": {**p.labels, TRACK_LABEL: track},
        "selector": {**p.selector_labels, TRACK_LABEL: track},
        "service_selector": p.selector_labels,
        "annotations": {**reload_annotations(p), **checkov_annotations()},
        "pod_annotations": POD_ANNOTATIONS,
        "sa_annotations": provider.workload_identity_annotations(cp.cluster, p.namespace, p.name),
        "image": m.image,
        "args": vllm_args(p, mirrored, m),
        "env": env(p, mirrored),
        "env_configmap": names.ENV_CONFIGMAP,
        "port": VLLM_PORT,
        "gpu_count": m.gpu_count,
        "cpu": _cpu(m.cpu),
        "memory": memory,
        "ephemeral": f"{(cache if mirrored else 0) + TMP_GIB}Gi",
        "shm": f"{shm}Gi",
        "cache": f"{cache}Gi",
        "tmp": f"{TMP_GIB}Gi",
        "weights_dir": weights.WEIGHTS_DIR,
        "mirrored": mirrored,
        "init_containers": weights.init_containers(
            provider, m, CONTAINER_SECURITY, "tmp", weights.fetch_image(cp)
        ),
        "security": CONTAINER_SECURITY,
        "run_as": RUN_AS,
        "node_selector": provider.gpu_node_selector(cp.cluster, p.pool, p.gpu),
        "tolerations": provider.gpu_tolerations(p.pool),
        "probe_period": PROBE_PERIOD,
        "startup_failures": math.ceil(weights.startup_budget_seconds(m) / PROBE_PERIOD),
        "prestop": PRESTOP_SECONDS,
        "grace": PRESTOP_SECONDS + SHUTDOWN_SECONDS,
    }


# Istio merges these into the sidecar's Prometheus endpoint (15020), which is
# what the PodMonitors scrape: STRICT mTLS refuses a plain-text scrape of 8000.
POD_ANNOTATIONS = {
    "kubectl.kubernetes.io/default-container": "vllm",
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(VLLM_PORT),
    "prometheus.io/path": "/metrics",
}


def _cpu(cores: float) -> str:
    return str(int(cores)) if cores == int(cores) else f"{int(cores * 1000)}m"


SHARED = (
    ("Namespace", "models/namespace.yaml.j2"),
    ("ServiceAccount", "models/serviceaccount.yaml.j2"),
    ("Service", "models/service.yaml.j2"),
)
PER_TRACK = (
    ("Deployment", "models/deployment.yaml.j2"),
    ("PodDisruptionBudget", "models/pdb.yaml.j2"),
)


def outputs(cp: ClusterPlan) -> Iterator[Output]:
    for p in cp.placements:
        folder = f"models/{p.name}"
        # The canary runs exactly where the plan gives it replicas, the same
        # test the mesh uses for its canary subset and autoscaling for its
        # ScaledObject, so a routed subset always has a Deployment behind it.
        tracks = (STABLE, CANARY) if p.has_canary else (STABLE,)
        stable = context(cp, p)
        for kind, template in SHARED:
            name = p.namespace if kind == "Namespace" else p.name
            yield Output(f"{folder}/{file_name(kind, name)}", template, stable, p.input_hash)
        for track in tracks:
            ctx = stable if track == STABLE else context(cp, p, track)
            for kind, template in PER_TRACK:
                yield Output(
                    f"{folder}/{file_name(kind, ctx['name'])}", template, ctx, p.input_hash
                )
