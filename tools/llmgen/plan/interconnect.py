"""The interconnect a multi-node replica's nodes talk over, and what its absence costs.

A multi-node replica (`resources.nodes` > 1) runs tensor parallel inside each
node (NVLink) and pipeline parallel across nodes: each stage boundary sends
one activation tensor per scheduled token batch to the next node, and Ray's
control traffic and NCCL's bootstrap run between the pods.

llmgen does not render a cloud's RDMA fabric today: no EFA interfaces in the
EC2NodeClass, no `vpc.amazonaws.com/efa` requests, no EFA device plugin on
EKS; no GPUDirect-TCPX/TCPXO networks, NRI injector or NCCL plugin on GKE A3.
The group's traffic goes over the pods' default network (TCP through the
primary ENA interface on EC2, gVNIC on GCE) and through the Istio sidecar's
passthrough. `llmgen plan` states that here, per placement, with the figures
the GpuCatalog gives, so nobody mistakes the rendered group for one on the
fabric the shape was bought for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmgen.catalog import fit

if TYPE_CHECKING:
    from llmgen.plan.build import Placement

#: The fabric each cloud offers its multi-GPU shapes, by cloud (what is not rendered).
FABRIC = {
    "aws": "EFA (Elastic Fabric Adapter)",
    "gcp": "GPUDirect-TCPX/TCPXO (A3 machine types)",
}


def absent_note(p: Placement) -> str:
    """What running this placement's groups without the cloud's fabric costs; "" if single-node."""
    if not p.model.multi_node:
        return ""
    shapes = fit.shapes(p.pool, p.gpu, p.cluster.cloud)
    listed = [f"{t.name} {t.network_gbps:g} Gbit/s" for t in shapes if t.network_gbps]
    fabric = FABRIC.get(p.cluster.cloud, "the cloud's RDMA fabric")
    shape_text = f" (the GpuCatalog lists {', '.join(listed)} for the shape)" if listed else ""
    return (
        f"{p.model.name} on {p.cluster.name}: groups of {p.model.nodes} nodes run pipeline "
        f"parallel over the pods' default network (TCP, through the Istio sidecar's "
        f"passthrough), not over {fabric}, which llmgen does not render "
        f"(docs/multinode.md){shape_text}; "
        "stage-to-stage activations and NCCL bootstrap share that link, so time to first "
        "token on long prompts and throughput at large batches are below what the shape "
        "can do; no extra cost in USD"
    )
