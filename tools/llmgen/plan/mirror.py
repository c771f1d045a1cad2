"""The weights mirror: which (model, revision) each cloud's mirror must hold, and its cost.

A mirror is one bucket per cloud (`weightsMirror.<cloud>` in the Platform), laid
out by revision: `<bucket>/<org>/<name>/<revision>/` holds every file of the
Hugging Face repository at that commit plus `llmgen-manifest.sha256`, written
last. Model `weights.uris` are global, not per environment, so every
environment's placements on a cloud share that cloud's mirror; an item is one
distinct URI. Canary revisions count: their pods read the mirror of their own
revision (the model's URI with the revision segment replaced).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmgen.catalog.cost import weights_disk_gib
from llmgen.catalog.model import Catalog, Model, Where, at_revision
from llmgen.catalog.rules_weights import is_commit
from llmgen.clouds import get_provider

if TYPE_CHECKING:
    from llmgen.plan.build import Placement


def split_uri(uri: str) -> tuple[str, str, str]:
    """`s3://bucket/a/b/` -> (`s3`, `bucket`, `a/b/`); the prefix always ends with '/'."""
    scheme, _, rest = uri.partition("://")
    bucket, _, prefix = rest.partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return scheme, bucket, prefix


@dataclass(frozen=True)
class MirrorItem:
    """One revision of one model that one cloud's mirror must hold."""

    cloud: str
    model: Model
    revision: str
    uri: str
    #: SHA-256 of the manifest the catalog pins; "" when it pins none
    sha256: str
    #: the catalog entry to blame: the model's `weights`, or the canary's entry
    where: Where
    canary: bool = False
    environments: tuple[str, ...] = ()

    @property
    def bucket(self) -> str:
        return split_uri(self.uri)[1]

    @property
    def prefix(self) -> str:
        return split_uri(self.uri)[2]

    @property
    def commit(self) -> bool:
        """A 40-hex commit: the only revision whose content can never move."""
        return is_commit(self.revision)

    @property
    def gib(self) -> float:
        """On-disk size, estimated from parametersB and dtype/quantization."""
        return weights_disk_gib(self.model)


def items_of(placements: Iterable[Placement]) -> list[MirrorItem]:
    """Every distinct (cloud, URI) the placements read, with the environments reading it."""
    found: dict[tuple[str, str], MirrorItem] = {}
    envs: dict[tuple[str, str], set[str]] = {}

    def add(item: MirrorItem, env: str) -> None:
        key = (item.cloud, item.uri)
        found.setdefault(key, item)
        envs.setdefault(key, set()).add(env)

    for p in placements:
        cloud, m = p.cluster.cloud, p.model
        uri = m.weight_uris.get(cloud)
        if not uri:
            continue
        env = p.environment.name
        add(MirrorItem(cloud, m, m.revision, uri, m.weights_sha256, m.where.at("weights")), env)
        c = p.deployment.canary
        if c is None or not c.revision or c.revision == m.revision or not p.has_canary:
            continue
        moved = at_revision(uri, m.revision, c.revision)
        if moved is not None:
            add(
                MirrorItem(cloud, m, c.revision, moved, c.weights_sha256 or "", c.where, True),
                env,
            )
    return [
        MirrorItem(
            i.cloud,
            i.model,
            i.revision,
            i.uri,
            i.sha256,
            i.where,
            i.canary,
            tuple(sorted(envs[key])),
        )  # fmt: skip
        for key, i in sorted(found.items())
    ]


@dataclass(frozen=True)
class MirrorCost:
    """Storage of one cloud's mirror: what it holds and what that costs a month."""

    cloud: str
    bucket: str
    items: tuple[MirrorItem, ...] = field(default=())
    usd_per_gib_month: float = 0.0

    @property
    def gib(self) -> float:
        return sum(i.gib for i in self.items)

    @property
    def monthly_usd(self) -> float:
        return round(self.gib * self.usd_per_gib_month, 2)


def storage_costs(catalog: Catalog, items: Iterable[MirrorItem]) -> list[MirrorCost]:
    """Per cloud: the mirror's contents and monthly storage cost (list price per GiB)."""
    by_cloud: dict[str, list[MirrorItem]] = {}
    for i in items:
        by_cloud.setdefault(i.cloud, []).append(i)
    mirrors = catalog.platform.weights_mirrors if catalog.platform else {}
    out = []
    for cloud, mine in sorted(by_cloud.items()):
        mirror = mirrors.get(cloud)
        price = (
            mirror.storage_usd_per_gib_month
            if mirror is not None and mirror.storage_usd_per_gib_month is not None
            else get_provider(cloud).storage_usd_per_gib_month
        )
        buckets = sorted({i.bucket for i in mine})
        out.append(MirrorCost(cloud, ", ".join(buckets), tuple(mine), price))
    return out


@dataclass(frozen=True)
class MirrorNeed:
    """A revision a change needs mirrored: the head reads it, the base did not."""

    cloud: str
    model: str
    revision: str
    uri: str
    gib: float
    pinned: bool
    environments: tuple[str, ...]


def needs_mirroring(before: Iterable[MirrorItem], after: Iterable[MirrorItem]) -> list[MirrorNeed]:
    """Items of `after` whose (cloud, URI) `before` did not read, smallest first per cloud."""
    had = {(i.cloud, i.uri) for i in before}
    new = [i for i in after if (i.cloud, i.uri) not in had]
    return [
        MirrorNeed(
            i.cloud,
            i.model.name,
            i.revision,
            i.uri,
            round(i.gib, 1),
            bool(i.sha256),
            i.environments,
        )  # fmt: skip
        for i in sorted(new, key=lambda i: (i.cloud, i.uri))
    ]
