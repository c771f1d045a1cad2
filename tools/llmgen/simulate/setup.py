"""From the plan and the rendered objects to the simulation's units and routes.

A unit is one Deployment llmgen renders a ScaledObject for: a model's stable
(or canary) track in one cluster. Its constants come from the plan (pool,
prices, replica bounds) and the catalog (size, dtype, GPU), its autoscaling
from the rendered ScaledObject. A gateway slot is one (model, cluster whose
gateway receives the request, track): its candidates are the local unit and
then the mesh's failover targets, in `plan.routing.failover_targets` order.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog import names
from ..catalog.cost import bytes_per_param
from ..errors import LlmgenError
from ..plan.build import ClusterPlan, Placement, Plan
from ..plan.routing import (
    CANARY,
    STABLE,
    canary_split,
    failover_targets,
    max_num_seqs,
    sites,
    wanted,
)
from ..render.concerns.weights import weights_gib
from .objects import GKE_SCALE_DOWN_UNNEEDED_SECONDS, Rendered, ScaledObject
from .serving import (
    COMPUTE_EFFICIENCY,
    GIB,
    GPU_MEMORY_UTILIZATION,
    MEMORY_EFFICIENCY,
    RESERVED_GIB_PER_GPU,
    gpu_spec,
    kv_bytes_per_token,
)

#: Cold-start phases (seconds or GiB/s); docs/simulate.md gives the sources.
NODE_PROVISION_SECONDS = 180.0
IMAGE_PULL_SECONDS = 150.0
ENGINE_INIT_SECONDS = 90.0
VERIFY_GIBPS = 0.5
GPU_LOAD_GIBPS_PER_GPU = 1.0
#: per cloud: (object store -> node GiB/s, node disk GiB/s when the rendered pool says nothing)
PULL_DEFAULTS = {"aws": (0.5, 2.0), "gcp": (1.0, 0.2)}
DEFAULT_SLO_SECONDS = 2.0


class SetupError(LlmgenError):
    """The plan or the rendered objects cannot be simulated (exit 1)."""


@dataclass(frozen=True)
class Unit:
    index: int
    environment: str
    model: str
    cluster: str
    cloud: str
    track: str
    deployment: str
    so: ScaledObject
    placement: Placement
    pool_key: str
    node_cap: int
    #: replicas per node; a multi-node group's replica takes 1 / nodes of this (0.5 for 2)
    per_node: float
    gpus_per_node: int
    gpu_count: int
    node_usd: float
    gpu_usd: float
    empty_node_seconds: float
    cold_new_node: float
    cold_existing_node: float
    weights_bytes: float
    kv_token: float
    bandwidth: float
    flops: float
    params: float
    max_seqs: float
    kv_capacity: float
    slo_seconds: float
    embed: bool


@dataclass(frozen=True)
class Slot:
    """Requests for (model, track) arriving at one cluster's gateway."""

    model: str
    cluster: str
    track: str
    #: the gateway cluster's share of the environment's traffic (all clusters up)
    cluster_share: float
    #: the track's share of the model's traffic (canary split)
    track_share: float
    candidates: tuple[int, ...]


def cold_start(
    p: Placement, pull_gibps: float | None, disk_gibps: float | None = None
) -> tuple[float, float]:
    """Seconds from scale-up to ready: on a new node, and on a node already there.

    The download is bound by the network and by the disk it writes to (the
    rendered pool's: `objects.disk_gibps`); verify and load read that disk.
    """
    network, disk = PULL_DEFAULTS.get(p.cluster.cloud, (0.5, 1.0))
    if disk_gibps is not None:
        disk = disk_gibps
    pull = min(network, disk) if pull_gibps is None else pull_gibps
    gib = weights_gib(p.model)
    load = ENGINE_INIT_SECONDS + gib / min(disk, GPU_LOAD_GIBPS_PER_GPU * p.model.gpu_count)
    pod = gib / pull + gib / min(VERIFY_GIBPS, disk) + load
    return NODE_PROVISION_SECONDS + IMAGE_PULL_SECONDS + pod, pod


def _unit(
    index: int,
    cp: ClusterPlan,
    p: Placement,
    so: ScaledObject,
    track: str,
    rendered: Rendered,
    pull_gibps: float | None,
    slo: float | None,
) -> Unit:
    m = p.model
    spec = gpu_spec(p.gpu.key)
    if spec is None:
        raise SetupError(
            f"{m.name}: no memory bandwidth known for GPU {p.gpu.key!r} "
            "(simulate/serving.py GPU_SPECS lists the GPUs the serving model knows)"
        )
    bandwidth, tflops = spec
    per_param, _ = bytes_per_param(m.dtype, m.quantization)
    weights = m.parameters_b * 1e9 * per_param
    fp8 = any("fp8" in a for a in m.extra_args if "kv-cache-dtype" in a) or (
        "--kv-cache-dtype" in m.extra_args
        and m.extra_args[m.extra_args.index("--kv-cache-dtype") + 1 :][:1] == ("fp8",)
    )
    memory = m.gpu_count * p.gpu.memory_gib * GIB
    new_node, existing = cold_start(p, pull_gibps, rendered.disk_gibps.get((cp.name, p.pool.name)))
    cloud = p.cluster.cloud
    empty = rendered.empty_node_seconds.get((cp.name, p.pool.name), GKE_SCALE_DOWN_UNNEEDED_SECONDS)
    target_slo = slo or m.targets.p95_latency_seconds or DEFAULT_SLO_SECONDS
    return Unit(
        index=index,
        environment=p.environment.name,
        model=m.name,
        cluster=cp.name,
        cloud=cloud,
        track=track,
        deployment=so.name,
        so=so,
        placement=p,
        pool_key=f"{cp.name}/{p.pool.name}",
        node_cap=int(cp.node_caps.get(p.pool.name, p.pool.max_nodes)),
        per_node=(
            1 / m.nodes if m.multi_node else max(p.pool.gpus_per_node // max(m.gpu_count, 1), 1)
        ),
        gpus_per_node=p.pool.gpus_per_node,
        gpu_count=m.gpu_count,
        node_usd=p.gpu_hourly_usd * p.pool.gpus_per_node,
        gpu_usd=p.gpu_hourly_usd,
        empty_node_seconds=empty,
        cold_new_node=new_node,
        cold_existing_node=existing,
        weights_bytes=weights,
        kv_token=kv_bytes_per_token(m.parameters_b, fp8),
        bandwidth=MEMORY_EFFICIENCY * m.gpu_count * bandwidth * 1e9,
        flops=COMPUTE_EFFICIENCY * m.gpu_count * tflops * 1e12,
        params=m.parameters_b * 1e9,
        max_seqs=float(max_num_seqs(m)),
        kv_capacity=max(
            GPU_MEMORY_UTILIZATION * memory - weights - RESERVED_GIB_PER_GPU * GIB * m.gpu_count,
            GIB,
        ),
        slo_seconds=float(target_slo),
        embed=m.task == "embed",
    )


def build_units(
    plan: Plan,
    rendered: Rendered,
    environment: str,
    pull_gibps: float | None = None,
    slo: float | None = None,
) -> tuple[list[Unit], list[Slot]]:
    """Every unit of `environment`, and every gateway slot routing to them."""
    env_plan = plan.environments.get(environment)
    if env_plan is None:
        raise SetupError(f"no environment named {environment!r}")
    env = env_plan.environment
    units: list[Unit] = []
    by_site: dict[tuple[str, str, str], int] = {}
    for p in sorted(env_plan.placements, key=lambda p: (p.model.name, p.cluster.name)):
        cp = plan.clusters[p.cluster.name]
        tracks = [(STABLE, p.name)]
        if p.has_canary:
            tracks.append((CANARY, names.canary_name(p.name)))
        for track, deployment in tracks:
            so = rendered.scaled_objects.get((cp.name, deployment))
            if so is None:
                raise SetupError(
                    f"no rendered ScaledObject {deployment} in cluster {cp.name}; "
                    "run `llmgen render` or check the selection"
                )
            unit = _unit(len(units), cp, p, so, track, rendered, pull_gibps, slo)
            by_site[(p.model.name, cp.name, track)] = unit.index
            units.append(unit)
    all_sites = sites(env_plan.placements)
    clusters = [plan.clusters[c].cluster for c in env.clusters if c in plan.clusters]
    weights = {c.name: float(env.routing_weights.get(c.name, 0)) for c in clusters}
    if sum(weights.values()) <= 0:
        weights = dict.fromkeys(weights, 1.0)
    total = sum(weights.values())
    slots: list[Slot] = []
    for dep in env.models:
        placed = [p for p in env_plan.placements if p.model.name == dep.name]
        if not placed:
            continue
        model = placed[0].model
        stable, canary = canary_split(dep.canary.weight if dep.canary is not None else None)
        has_canary = any(p.has_canary for p in placed)
        shares = [(STABLE, stable / 100.0 if has_canary else 1.0)]
        if has_canary:
            shares.append((CANARY, canary / 100.0))
        for cluster in clusters:
            for track, share in shares:
                origin = wanted(env, cluster, model, track)
                order: list[int] = []
                local = by_site.get((model.name, cluster.name, track))
                if local is not None:
                    order.append(local)
                for site in failover_targets(origin, all_sites):
                    idx = by_site.get((site.model, site.cluster, site.track))
                    if idx is not None and idx not in order:
                        order.append(idx)
                slots.append(
                    Slot(
                        model.name,
                        cluster.name,
                        track,
                        weights[cluster.name] / total,
                        share,
                        tuple(order),
                    )
                )
    return units, slots
