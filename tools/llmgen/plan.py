"""The plan: a pure data model of what each cluster gets.

`build_plan(catalog)` decides, for every environment and cluster: which models
run there, on which node pool, with which replica bounds and at what cost.
There is no YAML here; render reads the plan and nothing else. Decisions that
belong to one concern (scaling formulas, mesh failover, secrets) live in that
concern's module under `concerns/`, computed from this plan.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import __version__, names
from .allocate import split_replicas
from .catalog import Catalog, Cluster, Environment, Gpu, Model, ModelDeployment, NodePool, Platform
from .clouds import CloudProvider, get_provider
from .load import Document

HOURS_PER_MONTH = 730.0


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

    @property
    def suspended(self) -> bool:
        """`llmgen stop` marks the environment; its models scale to zero and stay there."""
        return self.environment.suspended

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
    def monthly_usd_min(self) -> float:
        return self.min_replicas * self.replica_hourly_usd * HOURS_PER_MONTH

    @property
    def monthly_usd_max(self) -> float:
        return self.max_replicas * self.replica_hourly_usd * HOURS_PER_MONTH


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
    offer = gpu.offers.get(cloud)
    if offer is None:
        return 0.0
    prices = [
        t.hourly(pool.capacity_type) / t.gpus
        for name, t in offer.types.items()
        if name in pool.instance_types and t.gpus
    ]
    return max(prices, default=0.0)


def choose_pool(model: Model, cluster: Cluster, gpu: Gpu) -> NodePool | None:
    """The cheapest pool in `cluster` with the model's GPU and room for gpuCount."""
    eligible = [
        p for p in cluster.node_pools if p.gpu == model.gpu and p.gpus_per_node >= model.gpu_count
    ]
    if not eligible:
        return None
    return min(eligible, key=lambda p: (pool_per_gpu_hourly(p, gpu, cluster.cloud), p.name))


def _target_clusters(env: Environment, dep: ModelDeployment) -> list[str]:
    return sorted(dep.clusters if dep.clusters is not None else env.clusters)


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
        for dep in env.models:
            model = catalog.models[dep.name]
            gpu = catalog.gpus[model.gpu]
            targets = [c for c in _target_clusters(env, dep) if c in catalog.clusters]
            lo = dep.min_replicas if dep.min_replicas is not None else model.min_replicas
            hi = dep.max_replicas if dep.max_replicas is not None else model.max_replicas
            pools = {c: choose_pool(model, catalog.clusters[c], gpu) for c in targets}
            prices = {
                c: model.gpu_count * pool_per_gpu_hourly(p, gpu, catalog.clusters[c].cloud)
                for c, p in pools.items()
                if p is not None
            }
            split = split_replicas(lo, hi, env.routing_weights, sorted(prices), prices)
            for c in sorted(prices):
                cluster = catalog.clusters[c]
                pool = pools[c]
                assert pool is not None
                lo_c, hi_c, why = split[c]
                if hi_c == 0:
                    continue  # this cluster's share of the model is nothing
                placement = Placement(
                    model=model,
                    deployment=dep,
                    environment=env,
                    cluster=cluster,
                    pool=pool,
                    gpu=gpu,
                    min_replicas=lo_c,
                    max_replicas=hi_c,
                    replica_hourly_usd=prices[c],
                    input_hash=_hash(
                        [model.where.doc, env.where.doc, cluster.where.doc, gpu_doc, platform_doc]
                    ),
                    reasons=tuple(why),
                )
                by_cluster[c].append(placement)
                env_placements.append(placement)
        env_plans[env.name] = EnvironmentPlan(env, tuple(env_placements))

    clusters: dict[str, ClusterPlan] = {}
    for name in sorted(catalog.clusters):
        cluster = catalog.clusters[name]
        env = env_of.get(name)
        placements = tuple(sorted(by_cluster[name], key=lambda p: p.model.name))
        peers = tuple(catalog.clusters[c] for c in sorted(env.clusters) if c in catalog.clusters) if env else ()
        clusters[name] = ClusterPlan(
            cluster=cluster,
            environment=env,
            provider=get_provider(cluster.cloud),
            platform=platform,
            gpus=catalog.gpus,
            placements=placements,
            # Cluster-wide files depend on the cluster, its environment, the
            # GPU catalog and the platform; model files carry their own hash.
            input_hash=_hash([cluster.where.doc, env.where.doc if env else None, gpu_doc, platform_doc]),
            peers=peers,
        )
    return Plan(clusters=clusters, environments=env_plans)
