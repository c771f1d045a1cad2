"""Rules of the weights mirror (`Platform spec.weightsMirror`).

The sync Jobs run on one designated cluster per cloud and write each
revision under `<bucket>/<org>/<name>/<revision>/`. These rules refuse what
the sync could not honour: a sync cluster that does not exist, is on another
cloud, or has no environment (so no secret store for the hub token); a hub
token the sync cluster's environment cannot read; a model mirror outside the
cloud's bucket, or whose path does not name its revision (the prefix would
not be immutable). A revision that is not a commit gets a warning: a branch
moves, an immutable prefix cannot follow it, so nothing syncs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from llmgen.catalog import secret_backends as sb
from llmgen.catalog.model import at_revision
from llmgen.catalog.rulekit import Context, placed_models, targets
from llmgen.errors import Diagnostic

_COMMIT = re.compile(r"[0-9a-f]{40}\Z")
#: the model secret the sync Job's download reads (the hub token)
HF_TOKEN_ENV = "HF_TOKEN"
#: The platform add-ons (AWS Controllers for Kubernetes, their charts name their
#: ServiceAccounts alike) that create the S3 mirror's bucket and sync roles.
ACK_ADDONS = ("ack-s3-controller", "ack-iam-controller")
#: The Config Connector API groups of the GCS mirror's resources (GKE add-on).
CNRM_GROUPS = (
    "core.cnrm.cloud.google.com",
    "iam.cnrm.cloud.google.com",
    "storage.cnrm.cloud.google.com",
)


def is_commit(revision: str) -> bool:
    return bool(_COMMIT.match(revision))


def sync_clusters(ctx: Context) -> Iterator[Diagnostic]:
    """Each mirror's sync cluster exists, is on its cloud, and can read the hub tokens."""
    cat = ctx.catalog
    if cat.platform is None:
        return
    owners = {c: env for env in cat.environments.values() for c in env.clusters}
    for cloud, mirror in sorted(cat.platform.weights_mirrors.items()):
        name = mirror.sync_cluster
        cluster = cat.clusters.get(name)
        if cluster is None:
            if ctx.dangling("Cluster", name):
                yield mirror.where.error(ctx.unknown("cluster", "Cluster", name), "syncCluster")
            continue
        if cluster.cloud != cloud:
            yield mirror.where.error(
                f"cluster {name!r} is on {cluster.cloud}; the {cloud} mirror's sync Jobs "
                f"need a {cloud} cluster (its workload identity writes the bucket)",
                "syncCluster",
            )
            continue
        env = owners.get(name)
        # An environment that failed its schema is not typed: it may own the
        # cluster, and its own errors say what to fix first.
        untyped = set(ctx.present.get("Environment", frozenset())) - set(cat.environments)
        if env is None and untyped:
            continue
        if env is None:
            yield mirror.where.error(
                f"cluster {name!r} belongs to no environment, so it has no secret store "
                "for the hub token the sync Jobs read; pick a cluster of an environment",
                "syncCluster",
            )
            continue
        # A model already served on the sync cluster has its secrets checked
        # there (secret_stores); only the others are this rule's to report.
        served = {
            m.name for e, _i, dep, m in placed_models(cat) for c in targets(cat, e, dep)
            if c.name == name
        }  # fmt: skip
        for model in sorted(cat.models.values(), key=lambda m: m.name):
            if cloud not in model.weight_uris or model.name in served:
                continue
            for s in model.secrets:
                why = sb.secret_problem(s, env, cluster) if s.env == HF_TOKEN_ENV else None
                if why:
                    yield s.where.error(
                        f"the {cloud} weights sync on {name!r} reads this hub token: {why}"
                    )


def mirror_resources(ctx: Context) -> Iterator[Diagnostic]:
    """What rendering each mirror's bucket and sync identities needs from the catalog.

    AWS: the ACK add-ons that reconcile the Bucket and Roles, and the sync
    cluster's OIDC issuer (the roles' IRSA trust names it). GCP: the project
    number for the Cloud Storage service agent's key grant (a warning: the
    grant can be made by hand once). A GCS bucket's CMEK key must be in the
    bucket's location and the bucket takes the key's location, so there is
    nothing to disagree; likewise an S3 bucket takes its key's region.
    """
    cat = ctx.catalog
    if cat.platform is None:
        return
    aws = cat.platform.weights_mirrors.get("aws")
    if aws is not None:
        missing = [a for a in ACK_ADDONS if a not in cat.platform.addons]
        if missing:
            yield aws.where.error(
                f"the S3 mirror's bucket and sync roles are ACK resources; add the platform "
                f"add-on(s) {', '.join(missing)} (AWS Controllers for Kubernetes s3-chart and "
                "iam-chart, docs/weights.md), or nothing creates them"
            )
        cluster = cat.clusters.get(aws.sync_cluster)
        issuer = cluster.cloud_settings.get("oidcIssuer") if cluster is not None else "-"
        if cluster is not None and cluster.cloud == "aws" and not issuer:
            yield aws.where.error(
                f"sync cluster {aws.sync_cluster!r} has no spec.aws.oidcIssuer; the sync "
                "roles' trust policy (IRSA) names the cluster's OIDC provider: add it "
                "(aws eks describe-cluster --query cluster.identity.oidc.issuer, "
                "without https://)",
                "syncCluster",
            )
    gcp = cat.platform.weights_mirrors.get("gcp")
    cluster = cat.clusters.get(gcp.sync_cluster) if gcp is not None else None
    if gcp is not None and cluster is not None and cluster.cloud == "gcp":
        missing = [g for g in CNRM_GROUPS if g not in cluster.prerequisites]
        if missing:
            yield gcp.where.error(
                f"sync cluster {gcp.sync_cluster!r} does not declare {', '.join(missing)} in "
                "spec.prerequisites; the bucket and sync service accounts are Config "
                "Connector resources: enable Config Connector there and list its groups",
                "syncCluster",
            )
    if gcp is not None and gcp.project_number is None:
        yield gcp.where.warning(
            "no projectNumber: llmgen does not grant the Cloud Storage service agent "
            "roles/cloudkms.cryptoKeyEncrypterDecrypter on kmsKey; grant it once yourself "
            "(docs/weights.md), or the bucket cannot use the key"
        )


def mirror_uris(ctx: Context) -> Iterator[Diagnostic]:
    """Every model mirror on a cloud with a mirror is in its bucket and names its revision."""
    cat = ctx.catalog
    if cat.platform is None:
        return
    mirrors = cat.platform.weights_mirrors
    for model in cat.models.values():
        for cloud, uri in sorted(model.weight_uris.items()):
            mirror = mirrors.get(cloud)
            if mirror is None:
                continue
            bucket = uri.partition("://")[2].partition("/")[0]
            if bucket != mirror.bucket:
                yield model.where.error(
                    f"bucket {bucket!r} is not the {cloud} mirror {mirror.bucket!r} "
                    "(platform spec.weightsMirror); llmgen syncs and checks only that bucket",
                    "weights",
                    "uris",
                    cloud,
                )
            elif is_commit(model.revision) and not at_revision(uri, model.revision, "-"):
                yield model.where.error(
                    f"no path segment names the revision {model.revision!r}; the mirror is "
                    "laid out by revision (<bucket>/<org>/<name>/<revision>/), so a synced "
                    "prefix is never rewritten",
                    "weights",
                    "uris",
                    cloud,
                )


def unsynced_revisions(ctx: Context) -> Iterator[Diagnostic]:
    """Warn where a mirrored cloud runs a revision that is not a commit: nothing syncs it."""
    cat = ctx.catalog
    if cat.platform is None or not cat.platform.weights_mirrors:
        return
    seen: set[tuple[str, str]] = set()
    for env, _i, dep, model in placed_models(cat):
        clouds = {c.cloud for c in targets(cat, env, dep)} & set(cat.platform.weights_mirrors)
        if not clouds & set(model.weight_uris):
            continue
        revisions = [(model.revision, model.where.at("source"))]
        if dep.canary is not None and dep.canary.revision:
            revisions.append((dep.canary.revision, dep.canary.where))
        for rev, where in revisions:
            if is_commit(rev) or (model.name, rev) in seen:
                continue
            seen.add((model.name, rev))
            yield where.warning(
                f"revision {rev!r} is not a 40-hex commit, so no sync Job mirrors it "
                "(a branch or tag can move; a mirror prefix never changes); pin the "
                "commit, or fill the mirror yourself",
                "revision",
            )


WEIGHTS_RULES = (sync_clusters, mirror_resources, mirror_uris, unsynced_revisions)
