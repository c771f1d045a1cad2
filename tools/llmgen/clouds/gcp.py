"""Google GKE: ComputeClass + Config Connector node pools, Workload Identity, GCS weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from .base import CloudProvider, register

if TYPE_CHECKING:
    from ..catalog import Cluster, Gpu, NodePool


@register
class GcpProvider(CloudProvider):
    name: ClassVar[str] = "gcp"
    storage_scheme: ClassVar[str] = "gs"

    def gpu_node_selector(self, cluster: Cluster, pool: NodePool, gpu: Gpu) -> dict[str, str]:
        return {"cloud.google.com/gke-nodepool": pool.name}

    def gpu_tolerations(self, pool: NodePool) -> list[dict[str, str]]:
        # GKE taints GPU nodes nvidia.com/gpu=present:NoSchedule itself.
        return [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]

    def workload_identity_annotations(
        self, cluster: Cluster, namespace: str, service_account: str
    ) -> dict[str, str]:
        project = cluster.cloud_settings.get("projectID", "")
        gsa = service_account[:30].rstrip("-")
        return {"iam.gke.io/gcp-service-account": f"{gsa}@{project}.iam.gserviceaccount.com"}
