"""The CloudProvider interface: everything that differs between clouds.

A provider answers questions about one cluster on its cloud: which node
labels select a GPU pool, which taints its nodes carry, how a ServiceAccount
gets cloud credentials, where a model's weights are mirrored and how to copy
them, which secret-store backend is native, how the ingress load balancer is
annotated, which cloud-only add-ons run and with what values, and which node
pool resources exist. Providers register themselves by name; plan, render and
the concerns only ever call this interface, so adding a cloud is adding a
class (and its templates under `templates/nodepools/<cloud>/`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from llmgen.catalog.model import Cluster, Gpu, InstanceType, Model, NodePool
    from llmgen.plan.build import ClusterPlan
    from llmgen.plan.routing import DnsRecord

REGISTRY: dict[str, type[CloudProvider]] = {}


def register(cls: type[CloudProvider]) -> type[CloudProvider]:
    """Class decorator: make a provider available under `cls.name`."""
    REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


@dataclass(frozen=True)
class NodePoolResource:
    """One cluster-level object of a GPU node pool, rendered from a template.

    `template` is relative to the templates folder (by convention under
    `nodepools/<cloud>/`); the nodepools concern decides the file path.
    """

    kind: str
    name: str
    template: str
    context: Mapping[str, Any]
    #: the catalog node pool it belongs to; None for objects shared by all pools
    pool: str | None = None


@dataclass(frozen=True)
class WeightsSync:
    """How an init container copies a weights mirror into a local folder."""

    image: str
    command: tuple[str, ...]
    #: environment the copy tool needs to run with a read-only root filesystem
    env: Mapping[str, str]


class CloudProvider(ABC):
    """One cloud's answers; stateless, so one instance serves every cluster."""

    name: ClassVar[str]
    #: the URI scheme of the cloud's object store (weights mirrors)
    storage_scheme: ClassVar[str]
    #: the Environment `secretStores` key whose backend is this cloud's own
    secret_store_backend: ClassVar[str]
    #: Platform add-ons that only make sense on this cloud (e.g. Karpenter on AWS)
    cloud_addons: ClassVar[frozenset[str]] = frozenset()
    #: whether add-on namespaces running node-critical pods need a ResourceQuota
    #: admitting those priority classes (GKE only allows them in kube-system otherwise)
    critical_pods_need_quota: ClassVar[bool] = False
    #: the Platform add-on that provisions `LoadBalancer` Services on this
    #: cloud, when it is not built in (the gateways wait for it)
    load_balancer_addon: ClassVar[str | None] = None
    #: whether the cloud's ExternalDNS provider writes routing-policy record
    #: sets (set identifiers); others write plain records only
    dns_routing_policies: ClassVar[bool] = False
    #: read throughput of one local NVMe device of this cloud's GPU shapes, MiB/s
    local_ssd_mibps: ClassVar[float] = 0.0
    #: node-local DNS endpoints pods may resolve through (not kube-dns pods)
    node_dns_ips: ClassVar[tuple[str, ...]] = ()

    # ---------------------------------------------------------------- GPU nodes

    @abstractmethod
    def gpu_node_selector(self, cluster: Cluster, pool: NodePool, gpu: Gpu) -> dict[str, str]:
        """Node labels that pin a pod to `pool` (and so to its GPU)."""

    @abstractmethod
    def gpu_tolerations(self, pool: NodePool) -> list[dict[str, str]]:
        """Tolerations a GPU pod needs to land on `pool`."""

    @abstractmethod
    def gpu_node_labels(self, cluster: Cluster, pool: NodePool, gpu: Gpu) -> dict[str, str]:
        """Labels the provider puts on every node of `pool`."""

    @abstractmethod
    def gpu_taints(self, pool: NodePool) -> list[dict[str, str]]:
        """Taints every node of `pool` carries (Kubernetes spelling: key, value, effect)."""

    @abstractmethod
    def nodepool_resources(self, cp: ClusterPlan) -> list[NodePoolResource]:
        """The cluster-level objects that create this cluster's GPU node pools."""

    # ---------------------------------------------------------------- identity

    @abstractmethod
    def workload_identity_annotations(
        self, cluster: Cluster, namespace: str, service_account: str
    ) -> dict[str, str]:
        """ServiceAccount annotations granting cloud credentials (IRSA / Workload Identity)."""

    # ---------------------------------------------------------------- weights

    def weights_uri(self, model: Model) -> str:
        """The cloud-local mirror of the model's weights ('' when there is none)."""
        return model.weight_uris.get(self.name, "")

    @abstractmethod
    def weights_sync(self, uri: str, dest: str, workers: int) -> WeightsSync:
        """An init container's image and command copying `uri` into `dest` with `workers` CPUs."""

    def node_disk_mibps(self, shape: InstanceType, pool: NodePool, gpu: Gpu) -> float:
        """Read throughput of the disk behind a node's emptyDirs (the weights), MiB/s.

        Local NVMe where the shape has it (the node pools put emptyDirs
        there), else the root volume's.
        """
        if shape.local_ssds > 0:
            return shape.local_ssds * self.local_ssd_mibps
        return self.root_disk_mibps(pool, gpu)

    def root_disk_mibps(self, pool: NodePool, gpu: Gpu) -> float:
        """Throughput of a node's root volume (aws: gp3's 125 MiB/s baseline)."""
        return 125.0

    # ---------------------------------------------------------------- weights mirror

    #: list price of the object store's standard class, USD per GiB-month
    #: (`llmgen plan`; the catalog's `weightsMirror.<cloud>.storageUSDPerGiBMonth` wins)
    storage_usd_per_gib_month: ClassVar[float] = 0.0

    @abstractmethod
    def mirror_upload(self, uri: str, kms_key: str) -> WeightsSync:
        """The sync Job's upload container: every manifest file into `uri`, encrypted
        with `kms_key`, tagged with its SHA-256, never overwriting; the manifest last.

        It reads WEIGHTS_DIR and WEIGHTS_MANIFEST from its environment.
        """

    @abstractmethod
    def mirror_wait(self, uri: str) -> WeightsSync:
        """A model pod's first init container: poll until `uri` holds the manifest
        (WEIGHTS_MANIFEST in its environment), the sync Job's last write."""

    @abstractmethod
    def mirror_writer_annotations(self, cluster: Cluster, identity: str) -> dict[str, str]:
        """ServiceAccount annotations giving a sync Job the cloud identity `identity`."""

    @abstractmethod
    def mirror_writer_policy(self, bucket: str, prefix: str, kms_key: str) -> dict[str, Any]:
        """What the sync identity of one revision may do: write that prefix, nothing else."""

    # ---------------------------------------------------------------- network

    @abstractmethod
    def load_balancer_annotations(
        self, cluster: Cluster, *, internal: bool = False, idle_timeout_seconds: int | None = None
    ) -> dict[str, str]:
        """Annotations of a gateway's `LoadBalancer` Service on this cloud.

        `internal`: reachable only from private networks (the east-west
        gateway); `idle_timeout_seconds`: how long an idle TCP flow through
        the load balancer must survive (the longest route timeout).
        """

    def workload_identity_egress(self, cluster: Cluster) -> list[dict[str, Any]]:
        """NetworkPolicy egress rules pods need for cloud credentials, beyond HTTPS (443)."""
        return []

    def external_dns_annotations(self, record: DnsRecord) -> dict[str, str]:
        """ExternalDNS annotations of the ingress gateway Service publishing `record`.

        The default publishes plain records; a cloud whose DNS supports
        routing policies adds them where `record.policy` is set.
        """
        # A short TTL so clients follow a gateway that moved within a minute
        # (alias records, where the DNS offers them, ignore it).
        return {
            "external-dns.alpha.kubernetes.io/hostname": ",".join(record.hostnames),
            "external-dns.alpha.kubernetes.io/ttl": "60",
        }

    # ---------------------------------------------------------------- TLS

    @abstractmethod
    def acme_dns01_solver(self, cluster: Cluster, domain: str) -> dict[str, Any]:
        """The cert-manager ACME DNS-01 solver (`solvers[].dns01`) for `domain`'s zone.

        DNS-01 because the gateway redirects port 80 to HTTPS, so HTTP-01
        challenges cannot be answered. Credentials must be ambient (the
        cert-manager ServiceAccount's cloud identity), never a Secret in git.
        """

    # ---------------------------------------------------------------- add-ons

    def addon_values(self, addon: str, cp: ClusterPlan) -> dict[str, Any]:
        """Cloud-specific Helm values for `addon`, merged over the generic ones."""
        return {}
