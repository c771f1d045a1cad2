"""GPU memory and cost arithmetic, as pure functions over the typed catalog.

validate uses these to check that weights fit and that an environment stays
within its budget; plan and `llmgen plan` can show the same numbers. Prices
come from the GpuCatalog; nothing here calls a cloud.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from llmgen.catalog import fit
from llmgen.catalog.model import (
    Catalog,
    Cluster,
    Environment,
    Gpu,
    Model,
    ModelDeployment,
    NodePool,
)

HOURS_PER_MONTH = 730
# Weights are not all a replica keeps in GPU memory (activations, CUDA graphs,
# a minimum KV cache); 20% headroom is the usual rule of thumb for vLLM.
WEIGHT_OVERHEAD = 1.2
# Money compared in USD/month: a replica that costs this much more than the
# money left still fits (floating-point noise, not a real overspend).
_EPS = 1e-6

_QUANT_BYTES = {
    "fp8": 1.0,
    "int8": 1.0,
    "w8a8": 1.0,
    "awq": 0.5,
    "gptq": 0.5,
    "int4": 0.5,
    "bitsandbytes": 0.5,
}
_DTYPE_BYTES = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "auto": 2.0}


def bytes_per_param(dtype: str, quantization: str | None) -> tuple[float, str]:
    """Bytes one parameter takes in GPU memory, and what decided it.

    Quantisation wins over dtype: an AWQ model declared `float16` still
    stores 4-bit weights (dtype then only names the activation type).
    """
    if quantization is not None and quantization in _QUANT_BYTES:
        return _QUANT_BYTES[quantization], quantization
    return _DTYPE_BYTES.get(dtype, 2.0), dtype


def weights_need_gib(model: Model) -> float:
    """GPU memory one replica needs for its weights, with headroom."""
    per_param, _ = bytes_per_param(model.dtype, model.quantization)
    return model.parameters_b * per_param * WEIGHT_OVERHEAD


def weights_disk_gib(model: Model) -> float:
    """On-disk size of the weights in GiB (mirror storage, sync volumes), without headroom."""
    per_param, _ = bytes_per_param(model.dtype, model.quantization)
    return model.parameters_b * 1e9 * per_param / 2**30


def pool_gpu_hourly(pool: NodePool, gpu: Gpu, cloud: str) -> float | None:
    """Hourly USD of one GPU in `pool`, priced at its dearest listed shape.

    The dearest shape, because Karpenter may launch any type the pool lists
    and a budget check must not assume the cheapest one. None when the pool
    lists no shape the GpuCatalog prices for this GPU and cloud.
    """
    offer = gpu.offers.get(cloud)
    if offer is None:
        return None
    prices = [
        shape.hourly(pool.capacity_type) / shape.gpus
        for name in pool.instance_types
        if (shape := offer.types.get(name)) is not None and shape.gpus > 0
    ]
    return max(prices) if prices else None


def eligible_pools(
    model: Model, cluster: Cluster, gpus: Mapping[str, Gpu] | None = None
) -> list[NodePool]:
    """Pools of `cluster` with the model's GPU and room for a whole replica.

    A replica is one pod on one node, or (`resources.nodes` > 1) a group of
    `nodes` pods, one per node, so the pool must also allow that many nodes.
    With the GpuCatalog (`gpus`), room means GPUs, CPU and memory together
    (`fit.replicas_per_node`); without it, GPUs only.
    """
    pools = [
        p
        for p in cluster.node_pools
        if p.gpu == model.gpu
        and p.gpus_per_node >= model.gpus_per_pod
        and p.max_nodes >= model.nodes
    ]
    gpu = gpus.get(model.gpu) if gpus is not None else None
    if gpu is None:
        return pools
    return [p for p in pools if fit.replicas_per_node(model, p, gpu, cluster.cloud) >= 1]


def pool_replica_hourly(
    model: Model, pool: NodePool, gpu: Gpu, cloud: str, capacity_type: str | None = None
) -> float | None:
    """Hourly USD of one replica of `model` on `pool`: a node's price over the replicas it holds.

    A replica that strands GPUs (CPU or memory run out first) pays for them.
    Priced at the dearest shape that fits a replica, as `pool_gpu_hourly`;
    None when the pool lists no priced shape. A multi-node replica pays for
    each of its `nodes` nodes.
    """
    kind = capacity_type or pool.capacity_type
    prices = [
        shape.hourly(kind) / n
        for shape in fit.shapes(pool, gpu, cloud)
        if shape.gpus > 0 and (n := fit.per_node(model, shape, cloud)) >= 1
    ]
    return max(prices) * model.nodes if prices else None


def replica_hourly(model: Model, cluster: Cluster, gpus: Mapping[str, Gpu]) -> float | None:
    """Hourly USD of one replica of `model` in `cluster`, in its cheapest eligible pool."""
    gpu = gpus.get(model.gpu)
    if gpu is None:
        return None
    prices = [
        price
        for pool in eligible_pools(model, cluster, gpus)
        if (price := pool_replica_hourly(model, pool, gpu, cluster.cloud)) is not None
    ]
    return min(prices) if prices else None


def replica_bounds(dep: ModelDeployment, model: Model) -> tuple[int, int]:
    """An environment's (min, max) replicas of a model: its override, else the model's."""
    low = dep.min_replicas if dep.min_replicas is not None else model.min_replicas
    high = dep.max_replicas if dep.max_replicas is not None else model.max_replicas
    return low, high


def target_clusters(env: Environment, dep: ModelDeployment) -> tuple[str, ...]:
    """The clusters an environment serves a model on (its override, else all of them)."""
    return dep.clusters if dep.clusters is not None else env.clusters


@dataclass(frozen=True)
class CostLine:
    """One model's share of an environment's monthly GPU cost."""

    model: str
    min_replicas: int
    max_replicas: int
    replica_hourly_usd: float

    @property
    def monthly_min(self) -> float:
        return self.min_replicas * self.replica_hourly_usd * HOURS_PER_MONTH

    @property
    def monthly_max(self) -> float:
        return self.max_replicas * self.replica_hourly_usd * HOURS_PER_MONTH


def serving_clusters(env: Environment, dep: ModelDeployment, catalog: Catalog) -> list[Cluster]:
    """The clusters that will actually run a model of `env`, sorted by name.

    Its target clusters that exist and have an eligible, priced pool; when
    the environment routes by weight, only those the routing sends traffic
    to (a cluster with weight 0 hosts nothing).
    """
    model = catalog.models.get(dep.name)
    if model is None:
        return []
    found = [
        cluster
        for name in sorted(target_clusters(env, dep))
        if (cluster := catalog.clusters.get(name)) is not None
        and replica_hourly(model, cluster, catalog.gpus) is not None
    ]
    if any(env.routing_weights.get(c.name, 0) > 0 for c in found):
        found = [c for c in found if env.routing_weights.get(c.name, 0) > 0]
    return found


def monthly_min(lines: Iterable[CostLine]) -> float:
    return sum(line.monthly_min for line in lines)


def monthly_max(lines: Iterable[CostLine]) -> float:
    return sum(line.monthly_max for line in lines)


def budget_caps(lines: list[CostLine], budget_usd: float) -> dict[str, int]:
    """The max replicas per model that keep an environment's worst case within budget.

    Maxima that fit the budget are left alone. Otherwise every model keeps
    its minimum, and the money left over is spent in three passes:

    1. one replica above the minimum for every model with headroom, models
       at a minimum of zero first (without it they would not run at all),
       then cheapest first, so each keeps room to autoscale when the money
       allows that at all;
    2. the rest in proportion to each model's remaining headroom cost
       (max − cap replicas × price), rounded down;
    3. what rounding left, one replica at a time (largest rounded-off
       fraction first, then cheapest) until no further replica fits.

    So the capped spend is as close to the budget as replica granularity
    allows: no model below its maximum could take one more replica within
    it. When even the minimums do not fit, the caps are the minimums.
    """
    low, high = monthly_min(lines), monthly_max(lines)
    if high <= budget_usd:
        return {line.model: line.max_replicas for line in lines}
    caps = {line.model: line.min_replicas for line in lines}
    if low >= budget_usd or high <= low:
        return caps
    money = budget_usd - low
    price = {line.model: line.replica_hourly_usd * HOURS_PER_MONTH for line in lines}
    room = [line for line in lines if line.max_replicas > line.min_replicas]
    # 1. One replica of headroom each: models that would otherwise not run first, then cheapest.
    for line in sorted(room, key=lambda x: (x.min_replicas > 0, price[x.model], x.model)):
        if price[line.model] <= money + _EPS:
            caps[line.model] += 1
            money -= price[line.model]
    # 2. The rest in proportion to the headroom cost still uncovered.
    rest = sum((x.max_replicas - caps[x.model]) * price[x.model] for x in room)
    fraction: dict[str, float] = {}
    if rest > 0 and money > 0:
        share = min(money / rest, 1.0)
        for line in room:
            exact = (line.max_replicas - caps[line.model]) * share
            add = math.floor(exact + 1e-9)
            fraction[line.model] = exact - add
            caps[line.model] += add
            money -= add * price[line.model]
    # 3. Fill what rounding left, one replica at a time.
    order = sorted(room, key=lambda x: (-fraction.get(x.model, 0.0), price[x.model], x.model))
    added = True
    while added:
        added = False
        for line in order:
            if caps[line.model] < line.max_replicas and price[line.model] <= money + _EPS:
                caps[line.model] += 1
                money -= price[line.model]
                added = True
    return caps
