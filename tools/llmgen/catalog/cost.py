"""GPU memory and cost arithmetic, as pure functions over the typed catalog.

validate uses these to check that weights fit and that an environment stays
within its budget; plan and `llmgen plan` can show the same numbers. Prices
come from the GpuCatalog; nothing here calls a cloud.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

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


def eligible_pools(model: Model, cluster: Cluster) -> list[NodePool]:
    """Pools of `cluster` with the model's GPU and room for a whole replica on one node."""
    return [
        p for p in cluster.node_pools if p.gpu == model.gpu and p.gpus_per_node >= model.gpu_count
    ]


def replica_hourly(model: Model, cluster: Cluster, gpus: Mapping[str, Gpu]) -> float | None:
    """Hourly USD of one replica of `model` in `cluster`, in its cheapest eligible pool."""
    gpu = gpus.get(model.gpu)
    if gpu is None:
        return None
    per_gpu = [
        price
        for pool in eligible_pools(model, cluster)
        if (price := pool_gpu_hourly(pool, gpu, cluster.cloud)) is not None
    ]
    return model.gpu_count * min(per_gpu) if per_gpu else None


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


def effective_min(low: int, high: int, clusters: int, scale_to_zero: bool) -> int:
    """The environment-wide minimum that will really run.

    A model that may not scale to zero keeps a replica on every cluster it is
    placed on (a cluster at zero would need scale-from-zero to serve), so its
    minimum is at least its number of clusters, though never above its maximum.
    """
    if scale_to_zero:
        return min(low, high)
    return min(max(low, clusters), max(high, low))


def environment_cost_lines(env: Environment, catalog: Catalog) -> list[CostLine]:
    """Monthly cost inputs of every model of `env` that can be priced.

    A replica is priced at the dearest of the model's serving clusters, so
    the budget caps hold however plan splits replicas between them; the
    minimum counts the replica per cluster that a model which may not scale
    to zero keeps (`effective_min`), as plan will run it. Models or clusters
    that other rules reject (unknown, no pool) are left out.
    """
    lines: list[CostLine] = []
    for dep in env.models:
        model = catalog.models.get(dep.name)
        if model is None:
            continue
        prices = [
            price
            for cluster in serving_clusters(env, dep, catalog)
            if (price := replica_hourly(model, cluster, catalog.gpus)) is not None
        ]
        if not prices:
            continue
        low, high = replica_bounds(dep, model)
        low = effective_min(low, high, len(prices), model.scale_to_zero)
        lines.append(CostLine(dep.name, low, high, max(prices)))
    return lines


def monthly_min(lines: Iterable[CostLine]) -> float:
    return sum(line.monthly_min for line in lines)


def monthly_max(lines: Iterable[CostLine]) -> float:
    return sum(line.monthly_max for line in lines)


def budget_caps(lines: list[CostLine], budget_usd: float) -> dict[str, int]:
    """The max replicas per model that keep an environment's worst case within budget.

    Every model keeps its minimum; the money left over after the minimums is
    shared in proportion to each model's headroom (max - min replicas), and
    rounded down so the capped total never exceeds the budget. When even the
    minimums do not fit, the caps are the minimums.
    """
    low, high = monthly_min(lines), monthly_max(lines)
    if high <= budget_usd:
        return {line.model: line.max_replicas for line in lines}
    if low >= budget_usd or high <= low:
        return {line.model: line.min_replicas for line in lines}
    share = (budget_usd - low) / (high - low)
    # The epsilon keeps an exact fit (share * headroom == an integer) from
    # losing a replica to floating-point noise.
    return {
        line.model: line.min_replicas
        + math.floor((line.max_replicas - line.min_replicas) * share + 1e-9)
        for line in lines
    }
