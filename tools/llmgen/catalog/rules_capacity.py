"""Capacity rules: GPUs per replica, memory, node pools, replica bounds.

The budget and what the pools can hold are checked on the plan itself
(`llmgen.plan.check`): they depend on how the allocator packs, prices and
splits replicas (canaries, idle nodes, nodes held by one replica), which
catalog/ cannot see without a second, diverging copy of the allocator.
"""

from __future__ import annotations

from collections.abc import Iterator

from llmgen.catalog import cost, engines, fit
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


def multi_node(ctx: Context) -> Iterator[Diagnostic]:
    """A replica across nodes: tensor parallel within a node, pipeline parallel across nodes.

    vLLM's guidance for a model too large for one node ("Parallelism and
    Scaling", docs/serving/parallelism_scaling.md at v0.11.0): tensor
    parallel size = GPUs per node, pipeline parallel size = number of nodes.
    Each pod of the group requests gpuCount / nodes GPUs, so gpuCount must
    divide evenly.
    """
    for model in ctx.catalog.models.values():
        n = model.nodes
        if n <= 1:
            continue
        if model.gpu_count % n:
            yield model.where.error(
                f"gpuCount {model.gpu_count} does not divide into {n} nodes: every pod of a "
                "multi-node replica requests the same number of GPUs",
                "resources",
                "gpuCount",
            )
            continue
        per_node = model.gpu_count // n
        if model.tensor_parallel != per_node or model.pipeline_parallel != n:
            yield model.where.error(
                f"a replica on {n} nodes of {per_node} GPUs runs tensor parallel within a node "
                f"and pipeline parallel across nodes: engine.tensorParallel must be {per_node} "
                f"and engine.pipelineParallel {n} (they are {model.tensor_parallel} and "
                f"{model.pipeline_parallel})",
                "engine",
                "tensorParallel" if model.tensor_parallel != per_node else "pipelineParallel",
            )
        if model.task != "generate":
            yield model.where.error(
                "multi-node replicas serve generation models only (vLLM's pipeline "
                "parallelism does not run the pooling runner)",
                "resources",
                "nodes",
            )


def multi_node_canary(ctx: Context) -> Iterator[Diagnostic]:
    """No canary for a multi-node model: its set's pod names leave no room for `-canary`.

    A group's worker StatefulSet is `<set>-<group>` and its pods carry
    `controller-revision-hash: <set>-<group>-<hash>`, a label value of at most
    63 characters; `<model>-canary-<group>-<hash>` would not fit every model
    name validate accepts.
    """
    for env, i, dep, model in placed_models(ctx.catalog):
        if model.multi_node and dep.canary is not None:
            yield env.where.error(
                f"model {model.name!r} spans {model.nodes} nodes per replica: canaries of "
                "multi-node models are not supported (roll it out by revision instead)",
                "models",
                i,
                "canary",
            )


def engine_quantization(ctx: Context) -> Iterator[Diagnostic]:
    """`engine.quantization` is a value the model's vLLM version accepts (catalog/engines.py)."""
    for model in ctx.catalog.models.values():
        q = model.quantization
        if q is None:
            continue
        caps = engines.capabilities(model.image)
        if q in engines.REFUSED or q not in caps.quantizations:
            version = ".".join(map(str, engines.image_version(model.image)))
            fix = engines.REFUSED.get(q, "accepted: " + ", ".join(sorted(caps.quantizations)))
            yield model.where.error(
                f"vLLM {version} does not accept --quantization {q}; {fix}",
                "engine",
                "quantization",
            )


def scaling_targets(ctx: Context) -> Iterator[Diagnostic]:
    """gpuUtilization no longer drives scaling: say so where it is set (warning)."""
    for model in ctx.catalog.models.values():
        if model.targets.gpu_utilization is not None:
            yield model.where.warning(
                "GPU duty cycle no longer drives scaling: it reads ~100 % while a replica "
                "decodes a single stream, so replicas would ratchet to the maximum; scaling "
                "follows queueLength, running requests against --max-num-seqs, kvCacheUsage "
                "and p95LatencySeconds (remove this target)",
                "scaling",
                "targets",
                "gpuUtilization",
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
            if model.multi_node:
                pools = ", ".join(
                    f"{p.name} ({p.gpus_per_node} × {p.gpu}, maxNodes {p.max_nodes})"
                    for p in cluster.node_pools
                )
                need = (
                    f"that can hold a group of {model.nodes} nodes with "
                    f"{model.gpus_per_pod} × {model.gpu} each"
                )
            else:
                pools = ", ".join(
                    f"{p.name} ({p.gpus_per_node} × {p.gpu})" for p in cluster.node_pools
                )
                need = f"with {model.gpu_count} × {model.gpu} on one node"
            # The hint only where no machine the cloud sells holds the replica.
            hint = ""
            offer = cat.gpus[model.gpu].offers.get(cluster.cloud)
            widest = max((t.gpus for t in offer.types.values()), default=0) if offer else 0
            if not model.multi_node and 0 < widest < model.gpu_count:
                hint = (
                    f"; to span nodes set the model's resources.nodes "
                    f"(e.g. {-(-model.gpu_count // widest)}, tensor parallel within a node, "
                    "pipeline parallel across nodes)"
                )
            yield env.where.error(
                f"cluster {cluster.name!r} has no node pool {need} for model "
                f"{model.name!r} (its pools: {pools}){hint}",
                "models",
                i,
            )


def node_fit(ctx: Context) -> Iterator[Diagnostic]:
    """A replica's CPU and memory fit a node of some pool with its GPUs, in every target cluster.

    Located at the model's resources: the request is what must change (or
    the pools' shapes). Allocatable is the cloud's (kubelet reservations,
    DaemonSets, the sidecar: catalog/fit.py).
    """
    cat = ctx.catalog
    seen: set[tuple[str, str]] = set()
    for env, _i, dep, model in placed_models(cat):
        gpu = cat.gpus.get(model.gpu)
        if gpu is None:
            continue
        for cluster in targets(cat, env, dep):
            if (model.name, cluster.name) in seen:
                continue
            seen.add((model.name, cluster.name))
            by_gpu = cost.eligible_pools(model, cluster)
            if not by_gpu or cost.eligible_pools(model, cluster, cat.gpus):
                continue  # no GPU pool at all is `placement`'s error
            reasons = [r for p in by_gpu if (r := fit.misfit(model, p, gpu, cluster.cloud))]
            need = fit.pod_request(model)
            short_memory = any(
                need.memory_gib > fit.allocatable(cluster.cloud, t).memory_gib
                for p in by_gpu
                for t in fit.shapes(p, gpu, cluster.cloud)
            )
            yield model.where.error(
                f"does not fit a node in cluster {cluster.name!r}: " + "; ".join(reasons),
                "resources",
                "memoryGiB" if short_memory else "cpu",
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


CAPACITY_RULES: tuple[Rule, ...] = (
    parallelism,
    multi_node,
    multi_node_canary,
    engine_quantization,
    scaling_targets,
    weights_fit,
    placement,
    node_fit,
    replica_bounds,
)
