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

from llmgen.catalog import fit, names
from llmgen.catalog.model import at_revision
from llmgen.plan.routing import CANARY, STABLE
from llmgen.render.concerns import adapters, group, vllm, weights
from llmgen.render.concerns.istio import TRACK_LABEL
from llmgen.render.concerns.security import restricted_container
from llmgen.render.types import Output, file_name

if TYPE_CHECKING:
    from llmgen.catalog.model import Model
    from llmgen.plan.build import ClusterPlan, Placement

#: Bandwidth assumed for a shape whose network the GpuCatalog does not give.
DEFAULT_NETWORK_GBPS = 10.0
#: Non-root IDs outside the range of host users (checkov CKV_K8S_40 asks >= 10000).
RUN_AS = 10001
#: Scratch space: torch.compile / Triton caches, Python temp files.
TMP_GIB = 20
#: Probes poll every PROBE_PERIOD seconds; the startup probe's threshold is the
#: model's load budget divided by it.
PROBE_PERIOD = 10

CONTAINER_SECURITY: dict[str, Any] = restricted_container(RUN_AS)

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


def reload_annotations(p: Placement, model: Model, mirrored: bool) -> dict[str, str]:
    """Reloader restarts the pods when the Secrets they read or the environment ConfigMap change."""
    out: dict[str, str] = {}
    injected = vllm.injected_secrets(model, mirrored)
    secrets = sorted({names.secret_name(p.model.name, s.env) for s in injected})
    if secrets:
        out["secret.reloader.stakater.com/reload"] = ",".join(secrets)
    if p.environment.config:
        out["configmap.reloader.stakater.com/reload"] = names.ENV_CONFIGMAP
    return out


def node_io(cp: ClusterPlan, p: Placement) -> weights.NodeIO:
    """One replica's share of its node's disk and network, on the pool's slowest shape."""
    shapes = fit.shapes(p.pool, p.gpu, cp.cluster.cloud)
    per_node = p.replicas_per_node
    disk = min(
        (cp.provider.node_disk_mibps(t, p.pool, p.gpu) for t in shapes),
        default=cp.provider.root_disk_mibps(p.pool, p.gpu),
    )
    network = min((t.network_gbps or DEFAULT_NETWORK_GBPS for t in shapes), default=0.0)
    return weights.NodeIO(disk / per_node, (network or DEFAULT_NETWORK_GBPS) / per_node)


def checkov_annotations() -> dict[str, str]:
    return {f"checkov.io/skip{i}": why for i, why in enumerate(CHECKOV_SKIPS, start=1)}


def context(cp: ClusterPlan, p: Placement, track: str = STABLE) -> dict[str, Any]:
    """Template context of `track`'s Deployment and PDB; the stable track's also
    renders the shared Namespace, ServiceAccount and Service."""
    m = track_model(p, track)
    provider = cp.provider
    mirrored = bool(provider.weights_uri(m))
    shm = fit.shm_gib(m)
    cache = weights.cache_size_gib(m)
    # /dev/shm is memory, charged to the pod: the same figure node fit packs.
    memory = f"{fit.container_memory_gib(m)}Gi"
    io = node_io(cp, p)
    ctx: dict[str, Any] = {
        "name": p.name if track == STABLE else names.canary_name(p.name),
        "service_account": p.name,
        "namespace": p.namespace,
        "labels": p.labels,
        "workload_labels": {**p.labels, TRACK_LABEL: track},
        "selector": {**p.selector_labels, TRACK_LABEL: track},
        # A multi-node model's Service reaches only its groups' leaders.
        "service_selector": {**p.selector_labels, **group.leader_labels(p)},
        "annotations": {**reload_annotations(p, m, mirrored), **checkov_annotations()},
        "pod_annotations": POD_ANNOTATIONS,
        "sa_annotations": provider.workload_identity_annotations(cp.cluster, p.namespace, p.name),
        "image": m.image,
        "pull_policy": vllm.pull_policy(m.image),
        "args": vllm.args(m, p.gpu, mirrored) + adapters.lora_args(m),
        "env": vllm.env(m, mirrored),
        "env_configmap": names.ENV_CONFIGMAP,
        "port": vllm.PORT,
        "gpu_count": m.gpu_count,
        "cpu": _cpu(m.cpu),
        "memory": memory,
        "ephemeral": f"{(cache if mirrored else 0) + adapters.size_gib(m) + TMP_GIB}Gi",
        "has_adapters": bool(m.adapters),
        "adapters_size": f"{adapters.size_gib(m)}Gi",
        "adapters_dir": adapters.ADAPTERS_DIR,
        "shm": f"{shm}Gi",
        "cache": f"{cache}Gi",
        "tmp": f"{TMP_GIB}Gi",
        "weights_dir": weights.WEIGHTS_DIR,
        "mirrored": mirrored,
        "init_containers": weights.init_containers(
            provider, m, CONTAINER_SECURITY, "tmp", weights.fetch_image(cp)
        )
        + adapters.init_containers(provider, m, CONTAINER_SECURITY, "tmp", weights.fetch_image(cp)),
        "security": CONTAINER_SECURITY,
        "run_as": RUN_AS,
        "node_selector": provider.gpu_node_selector(cp.cluster, p.pool, p.gpu),
        "tolerations": provider.gpu_tolerations(p.pool),
        "probe_period": PROBE_PERIOD,
        "startup_failures": math.ceil(weights.startup_budget_seconds(m, io) / PROBE_PERIOD),
        # A rollout's new pod may take the whole cold start; the default 600 s
        # would mark every rollout ProgressDeadlineExceeded (Failed for kstatus
        # and Flux's health check) while it is still copying weights.
        "progress_deadline": _minutes(weights.cold_start_seconds(m, io, mirrored)),
        "prestop": vllm.prestop(m),
        "grace": vllm.grace_seconds(m),
    }
    if m.multi_node:
        return group.context(ctx, p, weights.cold_start_seconds(m, io, mirrored))
    return ctx


# Istio merges these into the sidecar's Prometheus endpoint (15020), which is
# what the PodMonitors scrape: STRICT mTLS refuses a plain-text scrape of 8000.
POD_ANNOTATIONS = {
    "kubectl.kubernetes.io/default-container": "vllm",
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(vllm.PORT),
    "prometheus.io/path": "/metrics",
}


def _minutes(seconds: int) -> int:
    """Seconds rounded up to whole minutes."""
    return math.ceil(seconds / 60) * 60


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
#: A multi-node model's track: a LeaderWorkerSet of groups (concerns/group.py).
PER_TRACK_GROUP = (
    ("LeaderWorkerSet", "models/leaderworkerset.yaml.j2"),
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
            for kind, template in PER_TRACK_GROUP if p.model.multi_node else PER_TRACK:
                yield Output(
                    f"{folder}/{file_name(kind, ctx['name'])}", template, ctx, p.input_hash
                )
