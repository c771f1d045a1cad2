"""The plan: a pure data model of what each cluster gets.

`build_plan(catalog)` decides, for every environment and cluster: which models
run there, on which node pool, with which replica bounds and at what cost.
There is no YAML here; render reads the plan and nothing else. Decisions that
belong to one concern (scaling formulas, mesh failover, secrets) live in that
concern's module under `concerns/`, computed from this plan.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from llmgen import __version__
from llmgen.catalog import cost, names
from llmgen.catalog.load import Document
from llmgen.catalog.model import (
    Catalog,
    Cluster,
    Environment,
    Gpu,
    Model,
    ModelDeployment,
    NodePool,
    Platform,
)
from llmgen.clouds import CloudProvider, get_provider

if TYPE_CHECKING:
    from llmgen.plan.mirror import MirrorItem
from llmgen.plan.allocate import Allocation, Demand, Site, allocate

HOURS_PER_MONTH = float(cost.HOURS_PER_MONTH)


@dataclass(frozen=True)
class Placement:
    """One model in one cluster of one environment."""

    model: Model
    deployment: ModelDeployment
    environment: Environment
    cluster: Cluster
    pool: NodePool
    gpu: Gpu
    min_replicas: int
    max_replicas: int
    replica_hourly_usd: float
    input_hash: str
    reasons: tuple[str, ...] = ()
    #: the same replica priced on-demand (equal to replica_hourly_usd on on-demand pools)
    replica_on_demand_hourly_usd: float = 0.0
    #: bounds of the `<model>-canary` Deployment; 0..0 when the environment has no canary
    canary_min_replicas: int = 0
    canary_max_replicas: int = 0

    @property
    def suspended(self) -> bool:
        """`llmgen stop` marks the environment (or this cluster of it); its models
        scale to zero and stay there."""
        env = self.environment
        return env.suspended or self.cluster.name in env.suspended_clusters

    @property
    def namespace(self) -> str:
        return names.model_namespace(self.model.name)

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def labels(self) -> dict[str, str]:
        """The labels every resource of this placement carries."""
        return {
            "app.kubernetes.io/name": self.model.name,
            "app.kubernetes.io/managed-by": "llmgen",
            "app.kubernetes.io/part-of": "llmgen",
            "llmgen.io/environment": self.environment.name,
            "llmgen.io/cluster": self.cluster.name,
            "llmgen.io/model": self.model.name,
            "llmgen.io/team": self.model.team,
            "llmgen.io/cost-center": self.model.cost_center,
        }

    @property
    def selector_labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.model.name, "llmgen.io/model": self.model.name}

    @property
    def gpus_min(self) -> int:
        return self.min_replicas * self.model.gpu_count

    @property
    def gpus_max(self) -> int:
        return self.max_replicas * self.model.gpu_count

    @property
    def has_canary(self) -> bool:
        return self.canary_max_replicas > 0

    @property
    def gpu_hourly_usd(self) -> float:
        """USD per GPU-hour of this placement's pool (what the cost recording rules multiply)."""
        return self.replica_hourly_usd / self.model.gpu_count if self.model.gpu_count else 0.0

    @property
    def replicas_min_total(self) -> int:
        """Primary and canary replicas at their minimums."""
        return self.min_replicas + self.canary_min_replicas

    @property
    def replicas_max_total(self) -> int:
        return self.max_replicas + self.canary_max_replicas

    @property
    def monthly_usd_min(self) -> float:
        return self.replicas_min_total * self.replica_hourly_usd * HOURS_PER_MONTH

    @property
    def monthly_usd_max(self) -> float:
        return self.replicas_max_total * self.replica_hourly_usd * HOURS_PER_MONTH

    @property
    def monthly_spot_savings_max(self) -> float:
        """What spot saves at the maximum, against the same shapes on-demand."""
        per = max(self.replica_on_demand_hourly_usd - self.replica_hourly_usd, 0.0)
        return self.replicas_max_total * per * HOURS_PER_MONTH


@dataclass(frozen=True)
class ClusterPlan:
    """Everything rendered into `generated/clusters/<cluster>/`."""

    cluster: Cluster
    environment: Environment | None
    provider: CloudProvider
    platform: Platform
    gpus: dict[str, Gpu]
    placements: tuple[Placement, ...]
    input_hash: str
    #: every cluster of the same environment (for mesh peers and failover)
    peers: tuple[Cluster, ...] = ()
    #: node pool name -> the GPU limit its NodePool/ComputeClass should carry:
    #: the GPUs of the nodes the placed models need at their (budget-capped)
    #: maximum, never above maxNodes x gpusPerNode; 0 for a pool nothing uses
    gpu_caps: dict[str, int] = field(default_factory=dict)
    #: node pool name -> the same limit in nodes
    node_caps: dict[str, int] = field(default_factory=dict)
    #: this cluster's allotment of the environment's monthly budget (its share
    #: of the environment's maximum spend); each cluster's Prometheus sees
    #: only its own spend, so budget alerts and the scale-up brake compare to this
    monthly_budget_usd: float = 0.0
    #: every placement of this cluster's environment, on any cluster: each
    #: gateway routes every model of its environment (DNS may send a request
    #: for any model to any gateway; the mesh fails over to where it runs)
    environment_placements: tuple[Placement, ...] = ()
    #: on a cloud's weights sync cluster: every revision any environment reads
    #: from that cloud's mirror (plan/mirror.py); empty elsewhere
    mirror_items: tuple[MirrorItem, ...] = ()

    @property
    def name(self) -> str:
        return self.cluster.name

    @property
    def env_name(self) -> str:
        return self.environment.name if self.environment else "none"

    @property
    def labels(self) -> dict[str, str]:
        """The labels every resource of this cluster carries."""
        return {
            "app.kubernetes.io/managed-by": "llmgen",
            "app.kubernetes.io/part-of": "llmgen",
            "llmgen.io/environment": self.env_name,
            "llmgen.io/cluster": self.cluster.name,
        }


@dataclass(frozen=True)
class EnvironmentPlan:
    environment: Environment
    placements: tuple[Placement, ...]

    #: environment-level notes from the allocator (budget caps)
    notes: tuple[str, ...] = ()

    @property
    def monthly_usd_min(self) -> float:
        return sum(p.monthly_usd_min for p in self.placements)

    @property
    def monthly_usd_max(self) -> float:
        return sum(p.monthly_usd_max for p in self.placements)


@dataclass(frozen=True)
class Plan:
    clusters: dict[str, ClusterPlan]
    environments: dict[str, EnvironmentPlan]
    generator: str = field(default=__version__)


def _hash(docs: Iterable[Document | None]) -> str:
    h = hashlib.sha256()
    for d in sorted({d.file: d for d in docs if d is not None}.values(), key=lambda d: d.file):
        h.update(d.file.encode())
        h.update(b"\0")
        h.update(d.content_hash.encode())
    return h.hexdigest()[:16]


def pool_per_gpu_hourly(pool: NodePool, gpu: Gpu, cloud: str) -> float:
    """Conservative hourly USD of one GPU of `pool`: its dearest listed shape."""
    return cost.pool_gpu_hourly(pool, gpu, cloud) or 0.0


def choose_pool(model: Model, cluster: Cluster, gpu: Gpu) -> NodePool | None:
    """The cheapest pool in `cluster` with the model's GPU and room for gpuCount."""
    eligible = cost.eligible_pools(model, cluster)
    if not eligible:
        return None
    return min(eligible, key=lambda p: (pool_per_gpu_hourly(p, gpu, cluster.cloud), p.name))


def _on_demand(pool: NodePool) -> NodePool:
    return NodePool(
        pool.name,
        pool.gpu,
        pool.gpus_per_node,
        pool.instance_types,
        "on-demand",
        pool.min_nodes,
        pool.max_nodes,
        pool.zones,
        pool.where,
    )


def pool_key(cluster: str, pool: str) -> str:
    return f"{cluster}/{pool}"


def canary_bounds(dep: ModelDeployment, low: int, high: int) -> tuple[int, int]:
    """The canary Deployment's bounds next to a primary of `low`..`high` replicas.

    Enough replicas for its traffic weight at the primary's maximum (at least
    one, so the canary route always has an endpoint), and a standing replica
    only where the primary keeps one.
    """
    if dep.canary is None or high == 0:
        return 0, 0
    top = max(1, math.ceil(high * dep.canary.weight / 100))
    return (1 if low >= 1 else 0), top


@dataclass(frozen=True)
class _Candidate:
    cluster: Cluster
    pool: NodePool
    price: float
    on_demand: float


def _candidates(
    catalog: Catalog, env: Environment, dep: ModelDeployment, model: Model, gpu: Gpu
) -> list[_Candidate]:
    found = []
    for cluster in cost.serving_clusters(env, dep, catalog):
        pool = choose_pool(model, cluster, gpu)
        if pool is None:
            continue
        price = model.gpu_count * pool_per_gpu_hourly(pool, gpu, cluster.cloud)
        on_demand = model.gpu_count * pool_per_gpu_hourly(_on_demand(pool), gpu, cluster.cloud)
        found.append(_Candidate(cluster, pool, price, on_demand))
    return found


def _allocate_environment(
    catalog: Catalog, env: Environment
) -> tuple[Allocation, dict[str, dict[str, _Candidate]]]:
    """Build the allocator's input for `env`, run it, and keep the chosen pools."""
    demands: list[Demand] = []
    chosen: dict[str, dict[str, _Candidate]] = {}
    for dep in env.models:
        model = catalog.models[dep.name]
        gpu = catalog.gpus[model.gpu]
        found = _candidates(catalog, env, dep, model, gpu)
        chosen[dep.name] = {c.cluster.name: c for c in found}
        low, high = cost.replica_bounds(dep, model)
        demands.append(
            Demand(
                model=dep.name,
                low=low,
                high=high,
                sites=tuple(
                    Site(
                        cluster=c.cluster.name,
                        weight=float(env.routing_weights.get(c.cluster.name, 0)),
                        replica_hourly_usd=c.price,
                        pool=pool_key(c.cluster.name, c.pool.name),
                        replicas_per_node=c.pool.gpus_per_node // model.gpu_count,
                    )
                    for c in found
                ),
                scale_to_zero=model.scale_to_zero,
            )
        )
    pool_nodes = {
        pool_key(name, p.name): p.max_nodes
        for name in env.clusters
        if (cluster := catalog.clusters.get(name)) is not None
        for p in cluster.node_pools
    }
    return allocate(demands, pool_nodes, env.monthly_budget_usd), chosen


def build_plan(catalog: Catalog) -> Plan:
    """Plan every cluster; the catalog must already be valid (validate first)."""
    platform = catalog.platform
    if platform is None:
        raise ValueError("catalog has no Platform document")
    gpu_doc = next((d for d in catalog.documents if d.kind == "GpuCatalog"), None)
    platform_doc = platform.where.doc
    by_cluster: dict[str, list[Placement]] = {c: [] for c in catalog.clusters}
    env_of: dict[str, Environment] = {}
    env_plans: dict[str, EnvironmentPlan] = {}
    for env in sorted(catalog.environments.values(), key=lambda e: e.name):
        env_placements: list[Placement] = []
        for c in env.clusters:
            env_of[c] = env
        allocation, chosen = _allocate_environment(catalog, env)
        for dep in env.models:
            model = catalog.models[dep.name]
            gpu = catalog.gpus[model.gpu]
            for c in sorted(chosen[dep.name]):
                cand = chosen[dep.name][c]
                share = allocation.shares[(dep.name, c)]
                if share.max_replicas == 0:
                    continue  # this cluster's share of the model is nothing
                canary_lo, canary_hi = canary_bounds(dep, share.min_replicas, share.max_replicas)
                placement = Placement(
                    model=model,
                    deployment=dep,
                    environment=env,
                    cluster=cand.cluster,
                    pool=cand.pool,
                    gpu=gpu,
                    min_replicas=share.min_replicas,
                    max_replicas=share.max_replicas,
                    replica_hourly_usd=cand.price,
                    input_hash=_hash(
                        [
                            model.where.doc,
                            env.where.doc,
                            cand.cluster.where.doc,
                            gpu_doc,
                            platform_doc,
                        ]
                    ),
                    reasons=share.reasons,
                    replica_on_demand_hourly_usd=cand.on_demand,
                    canary_min_replicas=canary_lo,
                    canary_max_replicas=canary_hi,
                )
                by_cluster[c].append(placement)
                env_placements.append(placement)
        env_plans[env.name] = EnvironmentPlan(env, tuple(env_placements), tuple(allocation.notes))

    clusters: dict[str, ClusterPlan] = {}
    for name in sorted(catalog.clusters):
        cluster = catalog.clusters[name]
        owner = env_of.get(name)
        placements = tuple(sorted(by_cluster[name], key=lambda p: p.model.name))
        peers = (
            tuple(catalog.clusters[c] for c in sorted(owner.clusters) if c in catalog.clusters)
            if owner
            else ()
        )
        node_caps = _node_caps(cluster, placements)
        clusters[name] = ClusterPlan(
            cluster=cluster,
            environment=owner,
            provider=get_provider(cluster.cloud),
            platform=platform,
            gpus=catalog.gpus,
            placements=placements,
            # Cluster-wide files depend on the cluster, its environment, the
            # GPU catalog and the platform; model files carry their own hash.
            input_hash=_hash(
                [cluster.where.doc, owner.where.doc if owner else None, gpu_doc, platform_doc]
            ),
            peers=peers,
            gpu_caps={p.name: node_caps[p.name] * p.gpus_per_node for p in cluster.node_pools},
            node_caps=node_caps,
            monthly_budget_usd=_cluster_budget(owner, env_plans, placements),
            environment_placements=env_plans[owner.name].placements if owner else (),
        )
    _attach_mirror_items(platform, clusters, env_plans)
    return Plan(clusters=clusters, environments=env_plans)


def _attach_mirror_items(
    platform: Platform, clusters: dict[str, ClusterPlan], env_plans: dict[str, EnvironmentPlan]
) -> None:
    """Give each cloud's sync cluster the revisions its mirror must hold."""
    from llmgen.plan.mirror import items_of

    items = items_of(p for ep in env_plans.values() for p in ep.placements)
    for cloud, mirror in platform.weights_mirrors.items():
        cp = clusters.get(mirror.sync_cluster)
        if cp is not None and cp.cluster.cloud == cloud:
            mine = tuple(i for i in items if i.cloud == cloud)
            clusters[cp.name] = replace(cp, mirror_items=mine)


def _node_caps(cluster: Cluster, placements: tuple[Placement, ...]) -> dict[str, int]:
    """Per pool, the nodes its models need at their maximum (canaries included).

    Replicas of one model pack `gpusPerNode // gpuCount` to a node and models
    are counted on separate nodes, so the count is enough however the
    scheduler packs them; it never exceeds the pool's maxNodes. A used pool
    gets one node of headroom: Deployments roll out one surge pod at a time,
    and at maximum replicas that pod needs somewhere to start.
    """
    needed = dict.fromkeys((p.name for p in cluster.node_pools), 0)
    for p in placements:
        per_node = max(p.pool.gpus_per_node // p.model.gpu_count, 1)
        needed[p.pool.name] += math.ceil(p.replicas_max_total / per_node)
    return {
        pool.name: min(pool.max_nodes, needed[pool.name] + 1 if needed[pool.name] else 0)
        for pool in cluster.node_pools
    }


def _cluster_budget(
    env: Environment | None,
    env_plans: dict[str, EnvironmentPlan],
    placements: tuple[Placement, ...],
) -> float:
    """The cluster's allotment: the budget split in proportion to maximum spend."""
    if env is None:
        return 0.0
    total = env_plans[env.name].monthly_usd_max
    mine = sum(p.monthly_usd_max for p in placements)
    if total <= 0:
        return 0.0
    return round(env.monthly_budget_usd * mine / total, 2)
