"""The AWS region a cluster's Route 53 latency or geoproximity record names.

A catalog-level fact (validate checks it, plan/routing.py uses it): Route 53
measures latency to AWS regions only, so a GCP cluster's record names the AWS
region nearest its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmgen.catalog.model import Cluster

# Route 53 latency and geoproximity records name an AWS region. A GCP
# cluster's record names the AWS region nearest its own (same metro where
# both clouds have one), so Route 53 measures clients against the right place.
GCP_TO_AWS_REGION = {
    "us-central1": "us-east-2",  # Iowa -> Ohio
    "us-east1": "us-east-1",  # South Carolina -> Virginia
    "us-east4": "us-east-1",  # Virginia
    "us-east5": "us-east-2",  # Columbus -> Ohio
    "us-south1": "us-east-2",  # Dallas -> Ohio
    "us-west1": "us-west-2",  # Oregon
    "us-west2": "us-west-1",  # Los Angeles -> N. California
    "us-west3": "us-west-2",  # Salt Lake City -> Oregon
    "us-west4": "us-west-1",  # Las Vegas -> N. California
    "northamerica-northeast1": "ca-central-1",  # Montreal
    "northamerica-northeast2": "ca-central-1",  # Toronto -> Montreal
    "southamerica-east1": "sa-east-1",  # Sao Paulo
    "europe-west1": "eu-west-3",  # Belgium -> Paris
    "europe-west2": "eu-west-2",  # London
    "europe-west3": "eu-central-1",  # Frankfurt
    "europe-west4": "eu-central-1",  # Netherlands -> Frankfurt
    "europe-west6": "eu-central-2",  # Zurich
    "europe-west8": "eu-south-1",  # Milan
    "europe-west9": "eu-west-3",  # Paris
    "europe-southwest1": "eu-south-2",  # Madrid -> Spain
    "europe-north1": "eu-north-1",  # Finland -> Stockholm
    "europe-central2": "eu-central-1",  # Warsaw -> Frankfurt
    "asia-east1": "ap-east-1",  # Taiwan -> Hong Kong
    "asia-east2": "ap-east-1",  # Hong Kong
    "asia-northeast1": "ap-northeast-1",  # Tokyo
    "asia-northeast2": "ap-northeast-3",  # Osaka
    "asia-northeast3": "ap-northeast-2",  # Seoul
    "asia-south1": "ap-south-1",  # Mumbai
    "asia-south2": "ap-south-2",  # Delhi -> Hyderabad
    "asia-southeast1": "ap-southeast-1",  # Singapore
    "asia-southeast2": "ap-southeast-3",  # Jakarta
    "australia-southeast1": "ap-southeast-2",  # Sydney
    "australia-southeast2": "ap-southeast-4",  # Melbourne
    "me-west1": "il-central-1",  # Tel Aviv
    "me-central1": "me-central-1",  # Doha -> UAE
    "africa-south1": "af-south-1",  # Johannesburg -> Cape Town
}


def aws_region(cluster: Cluster) -> str | None:
    """The AWS region a cluster's latency or geoproximity record names (None: unmapped)."""
    if cluster.cloud == "aws":
        return cluster.region
    return GCP_TO_AWS_REGION.get(cluster.region)
