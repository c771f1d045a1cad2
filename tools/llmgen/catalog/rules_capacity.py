"""Capacity rules: GPUs per replica, memory, node pools, replica bounds.

The budget and what the pools can hold are checked on the plan itself
(`llmgen.plan.check`): they depend on how the allocator packs, prices and
splits replicas (canaries, idle nodes, nodes held by one replica), which
catalog/ cannot see without a second, diverging copy of the allocator.
"""

from __future__ import annotations

from collections.abc import Iterator

from llmgen.catalog import cost
from llmgen.catalog.rulekit import Context, Rule, placed_models, targets
from llmgen.errors import Diagnostic


def parallelism(ctx: Context) -> Iterator[Diagnostic]:
    """gpuCount == tensorParallel x pipelineParallel: vLLM uses exactly that many GPUs."""
    for model in ctx.catalog.models.values():
        needed = model.tensor_parallel * model.pipeline_parallel
        if model.gpu_count != needed:
            yield model.where.error(
                f"gpuCount is {model.gpu_count} but engine.tensorParallel × "
                f"engine.pipelineParallel = {model.tensor_parallel} × "
                f"{model.pipeline_parallel} = {needed}",
                "resources",
                "gpuCount",
            )


def weights_fit(ctx: Context) -> Iterator[Diagnostic]:
    """The weights (with headroom) fit in the memory of the replica's GPUs."""
    for model in ctx.catalog.models.values():
        gpu = ctx.catalog.gpus.get(model.gpu)
        if gpu is None:
            continue
        per_param, basis = cost.bytes_per_param(model.dtype, model.quantization)
        need = cost.weights_need_gib(model)
        have = model.gpu_count * gpu.memory_gib
        if need > have:
            yield model.where.error(
                f"weights do not fit: {model.parameters_b:g}B parameters × {per_param:g} bytes "
                f"({basis}) × {cost.WEIGHT_OVERHEAD:g} = {need:.1f} GiB > "
                f"{model.gpu_count} × {gpu.memory_gib:g} GiB ({gpu.key}) = {have:g} GiB",
                "resources",
                "gpuCount",
            )


def placement(ctx: Context) -> Iterator[Diagnostic]:
    """Every target cluster has a pool with the model's GPU and room for a replica."""
    cat = ctx.catalog
    for env, i, _dep, model in placed_models(cat):
        if model.gpu not in cat.gpus:
            continue
        for cluster in targets(cat, env, _dep):
            if cost.eligible_pools(model, cluster):
                continue
            pools = ", ".join(f"{p.name} ({p.gpus_per_node} × {p.gpu})" for p in cluster.node_pools)
            yield env.where.error(
                f"cluster {cluster.name!r} has no node pool with {model.gpu_count} × {model.gpu} "
                f"on one node for model {model.name!r} (its pools: {pools})",
                "models",
                i,
            )


def replica_bounds(ctx: Context) -> Iterator[Diagnostic]:
    """Minimum replicas never exceed the maximum, in models and in environments."""
    for model in ctx.catalog.models.values():
        if model.min_replicas > model.max_replicas:
            yield model.where.error(
                f"minReplicas {model.min_replicas} is greater than "
                f"maxReplicas {model.max_replicas}",
                "scaling",
                "minReplicas",
            )
    for env, i, dep, model in placed_models(ctx.catalog):
        if dep.min_replicas is None and dep.max_replicas is None:
            continue
        low, high = cost.replica_bounds(dep, model)
        if low <= high:
            continue
        low_name = "replicas.min" if dep.min_replicas is not None else "the model's minReplicas"
        high_name = "replicas.max" if dep.max_replicas is not None else "the model's maxReplicas"
        where = ("min",) if dep.min_replicas is not None else ("max",)
        yield env.where.error(
            f"{low_name} {low} is greater than {high_name} {high}", "models", i, "replicas", *where
        )


CAPACITY_RULES: tuple[Rule, ...] = (parallelism, weights_fit, placement, replica_bounds)
