"""The plan: a pure data model of what each cluster gets.

`build_plan(catalog)` decides, for every environment and cluster: which models
run there, on which node pool, with which replica bounds and at what cost.
There is no YAML here; render reads the plan and nothing else. Decisions that
belong to one concern (scaling formulas, mesh failover, secrets) live in that
concern's module under `concerns/`, computed from this plan.
"""

from __future__ import annotations

import hashlib
import json
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
from llmgen.plan import fit
from llmgen.plan.allocate import Allocation, Demand, PoolSpec, Site, allocate, split_canary

if TYPE_CHECKING:
    from llmgen.plan.mirror import MirrorItem

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
    def replicas_per_node(self) -> int:
        """Replicas one node of the pool holds, by GPU, CPU and memory (at least 1 once placed)."""
        return max(fit.replicas_per_node(self.model, self.pool, self.gpu, self.cluster.cloud), 1)

    @property
    def nodes_per_replica(self) -> int:
        """Nodes one replica takes: 1, or the group size of a multi-node model."""
        return self.model.nodes

    def nodes_for(self, replicas: int) -> int:
        """Nodes `replicas` replicas of this placement occupy."""
        return math.ceil(replicas / self.replicas_per_node) * self.nodes_per_replica

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
    #: on the AWS sync cluster: the other AWS accounts whose clusters read the
    #: mirror (the bucket policy llmgen owns must let them in)
    mirror_reader_accounts: tuple[str, ...] = ()

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
    #: the allocator's full answer: what it capped, raised or could not place
    allocation: Allocation = field(default_factory=Allocation, compare=False)
    #: model -> the allocator's input for it (bounds and sites)
    demands: dict[str, Demand] = field(default_factory=dict, compare=False)

    @property
    def idle_monthly_usd(self) -> float:
        """Nodes that pools keep (minNodes) beyond what the minimums use: paid regardless."""
        return self.allocation.idle_monthly_usd

    @property
    def monthly_usd_min(self) -> float:
        return sum(p.monthly_usd_min for p in self.placements) + self.idle_monthly_usd

    @property
    def monthly_usd_max(self) -> float:
        return sum(p.monthly_usd_max for p in self.placements) + self.idle_monthly_usd


@dataclass(frozen=True)
class Plan:
    clusters: dict[str, ClusterPlan]
    environments: dict[str, EnvironmentPlan]
    generator: str = field(default=__version__)


def _hash(docs: Iterable[Document | None], *parts: object) -> str:
    """Provenance hash of whole documents plus `parts` (JSON-able values derived
    from them: a slice of a document, a decision such as an allocation)."""
    h = hashlib.sha256()
    for d in sorted({d.file: d for d in docs if d is not None}.values(), key=lambda d: d.file):
        h.update(d.file.encode())
        h.update(b"\0")
        h.update(d.content_hash.encode())
    for part in parts:
        h.update(b"\0")
        text = part.text if isinstance(part, _Encoded) else _json(part)
        h.update(text.encode())
    return h.hexdigest()[:16]


def _json(part: object) -> str:
    return json.dumps(part, sort_keys=True, default=str)


@dataclass(frozen=True)
class _Encoded:
    """A `_hash` part encoded once and shared by many hashes (an environment's
    spec is part of every one of its placements' hashes); same bytes."""

    text: str


def _env_without_models(env: Environment | None) -> object:
    """The environment document minus its models list: what every file of the
    environment depends on. Each model's own entry goes into that model's hash
    only, so editing one model does not re-stamp every file (review noise)."""
    if env is None:
        return None
    doc = env.where.doc
    spec = {k: v for k, v in doc.data.get("spec", {}).items() if k != "models"}
    return [doc.file, doc.data.get("metadata"), spec]


def _deployment_entries(env: Environment) -> dict[str, list[object]]:
    """Each model's entries in the environment's models list (as written), by name."""
    found: dict[str, list[object]] = {}
    for e in env.where.doc.data.get("spec", {}).get("models", []):
        if isinstance(e, dict) and isinstance(name := e.get("name"), str):
            found.setdefault(name, []).append(e)
    return found


def choose_pool(model: Model, cluster: Cluster, gpu: Gpu) -> NodePool | None:
    """The pool in `cluster` where a replica of the model costs least (GPUs, CPU and memory fit)."""
    eligible = cost.eligible_pools(model, cluster, {gpu.key: gpu})
    if not eligible:
        return None
    # A multi-node group prefers a single-zone pool at the same price: its
    # pipeline traffic then never crosses zones.
    return min(
        eligible,
        key=lambda p: (
            _replica_price(model, p, gpu, cluster.cloud),
            model.multi_node and len(p.zones) != 1,
            p.name,
        ),
    )


def node_hourly(pool: NodePool, gpu: Gpu, cloud: str) -> float:
    """Hourly USD of one node of `pool` (its dearest listed shape): what an idle node costs."""
    return pool.gpus_per_node * (cost.pool_gpu_hourly(pool, gpu, cloud) or 0.0)


def _replica_price(
    model: Model, pool: NodePool, gpu: Gpu, cloud: str, capacity_type: str | None = None
) -> float:
    return cost.pool_replica_hourly(model, pool, gpu, cloud, capacity_type) or 0.0


def pool_key(cluster: str, pool: str) -> str:
    return f"{cluster}/{pool}"


def canary_weight(dep: ModelDeployment) -> int:
    """Percent of the model's traffic its canary takes (0 without a canary)."""
    return dep.canary.weight if dep.canary is not None else 0


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
        price = _replica_price(model, pool, gpu, cluster.cloud)
        on_demand = _replica_price(model, pool, gpu, cluster.cloud, "on-demand")
        found.append(_Candidate(cluster, pool, price, on_demand))
    return found


def _allocate_environment(
    catalog: Catalog, env: Environment
) -> tuple[Allocation, dict[str, dict[str, _Candidate]], dict[str, Demand]]:
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
                        replicas_per_node=fit.replicas_per_node(
                            model, c.pool, gpu, c.cluster.cloud
                        ),
                        nodes_per_replica=model.nodes,
                    )
                    for c in found
                ),
                scale_to_zero=model.scale_to_zero,
                canary_weight=canary_weight(dep),
            )
        )
    pools = {
        pool_key(name, p.name): PoolSpec(
            p.max_nodes,
            p.min_nodes,
            node_hourly(p, catalog.gpus[p.gpu], cluster.cloud) if p.gpu in catalog.gpus else 0.0,
        )
        for name in env.clusters
        if (cluster := catalog.clusters.get(name)) is not None
        for p in cluster.node_pools
    }
    allocation = allocate(demands, pools, env.monthly_budget_usd)
    return allocation, chosen, {d.model: d for d in demands}


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
        allocation, chosen, demands = _allocate_environment(catalog, env)
        entries = _deployment_entries(env)
        env_spec = _Encoded(_json(_env_without_models(env)))
        for dep in env.models:
            model = catalog.models[dep.name]
            gpu = catalog.gpus[model.gpu]
            for c in sorted(chosen[dep.name]):
                cand = chosen[dep.name][c]
                share = allocation.shares[(dep.name, c)]
                if share.max_replicas == 0:
                    continue  # this cluster's share of the model is nothing
                low, high, canary_lo, canary_hi = split_canary(
                    canary_weight(dep), share.min_replicas, share.max_replicas
                )
                placement = Placement(
                    model=model,
                    deployment=dep,
                    environment=env,
                    cluster=cand.cluster,
                    pool=cand.pool,
                    gpu=gpu,
                    min_replicas=low,
                    max_replicas=high,
                    replica_hourly_usd=cand.price,
                    input_hash=_hash(
                        [model.where.doc, cand.cluster.where.doc, gpu_doc, platform_doc],
                        env_spec,
                        entries.get(dep.name, []),
                        # Other models move this one's share (budget caps, node
                        # room): the decision itself is an input of its files.
                        [share.min_replicas, share.max_replicas, canary_lo, canary_hi],
                        [cand.pool.name, cand.price, share.reasons],
                    ),
                    reasons=share.reasons,
                    replica_on_demand_hourly_usd=cand.on_demand,
                    canary_min_replicas=canary_lo,
                    canary_max_replicas=canary_hi,
                )
                by_cluster[c].append(placement)
                env_placements.append(placement)
        env_plans[env.name] = EnvironmentPlan(
            env, tuple(env_placements), tuple(allocation.notes), allocation, demands
        )

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
                [cluster.where.doc, gpu_doc, platform_doc],
                _env_without_models(owner),
                # Cluster-wide files list the models placed here and size node
                # pools and budgets from them; replica edits within those stay out.
                sorted(p.model.name for p in placements),
                node_caps,
                _cluster_budget(name, owner, env_plans, placements),
            ),
            peers=peers,
            gpu_caps={p.name: node_caps[p.name] * p.gpus_per_node for p in cluster.node_pools},
            node_caps=node_caps,
            monthly_budget_usd=_cluster_budget(name, owner, env_plans, placements),
            environment_placements=env_plans[owner.name].placements if owner else (),
        )
    _attach_mirror_items(platform, clusters, env_plans)
    return Plan(clusters=clusters, environments=env_plans)


def _attach_mirror_items(
    platform: Platform, clusters: dict[str, ClusterPlan], env_plans: dict[str, EnvironmentPlan]
) -> None:
    """Give each cloud's sync cluster the revisions its mirror must hold."""
    from llmgen.plan.mirror import items_of

    placements = [p for ep in env_plans.values() for p in ep.placements]
    items = items_of(placements)
    for cloud, mirror in platform.weights_mirrors.items():
        cp = clusters.get(mirror.sync_cluster)
        if cp is not None and cp.cluster.cloud == cloud:
            mine = tuple(i for i in items if i.cloud == cloud)
            own = cp.cluster.cloud_settings.get("accountID", "")
            readers = {
                str(p.cluster.cloud_settings.get("accountID", ""))
                for p in placements
                if cloud == "aws" and p.cluster.cloud == cloud and cloud in p.model.weight_uris
            }
            accounts = tuple(sorted(readers - {own, ""}))
            clusters[cp.name] = replace(cp, mirror_items=mine, mirror_reader_accounts=accounts)


def _node_caps(cluster: Cluster, placements: tuple[Placement, ...]) -> dict[str, int]:
    """Per pool, the nodes its models need at their maximum (canaries included).

    Replicas of one model pack by GPU, CPU and memory together
    (`fit.replicas_per_node`) and models are counted on separate nodes, so
    the count is enough however the scheduler packs them; it never exceeds
    the pool's maxNodes. A used pool gets one node of headroom: Deployments
    roll out one surge pod at a time, and at maximum replicas that pod needs
    somewhere to start. A multi-node model's LeaderWorkerSet rolls out
    without a surge group (render/concerns/group.py), so it adds none.
    """
    needed = dict.fromkeys((p.name for p in cluster.node_pools), 0)
    surge = dict.fromkeys((p.name for p in cluster.node_pools), 0)
    for p in placements:
        needed[p.pool.name] += p.nodes_for(p.replicas_max_total)
        if not p.model.multi_node:
            surge[p.pool.name] = 1
    return {
        pool.name: min(pool.max_nodes, needed[pool.name] + surge[pool.name])
        if needed[pool.name]
        else 0
        for pool in cluster.node_pools
    }


def _cluster_budget(
    name: str,
    env: Environment | None,
    env_plans: dict[str, EnvironmentPlan],
    placements: tuple[Placement, ...],
) -> float:
    """The cluster's allotment: the budget split in proportion to maximum spend
    (its replicas at their maximum plus the idle nodes its pools keep)."""
    if env is None:
        return 0.0
    plan = env_plans[env.name]
    total = plan.monthly_usd_max
    mine = sum(p.monthly_usd_max for p in placements)
    mine += sum(
        usd
        for key, usd in plan.allocation.idle_monthly_by_pool.items()
        if key.startswith(f"{name}/")
    )
    if total <= 0:
        return 0.0
    return round(env.monthly_budget_usd * mine / total, 2)
