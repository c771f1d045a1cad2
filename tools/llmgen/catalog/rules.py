"""Cross-document rules: what JSON Schema cannot see because it spans documents.

Each rule is a small function over the typed catalog that yields located
diagnostics; `run_rules` runs them all. Rules about references, clusters and
node pools live here; capacity and cost in `rules_capacity.py`; pinning,
naming, routing and secrets in `rules_policy.py`.
"""

from __future__ import annotations

from collections.abc import Iterator

from llmgen.catalog.hints import did_you_mean
from llmgen.catalog.model import Catalog, Environment
from llmgen.catalog.rulekit import Context, Present, Rule, deployments
from llmgen.catalog.rules_adapters import ADAPTER_RULES
from llmgen.catalog.rules_capacity import CAPACITY_RULES
from llmgen.catalog.rules_names import NAME_RULES
from llmgen.catalog.rules_network import NETWORK_RULES
from llmgen.catalog.rules_policy import POLICY_RULES
from llmgen.catalog.rules_versions import VERSION_RULES
from llmgen.catalog.rules_weights import WEIGHTS_RULES
from llmgen.errors import Diagnostic

# --------------------------------------------------------------- references


def environment_clusters(ctx: Context) -> Iterator[Diagnostic]:
    """Clusters an environment lists exist, and belong to no other environment."""
    owner: dict[str, str] = {}
    for env in ctx.catalog.environments.values():
        for j, name in enumerate(env.clusters):
            if ctx.dangling("Cluster", name):
                yield env.where.error(ctx.unknown("cluster", "Cluster", name), "clusters", j)
            elif name in owner:
                yield env.where.error(
                    f"cluster {name!r} is already in environment {owner[name]!r}; "
                    "a cluster belongs to one environment",
                    "clusters",
                    j,
                )
            else:
                owner[name] = env.name


def environment_models(ctx: Context) -> Iterator[Diagnostic]:
    """Each model an environment serves exists and is listed once."""
    for env in ctx.catalog.environments.values():
        first: dict[str, int] = {}
        for i, dep in enumerate(env.models):
            if ctx.dangling("Model", dep.name):
                yield env.where.error(ctx.unknown("model", "Model", dep.name), "models", i, "name")
            elif dep.name in first:
                yield env.where.error(
                    f"model {dep.name!r} is listed twice (first at models[{first[dep.name]}])",
                    "models",
                    i,
                    "name",
                )
            first.setdefault(dep.name, i)


def _not_in_environment(ctx: Context, env: Environment, name: str) -> str:
    if ctx.dangling("Cluster", name) and name not in env.clusters:
        return f"unknown cluster {name!r}" + did_you_mean(name, env.clusters)
    return (
        f"cluster {name!r} is not in environment {env.name!r} "
        f"(its clusters: {', '.join(env.clusters)})" + did_you_mean(name, env.clusters)
    )


def model_clusters(ctx: Context) -> Iterator[Diagnostic]:
    """An environment model's `clusters` (and `suspendedClusters`) are the environment's."""
    for env in ctx.catalog.environments.values():
        for j, name in enumerate(env.suspended_clusters):
            if name not in env.clusters:
                yield env.where.error(_not_in_environment(ctx, env, name), "suspendedClusters", j)
    for env, i, dep in deployments(ctx.catalog):
        for j, name in enumerate(dep.clusters or ()):
            if name not in env.clusters:
                yield env.where.error(
                    _not_in_environment(ctx, env, name), "models", i, "clusters", j
                )


def routing_weights(ctx: Context) -> Iterator[Diagnostic]:
    """Weights name the environment's clusters and, when they decide, sum to 100."""
    for env in ctx.catalog.environments.values():
        for name in env.routing_weights:
            if name not in env.clusters:
                yield env.where.error(
                    _not_in_environment(ctx, env, name), "routing", "weights", name, key=True
                )
        if env.routing_policy != "weighted":
            continue
        total = sum(env.routing_weights.values())
        if not env.routing_weights:
            yield env.where.error(
                "policy 'weighted' needs routing.weights (percent per cluster)", "routing", "policy"
            )
        elif total != 100:
            shares = " + ".join(str(v) for v in env.routing_weights.values())
            yield env.where.error(
                f"weights sum to {shares} = {total}, not 100 (policy is weighted)",
                "routing",
                "weights",
            )


def gpu_references(ctx: Context) -> Iterator[Diagnostic]:
    """Node pools and models name GPUs of the GpuCatalog."""
    for cluster in ctx.catalog.clusters.values():
        for pool in cluster.node_pools:
            if ctx.dangling("GPU", pool.gpu):
                yield pool.where.error(ctx.unknown("GPU", "GPU", pool.gpu), "gpu")
    for model in ctx.catalog.models.values():
        if ctx.dangling("GPU", model.gpu):
            yield model.where.error(ctx.unknown("GPU", "GPU", model.gpu), "resources", "gpu")


# ------------------------------------------------------ clusters and pools


def node_pools(ctx: Context) -> Iterator[Diagnostic]:
    """Pool names are unique per cluster and minNodes <= maxNodes."""
    for cluster in ctx.catalog.clusters.values():
        first: dict[str, int] = {}
        for i, pool in enumerate(cluster.node_pools):
            if pool.name in first:
                yield pool.where.error(
                    f"node pool {pool.name!r} is defined twice in this cluster "
                    f"(first at nodePools[{first[pool.name]}])",
                    "name",
                )
            first.setdefault(pool.name, i)
            if pool.min_nodes > pool.max_nodes:
                yield pool.where.error(
                    f"minNodes {pool.min_nodes} is greater than maxNodes {pool.max_nodes}",
                    "minNodes",
                )


def pool_shapes(ctx: Context) -> Iterator[Diagnostic]:
    """A pool's GPU is offered on its cloud, with the listed shapes and GPU count."""
    for cluster in ctx.catalog.clusters.values():
        field_name = "instanceTypes" if cluster.cloud == "aws" else "machineType"
        noun = "instance type" if cluster.cloud == "aws" else "machine type"
        for pool in cluster.node_pools:
            gpu = ctx.catalog.gpus.get(pool.gpu)
            if gpu is None:
                continue
            offer = gpu.offers.get(cluster.cloud)
            if offer is None:
                elsewhere = sorted(
                    g.key for g in ctx.catalog.gpus.values() if cluster.cloud in g.offers
                )
                yield pool.where.error(
                    f"GPU {pool.gpu!r} is not offered on {cluster.cloud} in the GpuCatalog "
                    f"({cluster.cloud} offers: {', '.join(elsewhere) or 'nothing'})",
                    "gpu",
                )
                continue
            for j, name in enumerate(pool.instance_types):
                where: tuple[str | int, ...] = (
                    (field_name, j) if cluster.cloud == "aws" else (field_name,)
                )
                shape = offer.types.get(name)
                if shape is None:
                    yield pool.where.error(
                        f"{noun} {name!r} is not listed for GPU {pool.gpu!r} on {cluster.cloud} "
                        f"(listed: {', '.join(offer.types)})" + did_you_mean(name, offer.types),
                        *where,
                    )
                elif shape.gpus != pool.gpus_per_node:
                    yield pool.where.error(
                        f"{noun} {name!r} has {shape.gpus} GPU(s) per node, "
                        f"but the pool says gpusPerNode: {pool.gpus_per_node}",
                        *where,
                    )


def _rules() -> tuple[Rule, ...]:
    """Every rule, in a stable order (the output is sorted anyway)."""
    return (
        environment_clusters,
        environment_models,
        model_clusters,
        routing_weights,
        gpu_references,
        node_pools,
        pool_shapes,
        *CAPACITY_RULES,
        *POLICY_RULES,
        *NETWORK_RULES,
        *VERSION_RULES,
        *NAME_RULES,
        *ADAPTER_RULES,
        *WEIGHTS_RULES,
    )


def run_rules(catalog: Catalog, present: Present | None = None) -> list[Diagnostic]:
    """Every cross-document problem of a typed catalog, sorted."""
    ctx = Context(catalog, present or {})
    found: list[Diagnostic] = []
    for rule in _rules():
        found.extend(rule(ctx))
    return sorted(found)
