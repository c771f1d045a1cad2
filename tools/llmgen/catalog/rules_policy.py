"""Policy rules: pinning (revisions, images, weights), derived name lengths, unique routes,
secret backends."""

from __future__ import annotations

import re
from collections.abc import Iterator

from llmgen.catalog import names
from llmgen.catalog import secret_backends as sb
from llmgen.catalog.guard import credential_reason
from llmgen.catalog.model import at_revision  # the same mapping the canary pods use
from llmgen.catalog.rulekit import Context, Rule, placed_models, targets
from llmgen.errors import Diagnostic

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _envs(names_: list[str]) -> str:
    quoted = ", ".join(repr(n) for n in names_)
    return (
        f"environment {quoted} requires" if len(names_) == 1 else f"environments {quoted} require"
    )


def pinned(ctx: Context) -> Iterator[Diagnostic]:
    """Where requirePinned: 40-hex revisions and @sha256 image digests, canaries included."""
    pinned_by: dict[str, list[str]] = {}
    for env, _i, dep, model in placed_models(ctx.catalog):
        if not env.require_pinned:
            continue
        if env.name not in pinned_by.setdefault(model.name, []):
            pinned_by[model.name].append(env.name)
        canary = dep.canary
        if canary is None:
            continue
        if canary.revision is not None and not _COMMIT.match(canary.revision):
            yield canary.where.error(
                f"canary revision {canary.revision!r} is not a 40-hex commit; "
                "this environment requires pinned revisions",
                "revision",
            )
        if canary.image is not None and not _DIGEST.search(canary.image):
            yield canary.where.error(
                f"canary image {canary.image!r} has no @sha256:<64 hex> digest; "
                "this environment requires pinned images",
                "image",
            )
    for name, envs in pinned_by.items():
        model = ctx.catalog.models[name]
        if not _COMMIT.match(model.revision):
            yield model.where.error(
                f"revision {model.revision!r} is not a 40-hex commit; "
                f"{_envs(envs)} pinned revisions",
                "source",
                "revision",
            )
        if not _DIGEST.search(model.image):
            yield model.where.error(
                f"image {model.image!r} has no @sha256:<64 hex> digest; "
                f"{_envs(envs)} pinned images",
                "engine",
                "image",
            )


def pinned_weights(ctx: Context) -> Iterator[Diagnostic]:
    """Where requirePinned, weights load from a cloud-local mirror and their manifest is pinned.

    Without `weights.uris.<cloud>` a pod downloads from the Hugging Face hub at
    run time with no checksum. Missing mirrors are reported on the model's
    `weights` (that is where the fix goes, once per model, cloud and
    environment, naming the clusters); a canary's on its own entry.
    """

    unpinned: dict[str, list[str]] = {}
    for env, _i, dep, model in placed_models(ctx.catalog):
        if not env.require_pinned:
            continue
        clusters = targets(ctx.catalog, env, dep)
        if not model.weights_sha256 and env.name not in unpinned.setdefault(model.name, []):
            unpinned[model.name].append(env.name)
        by_cloud: dict[str, list[str]] = {}
        for cluster in clusters:
            by_cloud.setdefault(cluster.cloud, []).append(cluster.name)
        for cloud, on in sorted(by_cloud.items()):
            if cloud not in model.weight_uris:
                yield model.where.error(
                    f"no {cloud} mirror; environment {env.name!r} runs this model on "
                    f"{', '.join(on)} and requires pinned weights "
                    "(loaded from the cloud-local mirror, not the hub)",
                    "weights",
                    "uris",
                    cloud,
                )
        canary = dep.canary
        if canary is None or canary.revision is None or canary.revision == model.revision:
            continue
        if canary.weights_sha256 is None:
            yield canary.where.error(
                f"canary revision {canary.revision!r} loads other weights than the model's; "
                "this environment requires pinned weights: add the SHA-256 of that "
                "revision's manifest",
                "weightsSha256",
            )
        for cloud, on in sorted(by_cloud.items()):
            uri = model.weight_uris.get(cloud)
            if uri and at_revision(uri, model.revision, canary.revision) is None:
                yield canary.where.error(
                    f"no path segment of weights.uris.{cloud} names the model's revision "
                    f"{model.revision!r}, so the canary's mirror on {', '.join(on)} cannot be "
                    "located; this environment requires pinned weights",
                    "revision",
                )
    for name, envs in unpinned.items():
        yield ctx.catalog.models[name].where.error(
            f"no manifest hash; {_envs(envs)} pinned weights "
            "(SHA-256 of the mirror's manifest, checked before vLLM starts)",
            "weights",
            "sha256",
        )


_DERIVED_LABELS = {
    names.KEDA_HPA_PREFIX: "the KEDA HPA",
    names.NAMESPACE_PREFIX: "the namespace",
    names.REMOTE_SECRET_PREFIX: "the Istio remote secret",
    names.NODEPOOL_PREFIX: "the node pool",
}


def _too_long(kind: str, noun: str, name: str) -> str | None:
    if len(name) <= names.max_length(kind):
        return None
    _, length = names.longest_derived(kind, name)
    template, _ = names.longest_derived(kind, "<name>")
    label = next(
        (text for prefix, text in _DERIVED_LABELS.items() if template.startswith(prefix)),
        "the derived name",
    )
    return (
        f"{noun} name is {len(name)} characters; {label} {template!r} "
        f"would be {length} > {names.MAX_NAME}"
    )


def name_lengths(ctx: Context) -> Iterator[Diagnostic]:
    """Catalog names stay within 63 characters once llmgen prefixes them."""
    for model in ctx.catalog.models.values():
        if message := _too_long("Model", "model", model.name):
            yield model.where.doc.diagnostic(("metadata", "name"), message)
    for cluster in ctx.catalog.clusters.values():
        if message := _too_long("Cluster", "cluster", cluster.name):
            yield cluster.where.doc.diagnostic(("metadata", "name"), message)
        for pool in cluster.node_pools:
            if message := _too_long("NodePool", "node pool", pool.name):
                yield pool.where.error(message, "name")


def unique_routes(ctx: Context) -> Iterator[Diagnostic]:
    """Within an environment no two models share a routePrefix or servedModelName."""
    for env in ctx.catalog.environments.values():
        seen: dict[tuple[str, str], tuple[str, int]] = {}
        for i, dep in enumerate(env.models):
            model = ctx.catalog.models.get(dep.name)
            if model is None:
                continue
            for field_name, value in (
                ("routePrefix", model.route_prefix),
                ("servedModelName", model.served_model_name),
            ):
                other = seen.get((field_name, value))
                if other is None:
                    seen[(field_name, value)] = (model.name, i)
                elif other[0] != model.name:  # a model listed twice is reported elsewhere
                    yield env.where.error(
                        f"{field_name} {value!r} of model {model.name!r} is already used by "
                        f"model {other[0]!r} (models[{other[1]}]) in this environment",
                        "models",
                        i,
                    )


def secret_backends(ctx: Context) -> Iterator[Diagnostic]:
    """Every cloud an environment runs on has a secret backend (vault serves any cloud)."""
    for env in ctx.catalog.environments.values():
        by_cloud: dict[str, list[str]] = {}
        for name in env.clusters:
            cluster = ctx.catalog.clusters.get(name)
            if cluster is not None:
                by_cloud.setdefault(cluster.cloud, []).append(name)
        for cloud, clusters in sorted(by_cloud.items()):
            if "vault" in env.secret_stores or cloud in env.secret_stores:
                continue
            yield env.where.error(
                f"no secret store for the {cloud} clusters ({', '.join(clusters)}); "
                f"add secretStores.{cloud} or secretStores.vault",
                "secretStores",
            )


def secret_stores(ctx: Context) -> Iterator[Diagnostic]:
    """A model secret's `store` is configured in each environment and usable on each cluster.

    A secret without `store` reads from its cluster's default store, which the
    `secret_backends` rule requires of the environment, so only chosen stores
    are checked here. The decision is `secret_backends.secret_problem`, the one
    the secrets concern refuses to render by.
    """
    for env, _i, dep, model in placed_models(ctx.catalog):
        for secret in model.secrets:
            if secret.store is None:
                continue
            seen: set[str] = set()  # "not configured" reads the same for every cluster
            for cluster in targets(ctx.catalog, env, dep):
                why = sb.secret_problem(secret, env, cluster)
                if why and why not in seen:
                    seen.add(why)
                    yield secret.where.error(why, "store")


def secret_regions(ctx: Context) -> Iterator[Diagnostic]:
    """An AWS cluster reading another region's secrets depends on that region
    (the review's D21): a us-east-1 outage would stop secret sync and rotation
    in us-west-2. Warned, with the fix (Secrets Manager replicas)."""
    for env in ctx.catalog.environments.values():
        settings = env.secret_stores.get("aws")
        if settings is None:
            continue
        for name in env.clusters:
            cluster = ctx.catalog.clusters.get(name)
            if cluster is None or cluster.cloud != "aws":
                continue
            region = sb.aws_store_region(settings, cluster)
            if region != cluster.region:
                yield env.where.warning(
                    f"{name} ({cluster.region}) reads its secrets from {region}: an outage "
                    f"there stops its secret sync; replicate them to {cluster.region} and "
                    "list it in replicaRegions",
                    "secretStores",
                    "aws",
                )


def secret_names(ctx: Context) -> Iterator[Diagnostic]:
    """No two secrets of a model render the same Kubernetes Secret (`env` after naming)."""
    for model in ctx.catalog.models.values():
        yield from sb.model_problems(model)


def config_credentials(ctx: Context) -> Iterator[Diagnostic]:
    """Environment config holds no credential: it is rendered into a ConfigMap."""
    for env in ctx.catalog.environments.values():
        for key, value in env.config.items():
            if reason := credential_reason(key, value):
                yield env.where.error(
                    f"{reason}; config is rendered into a ConfigMap, so credentials "
                    "belong in a model's spec.secrets",
                    "config",
                    key,
                )


POLICY_RULES: tuple[Rule, ...] = (
    pinned,
    pinned_weights,
    name_lengths,
    unique_routes,
    secret_backends,
    secret_stores,
    secret_regions,
    secret_names,
    config_credentials,
)
