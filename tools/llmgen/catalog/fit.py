"""Node fit: what one node of a pool can give pods, and how many replicas it holds.

A GPU node is not all the model's: the kubelet reserves CPU and memory for
the system, the cloud and llmgen run DaemonSets on it, and every model pod
carries Istio's sidecar. A replica that asks more than is left stays
Pending (Karpenter: "no instance type satisfied resources"; GKE's cluster
autoscaler: "didn't have enough memory"). This module computes, per cloud,
the allocatable CPU and memory of each machine shape the GpuCatalog lists,
and packs replicas per node by GPU, CPU and memory together. validate
refuses a model that fits no shape of its pool; plan counts nodes, GPU
limits and costs from the same packing; render sizes the pod from the same
request, so the three never disagree.

Kubelet reservations (per cloud, from each cloud's own arithmetic):

- aws (what Karpenter assumes before it launches a node, which decides
  whether it launches one at all): memory is the EC2 size less
  `VM_MEMORY_OVERHEAD` (Karpenter's `vmMemoryOverheadPercent` default,
  aws/karpenter-provider-aws pkg/operator/options), less kube-reserved
  `11 MiB x maxPods + 255 MiB` and the kubelet's `memory.available` 100Mi
  hard eviction threshold; CPU less the kube-reserved tiers below
  (pkg/providers/instancetype/types.go `kubeReservedResources`,
  `evictionThreshold`, at v1.8). maxPods is the ENI-limited count unless
  the EC2NodeClass sets one.
- gcp: GKE's published reservation table (cloud.google.com/kubernetes-engine
  /docs/concepts/plan-node-sizes): memory 25 % of the first 4 GiB, 20 % of the
  next 4, 10 % of the next 8, 6 % of the next 112, 2 % above 128 GiB (255 MiB
  under 1 GiB), plus a 100 MiB eviction threshold; CPU the same tiers as
  Karpenter's.

Any other cloud gets the larger of the two reservations (never optimistic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache

from llmgen.catalog.model import Gpu, InstanceType, Model, NodePool

GIB_PER_MIB = 1 / 1024

#: CPU kube-reserved as (cores in this tier, fraction reserved), the table
#: GKE publishes and Karpenter copies from the EKS AMI's bootstrap.
CPU_TIERS: tuple[tuple[float, float], ...] = ((1, 0.06), (1, 0.01), (2, 0.005), (math.inf, 0.0025))
#: GKE memory reservation as (GiB in this tier, fraction reserved).
GKE_MEMORY_TIERS: tuple[tuple[float, float], ...] = (
    (4, 0.25),
    (4, 0.20),
    (8, 0.10),
    (112, 0.06),
    (math.inf, 0.02),
)
#: Karpenter's default `vmMemoryOverheadPercent`: memory EC2 lists but the OS never shows.
VM_MEMORY_OVERHEAD = 0.075
#: The kubelet's default hard eviction threshold (`memory.available<100Mi`), on both clouds.
EVICTION_MIB = 100
#: Pods per node when the GpuCatalog does not say (the kubelet's default).
DEFAULT_MAX_PODS = 110


@dataclass(frozen=True)
class Resources:
    """CPU (cores) and memory (GiB) of a request or an allocatable."""

    cpu: float
    memory_gib: float

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu + other.cpu, self.memory_gib + other.memory_gib)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu - other.cpu, self.memory_gib - other.memory_gib)

    def times(self, n: int) -> Resources:
        return Resources(self.cpu * n, self.memory_gib * n)


@dataclass(frozen=True)
class DaemonSet:
    """A DaemonSet's requests on every GPU node, and where the figure comes from."""

    name: str
    cpu: float
    memory_mib: float
    source: str


#: llmgen's own add-ons with a pod on every GPU node (chart defaults at the
#: Platform's pinned versions; gpu-readiness is ours: concerns/gpureadiness.py).
#: gpu-operator's device plugin, DCGM exporter, GFD, validator and toolkit and
#: kube-prometheus-stack's node-exporter request nothing by default.
LLMGEN_DAEMONSETS: tuple[DaemonSet, ...] = (
    DaemonSet("gpu-readiness", 0.010, 64, "llmgen concerns/gpureadiness.py RESOURCES"),
    DaemonSet("istio-cni-node", 0.100, 100, "istio cni chart values.yaml cni.resources"),
    DaemonSet("nfd-worker", 0.005, 64, "node-feature-discovery chart worker.resources"),
)
#: The cloud's own agents on a GPU node, as the managed clusters ship them.
CLOUD_DAEMONSETS: dict[str, tuple[DaemonSet, ...]] = {
    "aws": (
        DaemonSet("aws-node", 0.025, 0, "EKS vpc-cni add-on (amazon-vpc-cni-k8s chart)"),
        DaemonSet("kube-proxy", 0.100, 0, "EKS kube-proxy add-on DaemonSet"),
        DaemonSet("ebs-csi-node", 0.030, 120, "aws-ebs-csi-driver chart node: 3 x 10m/40Mi"),
        DaemonSet("eks-pod-identity-agent", 0.025, 32, "EKS pod identity agent add-on"),
    ),
    "gcp": (
        DaemonSet("fluentbit-gke", 0.100, 200, "GKE logging agent (2 containers, 50m/100Mi)"),
        DaemonSet("gke-metadata-server", 0.100, 100, "GKE Workload Identity metadata server"),
        DaemonSet("gke-metrics-agent", 0.013, 85, "GKE system metrics agent"),
        DaemonSet("anetd / kube-proxy", 0.100, 200, "Dataplane V2 agent, or kube-proxy without it"),
        DaemonSet("netd", 0.005, 30, "GKE network daemon"),
        DaemonSet("pdcsi-node", 0.020, 40, "GKE Persistent Disk CSI node plugin"),
        DaemonSet("node-local-dns", 0.025, 5, "NodeLocal DNSCache, where enabled"),
    ),
}
#: Istio's injected sidecar on every model pod (istiod chart
#: `global.proxy.resources.requests`, 100m/128Mi at 1.27.3 and, rechecked,
#: at the pinned 1.28.0).
SIDECAR = Resources(0.1, 128 * GIB_PER_MIB)


def _tiered(amount: float, tiers: tuple[tuple[float, float], ...]) -> float:
    reserved, left = 0.0, amount
    for size, fraction in tiers:
        step = min(left, size)
        reserved += step * fraction
        left -= step
        if left <= 0:
            break
    return reserved


def _gke_reserved(shape: InstanceType) -> Resources:
    mem = shape.memory_gib
    memory = 255 * GIB_PER_MIB if mem < 1 else _tiered(mem, GKE_MEMORY_TIERS)
    return Resources(_tiered(shape.vcpus, CPU_TIERS), memory + EVICTION_MIB * GIB_PER_MIB)


def _karpenter_reserved(shape: InstanceType) -> Resources:
    pods = shape.max_pods or DEFAULT_MAX_PODS
    memory = (
        shape.memory_gib * VM_MEMORY_OVERHEAD
        + (11 * pods + 255) * GIB_PER_MIB
        + EVICTION_MIB * GIB_PER_MIB
    )
    return Resources(_tiered(shape.vcpus, CPU_TIERS), memory)


def reserved(cloud: str, shape: InstanceType) -> Resources:
    """What the kubelet (and, on aws, Karpenter's VM overhead) keeps from pods."""
    if cloud == "aws":
        return _karpenter_reserved(shape)
    if cloud == "gcp":
        return _gke_reserved(shape)
    a, g = _karpenter_reserved(shape), _gke_reserved(shape)
    return Resources(max(a.cpu, g.cpu), max(a.memory_gib, g.memory_gib))


@cache
def daemonsets(cloud: str) -> Resources:
    """Requests of the DaemonSets on every GPU node of `cloud` (llmgen's and the cloud's)."""
    total = Resources(0.0, 0.0)
    for ds in (*LLMGEN_DAEMONSETS, *CLOUD_DAEMONSETS.get(cloud, ())):
        total += Resources(ds.cpu, ds.memory_mib * GIB_PER_MIB)
    return total


# Plan and validate ask for the same (cloud, shape) and (model, shape) pairs
# thousands of times (every model x pool x cluster); the arithmetic is pure,
# so it is cached by value. InstanceType is a frozen dataclass of scalars,
# hashable as it is; Model is not (dict fields), so per_node caches on the
# three fields its answer depends on.
@lru_cache(maxsize=4096)
def allocatable(cloud: str, shape: InstanceType) -> Resources:
    """CPU and memory left for model pods on one node of `shape`."""
    return Resources(shape.vcpus, shape.memory_gib) - reserved(cloud, shape) - daemonsets(cloud)


def shm_gib(model: Model) -> int:
    """`/dev/shm` for NCCL between tensor-parallel workers (memory, charged to the pod)."""
    return _shm(model.gpus_per_pod)


def _shm(gpu_count: int) -> int:
    return 2 if gpu_count <= 1 else min(16, 4 * gpu_count)


def container_memory_gib(model: Model) -> int:
    """The vLLM container's memory request (= limit): the catalog's memory plus /dev/shm."""
    return math.ceil(model.memory_gib) + _shm(model.gpus_per_pod)


def pod_request(model: Model) -> Resources:
    """What one replica's pod asks of its node: vLLM plus the Istio sidecar.

    A multi-node replica (`resources.nodes` > 1) has one such pod per node:
    cpu and memoryGiB are per pod, GPUs gpuCount / nodes.

    Kubernetes takes the larger of the containers' sum (with sidecars) and
    the largest init container (with the sidecars started before it). Every
    init container the pod renders (wait-for-mirror, fetch/verify-weights,
    fetch/verify-adapter-N) asks less than vLLM and none is a sidecar
    (tests/test_fit.py keeps it so), so the effective request is this sum.
    """
    return _request(model.gpus_per_pod, model.cpu, model.memory_gib)


def _request(gpu_count: int, cpu: float, memory_gib: float) -> Resources:
    return Resources(cpu, float(math.ceil(memory_gib) + _shm(gpu_count))) + SIDECAR


def shapes(pool: NodePool, gpu: Gpu, cloud: str) -> list[InstanceType]:
    """The pool's machine shapes the GpuCatalog lists for `gpu` on `cloud`."""
    offer = gpu.offers.get(cloud)
    if offer is None:
        return []
    return [t for name in pool.instance_types if (t := offer.types.get(name)) is not None]


def per_node(model: Model, shape: InstanceType, cloud: str) -> int:
    """Replicas of `model` one node of `shape` holds: the least of GPU, CPU and memory.

    A shape without CPU and memory figures packs by GPU only. For a
    multi-node model this is whether one pod of its group fits (0 or 1):
    the group's pods are kept one per node (required anti-affinity on the
    hostname, render/concerns/group.py), so a replica takes `nodes` nodes.
    """
    return _per_node(
        model.gpus_per_pod, model.cpu, model.memory_gib, shape, cloud, model.multi_node
    )


@lru_cache(maxsize=16384)
def _per_node(
    gpu_count: int,
    cpu: float,
    memory_gib: float,
    shape: InstanceType,
    cloud: str,
    multi_node: bool = False,
) -> int:
    by_gpu = shape.gpus // max(gpu_count, 1)
    if multi_node:
        by_gpu = min(by_gpu, 1)
    if shape.vcpus <= 0 or shape.memory_gib <= 0:
        return by_gpu
    room = allocatable(cloud, shape)
    need = _request(gpu_count, cpu, memory_gib)
    by_cpu = math.floor(room.cpu / need.cpu + 1e-9) if need.cpu > 0 else by_gpu
    by_memory = math.floor(room.memory_gib / need.memory_gib + 1e-9)
    return max(0, min(by_gpu, by_cpu, by_memory))


def replicas_per_node(model: Model, pool: NodePool, gpu: Gpu, cloud: str) -> int:
    """Replicas per node of `pool`, counted on its least accommodating shape that fits one.

    Karpenter may launch any listed shape that fits a pending pod, so node
    counts assume the one holding the fewest replicas; shapes that fit none
    are never launched for this model. 0 when no shape fits a replica, or
    the pool has no priced shape (then GPUs alone decide, as before).
    """
    listed = shapes(pool, gpu, cloud)
    if not listed:
        by_gpu = pool.gpus_per_node // max(model.gpus_per_pod, 1)
        return min(by_gpu, 1) if model.multi_node else by_gpu
    counts = [n for t in listed if (n := per_node(model, t, cloud)) >= 1]
    return min(counts) if counts else 0


def misfit(model: Model, pool: NodePool, gpu: Gpu, cloud: str) -> str | None:
    """Why no shape of `pool` holds a replica of `model`; None when one does."""
    listed = shapes(pool, gpu, cloud)
    if not listed or replicas_per_node(model, pool, gpu, cloud) >= 1:
        return None
    need = pod_request(model)
    parts = []
    for t in listed:
        room = allocatable(cloud, t)
        short = []
        if t.gpus < model.gpus_per_pod:
            short.append(f"{t.gpus} GPU(s)")
        if need.cpu > room.cpu:
            short.append(f"{room.cpu:.2f} CPU allocatable")
        if need.memory_gib > room.memory_gib:
            short.append(f"{room.memory_gib:.1f} GiB memory allocatable")
        parts.append(f"{t.name} ({t.vcpus:g} vCPU, {t.memory_gib:g} GiB): {', '.join(short)}")
    what = f"each of a replica's {model.nodes} pods" if model.multi_node else "a replica"
    return (
        f"{what} requests {need.cpu:g} CPU and {need.memory_gib:.1f} GiB "
        f"(vLLM {model.cpu:g} CPU, {container_memory_gib(model)}Gi with /dev/shm, "
        f"plus the Istio sidecar) but pool {pool.name!r} offers only " + "; ".join(parts)
    )
