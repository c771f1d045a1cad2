"""Amazon EKS: Karpenter GPU node pools, IRSA, S3 weights, Secrets Manager."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from .. import names
from .base import CloudProvider, register

if TYPE_CHECKING:
    from ..catalog import Cluster, Gpu, NodePool


@register
class AwsProvider(CloudProvider):
    name: ClassVar[str] = "aws"
    storage_scheme: ClassVar[str] = "s3"

    def gpu_node_selector(self, cluster: Cluster, pool: NodePool, gpu: Gpu) -> dict[str, str]:
        # Karpenter labels every node with the NodePool that launched it.
        return {"karpenter.sh/nodepool": names.nodepool_name(pool.name)}

    def gpu_tolerations(self, pool: NodePool) -> list[dict[str, str]]:
        return [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]

    def workload_identity_annotations(
        self, cluster: Cluster, namespace: str, service_account: str
    ) -> dict[str, str]:
        account = cluster.cloud_settings.get("accountID", "")
        role = f"{cluster.name}-{service_account}"[:64]
        return {"eks.amazonaws.com/role-arn": f"arn:aws:iam::{account}:role/{role}"}
