"""Rules for LoRA adapters: names clients can tell apart, and weights pinned like the model's.

A request names an adapter in its `model` field and the body router sends it
to a replica of the adapter's base model, so within an environment an adapter
name must be unique among every served model name and every other adapter.
Where an environment requires pinning, an adapter is pinned as its model is:
a 40-hex revision, a cloud-local mirror for every cloud it runs on, and the
SHA-256 of the mirror's manifest.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from llmgen.catalog.rulekit import Context, Rule, placed_models, targets
from llmgen.errors import Diagnostic

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def adapter_names(ctx: Context) -> Iterator[Diagnostic]:
    """Adapter names are unique per model and never shadow a served name in an environment."""
    reported: set[tuple[str, str]] = set()
    for model in ctx.catalog.models.values():
        seen: dict[str, int] = {}
        for i, a in enumerate(model.adapters):
            if a.name in seen:
                yield a.where.error(
                    f"adapter {a.name!r} is listed twice (first at adapters[{seen[a.name]}])",
                    "name",
                )
            elif a.name == model.served_model_name:
                yield a.where.error(
                    f"adapter {a.name!r} has the model's own servedModelName; requests "
                    "naming it would not reach the adapter",
                    "name",
                )
            seen.setdefault(a.name, i)
    for env in ctx.catalog.environments.values():
        owners: dict[str, str] = {}
        served = [ctx.catalog.models[d.name] for d in env.models if d.name in ctx.catalog.models]
        for m in served:
            owners.setdefault(m.served_model_name, f"model {m.name!r}")
        for model in served:
            for a in model.adapters:
                owner = owners.get(a.name)
                if owner is not None and owner != f"adapter of {model.name!r}":
                    if (model.name, a.name) not in reported:
                        reported.add((model.name, a.name))
                        yield a.where.error(
                            f"adapter name {a.name!r} is already served by {owner} in "
                            f"environment {env.name!r}; a request naming it would be ambiguous",
                            "name",
                        )
                else:
                    owners[a.name] = f"adapter of {model.name!r}"


def adapter_mirrors(ctx: Context) -> Iterator[Diagnostic]:
    """An adapter has a mirror on every cloud its model runs on: the pods load it
    from there only (a mirrored pod runs without the hub)."""
    clouds: dict[str, set[str]] = {}
    for env, _i, dep, model in placed_models(ctx.catalog):
        if model.adapters:
            clouds.setdefault(model.name, set()).update(
                c.cloud for c in targets(ctx.catalog, env, dep)
            )
    for name, used in sorted(clouds.items()):
        for a in ctx.catalog.models[name].adapters:
            for cloud in sorted(used - set(a.weight_uris)):
                yield a.where.error(
                    f"no {cloud} mirror for adapter {a.name!r}: model {name!r} runs on {cloud}, "
                    "and adapters load only from the cloud-local mirror "
                    f"(add weights.uris.{cloud})",
                    "weights",
                )


def pinned_adapters(ctx: Context) -> Iterator[Diagnostic]:
    """Where requirePinned, every adapter has a 40-hex revision and a manifest hash."""
    done: set[tuple[str, str]] = set()
    for env, _i, _dep, model in placed_models(ctx.catalog):
        if not env.require_pinned:
            continue
        for a in model.adapters:
            if (model.name, a.name) in done:
                continue
            done.add((model.name, a.name))
            if not _COMMIT.match(a.revision):
                yield a.where.error(
                    f"adapter revision {a.revision!r} is not a 40-hex commit; "
                    f"environment {env.name!r} requires pinned revisions",
                    "source",
                    "revision",
                )
            if not a.weights_sha256:
                yield a.where.error(
                    f"adapter {a.name!r} has no manifest hash; environment {env.name!r} "
                    "requires pinned weights",
                    "weights",
                )


ADAPTER_RULES: tuple[Rule, ...] = (adapter_names, adapter_mirrors, pinned_adapters)
