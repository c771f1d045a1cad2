"""Rules for what the clusters' networking needs from the catalog (issue 14).

- An EKS cluster running the AWS Load Balancer Controller names its VPC
  (`spec.aws.vpcID`, or `spec.aws.vpcName`, the VPC's `Name` tag): v2.14
  cannot find it otherwise on nodes whose metadata hop limit is 1
  (pkg/aws/cloud.go `getVpcID`: --aws-vpc-id, else the `Name` tag of
  --aws-vpc-tags, else instance metadata).
"""

from __future__ import annotations

from collections.abc import Iterator

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


NETWORK_RULES: tuple[Rule, ...] = (lbc_vpc,)
