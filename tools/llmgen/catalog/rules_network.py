"""Rules for what the clusters' networking needs from the catalog (issue 14).

- An EKS cluster running the AWS Load Balancer Controller names its VPC
  (`spec.aws.vpcID`, or `spec.aws.vpcName`, the VPC's `Name` tag): v2.14
  cannot find it otherwise on nodes whose metadata hop limit is 1
  (pkg/aws/cloud.go `getVpcID`: --aws-vpc-id, else the `Name` tag of
  --aws-vpc-tags, else instance metadata).
- Every active cluster of an environment is in its global name under the
  routing policy (failover: as PRIMARY or SECONDARY); suspended clusters are
  out by design. Without `spec.dns` only AWS clusters can join (Route 53 has
  the policy record sets; Cloud DNS has no latency routing), so an
  environment with other clusters must name Route 53 its authority.
- Route 53 keeps one latency record per AWS region and name: two active
  clusters whose records name the same AWS region (a GCP region maps to the
  nearest AWS one) cannot share `latency`; refused, with the fix.
- A GKE gateway in the policy record set has a Route 53 health check
  (`spec.dns.healthChecks`): refused without one under failover, warned
  under the other policies.
"""

from __future__ import annotations

from collections.abc import Iterator

from llmgen.catalog.dnsregions import aws_region
from llmgen.catalog.model import Cluster, Environment
from llmgen.catalog.rulekit import Context, Rule
from llmgen.errors import Diagnostic

LBC_ADDON = "aws-load-balancer-controller"


def lbc_vpc(ctx: Context) -> Iterator[Diagnostic]:
    """Every AWS cluster the Load Balancer Controller runs on says which VPC it is in."""
    platform = ctx.catalog.platform
    if platform is None or LBC_ADDON not in platform.addons:
        return
    for cluster in ctx.catalog.clusters.values():
        if cluster.cloud != "aws":
            continue
        aws = cluster.cloud_settings
        if not aws.get("vpcID") and not aws.get("vpcName"):
            yield cluster.where.error(
                "give vpcID (or vpcName, the VPC's Name tag): the AWS Load Balancer "
                "Controller cannot look its VPC up from pods on nodes with a metadata "
                "hop limit of 1, and exits",
                "aws",
            )


def _active(ctx: Context, env: Environment) -> list[Cluster]:
    if env.suspended:
        return []
    return [
        ctx.catalog.clusters[n]
        for n in env.clusters
        if n in ctx.catalog.clusters and n not in env.suspended_clusters
    ]


def global_name_coverage(ctx: Context) -> Iterator[Diagnostic]:
    """The routing policy puts every active cluster of the environment in its domain."""
    for env in ctx.catalog.environments.values():
        active = _active(ctx, env)
        if len(active) < 2:
            continue
        policy = env.routing_policy
        left_out = [c.name for c in active if c.cloud != "aws"] if env.dns is None else []
        if left_out:
            yield env.where.error(
                f"policy {policy!r} leaves {', '.join(left_out)} out of {env.domain}: only "
                "Route 53 has the record sets; name it the domain's one authority "
                "(spec.dns: {provider: route53, zoneID, accountID})",
                "routing",
                "policy",
            )
            continue
        if policy == "failover" and len(active) > 2:
            rest = ", ".join(c.name for c in active[2:])
            yield env.where.error(
                f"failover holds one PRIMARY and one SECONDARY per name: {rest} would be "
                f"out of {env.domain}; use latency, weighted or geo, or suspend them",
                "routing",
                "policy",
            )
        if policy == "weighted" and set(env.routing_weights) <= set(env.clusters):
            for c in active:
                if env.routing_weights.get(c.name, 0) <= 0 and env.routing_weights:
                    yield env.where.error(
                        f"active cluster {c.name!r} has no weight: it would get no traffic "
                        f"from {env.domain}; give it a weight or suspend it",
                        "routing",
                        "weights",
                    )
        if policy in ("latency", "geo"):
            seen: dict[str, str] = {}
            for c in active:
                region = aws_region(c)
                if region is None:
                    yield c.where.error(
                        f"no AWS region is mapped for {c.region!r}: Route 53 {policy} "
                        "records name an AWS region (catalog/dnsregions.py)",
                        "region",
                    )
                elif region in seen and policy == "latency":
                    yield env.where.error(
                        f"{seen[region]} and {c.name} both map to AWS region {region}: "
                        f"Route 53 keeps one latency record per region and name; use "
                        "policy weighted or geo, or serve that region from one cluster",
                        "routing",
                        "policy",
                    )
                else:
                    seen.setdefault(region, c.name)


def _joined(env: Environment, active: list[Cluster]) -> list[Cluster]:
    """The clusters in the domain's policy record set (plan/routing.py `dns_records`
    with spec.dns: every active cluster, the first two under failover)."""
    if len(active) < 2:
        return []
    return active[:2] if env.routing_policy == "failover" else active


def dns_health_checks(ctx: Context) -> Iterator[Diagnostic]:
    """A GKE gateway in a policy record set has a Route 53 health check.

    AWS gateways are alias records to their NLB with target health; a GKE
    gateway's record is its load balancer's IP, which Route 53 considers
    healthy unless a health check is associated ("If you don't associate a
    health check with a failover record, Route 53 treats it as healthy",
    Route 53 Developer Guide, failover records). So under failover the other
    cluster would never take over: refused. Under latency, weighted or geo a
    dead GKE gateway keeps its share: warned. An ID for a cluster outside the
    environment would be silently unused: refused (a suspended cluster keeps
    its ID for the restart).
    """
    for env in ctx.catalog.environments.values():
        if env.dns is None:
            continue
        active = _active(ctx, env)
        if env.routing_policy == "failover" and len(active) > 2:
            continue  # global_name_coverage refuses it; which two join is moot
        joined = _joined(env, active)
        for name in sorted(env.dns.health_checks):
            # A suspended cluster keeps its ID for when it starts again
            # (`llmgen stop --cluster` edits suspendedClusters only).
            if name not in env.clusters:
                yield env.dns.where.error(
                    f"health check for {name!r}, which is not a cluster of this "
                    f"environment: no record of {env.domain} would use it",
                    "healthChecks",
                    name,
                    key=True,
                )
        for c in joined:
            if c.cloud == "aws" or c.name in env.dns.health_checks:
                continue
            message = (
                f"{c.name}'s record in {env.domain} is an IP (no alias target health): "
                f"give it a Route 53 health check (spec.dns.healthChecks.{c.name}), or "
            )
            if env.routing_policy == "failover":
                yield env.dns.where.error(
                    message + "Route 53 treats it as healthy and never fails over",
                    "healthChecks",
                )
            else:
                yield env.dns.where.warning(
                    message + f"{env.routing_policy} routing keeps sending its share "
                    "to it while it is down",
                    "healthChecks",
                )


NETWORK_RULES: tuple[Rule, ...] = (lbc_vpc, global_name_coverage, dns_health_checks)
