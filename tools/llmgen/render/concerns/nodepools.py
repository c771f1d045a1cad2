"""GPU node pools (layer infrastructure/node-pools), as the cluster's cloud defines them.

The objects differ completely between clouds (Karpenter NodePool +
EC2NodeClass on EKS; ComputeClass + Config Connector ContainerNodePool on
GKE), so the provider lists them and this concern only places the files.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from llmgen.render.types import Output, file_name

if TYPE_CHECKING:
    from llmgen.plan.build import ClusterPlan

LAYER = "infrastructure/node-pools"


def outputs(cp: ClusterPlan) -> Iterator[Output]:
    for res in cp.provider.nodepool_resources(cp):
        # Objects of one pool share a folder (and so one bundled file);
        # cluster-wide objects of the provider sit in the layer itself.
        folder = f"{LAYER}/nodepool-{res.pool}" if res.pool else LAYER
        yield Output(f"{folder}/{file_name(res.kind, res.name)}", res.template, res.context)
