"""Google GKE: ComputeClass + Config Connector node pools, Workload Identity, GCS weights."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from llmgen.catalog import images, names
from llmgen.clouds.base import CloudProvider, NodePoolResource, WeightsSync, register

if TYPE_CHECKING:
    from llmgen.catalog.model import Cluster, Gpu, NodePool
    from llmgen.plan.build import ClusterPlan

COMPUTE_CLASS_LABEL = "cloud.google.com/compute-class"
#: Namespace holding the Config Connector node pools (annotated with the project).
NODEPOOL_NAMESPACE = "gke-node-pools"
#: Config Connector in namespaced mode reads this one object per namespace
#: (its name is fixed by Config Connector).
CONFIG_CONNECTOR_CONTEXT = "configconnectorcontext.core.cnrm.cloud.google.com"
#: The Google service account Config Connector acts as for the node pools
#: (a README prerequisite: roles/container.clusterAdmin on the project).
CNRM_SERVICE_ACCOUNT = "llmgen-node-pools"
#: Threads per gcloud storage process for the weights copy.
COPY_THREADS = 8
#: Pinned Google Cloud CLI image for the weights copy (`gcloud storage rsync`).
GCLOUD_IMAGE = images.default("weightsFetchGcp")  # spec.images.weightsFetchGcp overrides it
#: Cloud Storage Standard list price (regional, us-central1: USD 0.020 per GB-month), per GiB.
STORAGE_USD_PER_GIB_MONTH = round(0.020 * 1.073741824, 5)
#: Seconds between a model pod's looks for the mirror's manifest.
MIRROR_POLL_SECONDS = 30

# The sync Job's upload (see clouds/aws.py for the rules). `--if-generation-match=0`
# makes Cloud Storage itself refuse to replace an object, and the writer's role
# (objectCreator) lacks the delete permission an overwrite needs.
MIRROR_UPLOAD_SCRIPT = r"""cd "$WEIGHTS_DIR"
sync_one() {
  url="$MIRROR_URI$1"
  if have=$(gcloud storage objects describe "$url" --raw \
      --format='value(metadata.sha256)' 2>/dev/null </dev/null); then
    [ "$have" = "$2" ] && return 0
    echo "refusing to overwrite $url: tagged sha256=$have, manifest: $2" >&2
    exit 1
  fi
  gcloud storage cp --encryption-key="$MIRROR_KMS_KEY" --custom-metadata="sha256=$2" \
    --if-generation-match=0 "$1" "$url" </dev/null
}
while read -r sum path; do
  sync_one "$path" "$sum"
done < "$WEIGHTS_MANIFEST"
sync_one "$WEIGHTS_MANIFEST" "$(sha256sum < "$WEIGHTS_MANIFEST" | cut -d' ' -f1)"
echo "$MIRROR_URI holds $(wc -l < "$WEIGHTS_MANIFEST") files and the manifest"
"""
MIRROR_WAIT_SCRIPT = r"""url="$MIRROR_URI$WEIGHTS_MANIFEST"
until gcloud storage objects describe "$url" >/dev/null 2>&1; do
  echo "waiting for $url (the weights sync writes it last)"
  sleep "$POLL_SECONDS"
done
"""
#: Where GKE's driver installer puts the NVIDIA driver (NVIDIA's GKE guidance).
GKE_NVIDIA_DIR = "/home/kubernetes/bin/nvidia"
#: OS and container images; the weights cache (emptyDir) comes on top of this.
BASE_DISK_GB = 100
#: GKE's own device plugin would fight the GPU operator's; this node label
#: switches it off, so the operator's device plugin and DCGM exporter run.
NO_GKE_DEVICE_PLUGIN = {"gke-no-default-nvidia-gpu-device-plugin": "true"}
#: GKE's nodes keep CNI plugin binaries here, not in /opt/cni/bin.
GKE_CNI_BIN_DIR = "/home/kubernetes/bin"


#: Where the projected token for AWS web-identity federation is mounted.
AWS_TOKEN_DIR = "/var/run/secrets/aws"
STS_AUDIENCE = "sts.amazonaws.com"


def route53_external_dns(cluster: Cluster, account_id: str) -> dict[str, Any]:
    """ExternalDNS on GKE writing to Route 53, the environment's DNS authority.

    No keys: the pod's own ServiceAccount token (audience sts.amazonaws.com,
    projected) is exchanged for the role `<cluster>-external-dns` in the
    zone's account, which trusts this cluster's OIDC issuer
    (`https://container.googleapis.com/v1/projects/<p>/locations/<l>/clusters/<c>`)
    for `system:serviceaccount:external-dns:external-dns`. The AWS SDK's
    default chain reads AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE.
    """
    role = f"arn:aws:iam::{account_id}:role/{cluster.name}-external-dns"[:2048]
    return {
        "provider": {"name": "aws"},
        "env": [
            {"name": "AWS_ROLE_ARN", "value": role},
            {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": f"{AWS_TOKEN_DIR}/token"},
            {"name": "AWS_REGION", "value": "us-east-1"},
        ],
        "extraVolumes": [
            {
                "name": "aws-token",
                "projected": {
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "audience": STS_AUDIENCE,
                                "expirationSeconds": 3600,
                                "path": "token",
                            }
                        }
                    ]
                },
            }
        ],
        "extraVolumeMounts": [{"name": "aws-token", "mountPath": AWS_TOKEN_DIR, "readOnly": True}],
    }


def gsa_email(cluster: Cluster, service_account: str) -> str:
    """The Google service account a Kubernetes ServiceAccount impersonates."""
    project = cluster.cloud_settings.get("projectID", "")
    # Service-account IDs are 6..30 characters: shortened (or padded) with a
    # hash, never truncated into another model's identity.
    gsa = names.short_identity(service_account, 30, 6)
    return f"{gsa}@{project}.iam.gserviceaccount.com"


def local_ssds(pool: NodePool, gpu: Gpu) -> int:
    """Local SSDs the pool's machine type ships (A2 Ultra, A3 and G2 bundle them)."""
    offer = gpu.offers.get("gcp")
    shape = offer.types.get(pool.instance_types[0]) if offer and pool.instance_types else None
    return shape.local_ssds if shape is not None else 0


def disk_size_gb(pool: NodePool, gpu: Gpu) -> int:
    """Boot disk: the OS and images, plus the weights where no Local SSD holds them.

    On Local SSD shapes the node pool backs emptyDirs (the weights) with them.
    Otherwise the boot disk holds the weights of every replica a node can
    hold: weights must fit in GPU memory (a validate rule), so they never
    exceed the node's total GPU memory; 25 % headroom covers tokenizer files
    and a second copy during a rolling update of one replica.
    """
    if local_ssds(pool, gpu):
        return BASE_DISK_GB
    return BASE_DISK_GB + math.ceil(pool.gpus_per_node * gpu.memory_gib * 1.25)


@register
class GcpProvider(CloudProvider):
    name: ClassVar[str] = "gcp"
    storage_scheme: ClassVar[str] = "gs"
    storage_usd_per_gib_month: ClassVar[float] = STORAGE_USD_PER_GIB_MONTH
    secret_store_backend: ClassVar[str] = "gcp"
    critical_pods_need_quota: ClassVar[bool] = True
    #: Local SSD (NVMe), per 375 GB device, MiB/s read
    local_ssd_mibps: ClassVar[float] = 660.0
    #: Cloud DNS (cluster scope) answers on the metadata server; NodeLocal DNSCache
    #: listens on its link-local address: neither is a kube-dns pod.
    node_dns_ips: ClassVar[tuple[str, ...]] = ("169.254.169.254", "169.254.20.10")

    def gpu_node_selector(self, cluster: Cluster, pool: NodePool, gpu: Gpu) -> dict[str, str]:
        # The ComputeClass, not the node pool: it is what falls back from spot to
        # on-demand when the pool's spot capacity runs out.
        return {COMPUTE_CLASS_LABEL: names.nodepool_name(pool.name)}

    def gpu_tolerations(self, pool: NodePool) -> list[dict[str, str]]:
        return [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            {
                "key": COMPUTE_CLASS_LABEL,
                "operator": "Equal",
                "value": names.nodepool_name(pool.name),
                "effect": "NoSchedule",
            },
        ]

    def gpu_node_labels(self, cluster: Cluster, pool: NodePool, gpu: Gpu) -> dict[str, str]:
        return {
            "llmgen.io/nodepool": pool.name,
            "llmgen.io/gpu": gpu.key,
            COMPUTE_CLASS_LABEL: names.nodepool_name(pool.name),
            **NO_GKE_DEVICE_PLUGIN,
        }

    def gpu_taints(self, pool: NodePool) -> list[dict[str, str]]:
        # A manually created pool serves a ComputeClass only when it carries the
        # class's label and taint; GKE adds nvidia.com/gpu=present itself but we
        # state it so the pool's spec says what its nodes are.
        return [
            {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
            {
                "key": COMPUTE_CLASS_LABEL,
                "value": names.nodepool_name(pool.name),
                "effect": "NoSchedule",
            },
        ]

    def nodepool_resources(self, cp: ClusterPlan) -> list[NodePoolResource]:
        cluster = cp.cluster
        project = cluster.cloud_settings.get("projectID", "")
        out: list[NodePoolResource] = []
        if cluster.node_pools:
            out.append(
                NodePoolResource(
                    "Namespace",
                    NODEPOOL_NAMESPACE,
                    "nodepools/gcp/namespace.yaml.j2",
                    {"name": NODEPOOL_NAMESPACE, "labels": cp.labels, "project": project},
                )
            )
            # Without it Config Connector (namespaced mode) ignores the
            # namespace: the ContainerNodePools would never be created.
            out.append(
                NodePoolResource(
                    "ConfigConnectorContext",
                    NODEPOOL_NAMESPACE,  # names the file; the object's name is fixed
                    "nodepools/gcp/configconnectorcontext.yaml.j2",
                    {
                        "name": CONFIG_CONNECTOR_CONTEXT,
                        "namespace": NODEPOOL_NAMESPACE,
                        "labels": cp.labels,
                        "service_account": gsa_email(cluster, CNRM_SERVICE_ACCOUNT),
                    },
                )
            )
        for pool in cluster.node_pools:
            gpu = cp.gpus[pool.gpu]
            name = names.nodepool_name(pool.name)
            labels = {**cp.labels, "llmgen.io/nodepool": pool.name}
            offer = gpu.offers.get(self.name)
            accelerator = offer.label if offer else ""
            machine = pool.instance_types[0] if pool.instance_types else ""
            spot = pool.capacity_type == "spot"
            node_labels = self.gpu_node_labels(cluster, pool, gpu)
            location = {"zones": sorted(pool.zones)} if pool.zones else {}
            gpu_spec = {
                "type": accelerator,
                "count": pool.gpus_per_node,
                "driverVersion": "default",
            }
            # First the Config Connector pool below (bounded by the catalog's
            # maxNodes); a spot pool then falls back to on-demand capacity of the
            # same shape, which GKE creates on demand (node auto-creation).
            priorities: list[dict[str, Any]] = [{"nodepools": [name]}]
            if spot:
                fallback: dict[str, Any] = {
                    "machineType": machine,
                    "gpu": gpu_spec,
                    "spot": False,
                    "nodeLabels": dict(NO_GKE_DEVICE_PLUGIN),
                }
                if location:
                    fallback["location"] = location
                if local_ssds(pool, gpu):
                    fallback["storage"] = {"localSSDCount": local_ssds(pool, gpu)}
                priorities.append(fallback)
            out.append(
                NodePoolResource(
                    "ComputeClass",
                    name,
                    "nodepools/gcp/computeclass.yaml.j2",
                    {
                        "name": name,
                        "labels": labels,
                        "description": (
                            f"{pool.gpus_per_node}x {gpu.key} ({machine}), "
                            + ("spot, on-demand fallback" if spot else "on-demand")
                        ),
                        "priorities": priorities,
                        "auto_create": spot,
                    },
                    pool=pool.name,
                )
            )
            out.append(
                NodePoolResource(
                    "ContainerNodePool",
                    name,
                    "nodepools/gcp/containernodepool.yaml.j2",
                    {
                        "name": name,
                        "namespace": NODEPOOL_NAMESPACE,
                        "labels": labels,
                        "project": project,
                        "cluster": cluster.name,
                        "location": cluster.region,
                        "zones": sorted(pool.zones),
                        "min_nodes": pool.min_nodes,
                        # The plan's budget cap in nodes (<= maxNodes); GKE wants
                        # a maximum of at least one and at least the minimum.
                        "max_nodes": max(
                            cp.node_caps.get(pool.name, pool.max_nodes), pool.min_nodes, 1
                        ),
                        # Spot: take capacity wherever it is (fewer preemptions);
                        # on-demand: spread across zones.
                        "location_policy": "ANY" if spot else "BALANCED",
                        "machine_type": machine,
                        "spot": spot,
                        "accelerator": accelerator,
                        "gpus": pool.gpus_per_node,
                        "disk_size_gb": disk_size_gb(pool, gpu),
                        # emptyDirs (the weights) on the bundled NVMe Local SSDs
                        # instead of a pd-balanced boot disk (~140-250 MiB/s).
                        "local_ssds": local_ssds(pool, gpu),
                        "node_labels": node_labels,
                        "taints": [
                            {**t, "effect": _gke_effect(t["effect"])} for t in self.gpu_taints(pool)
                        ],
                    },
                    pool=pool.name,
                )
            )
        return out

    def workload_identity_annotations(
        self, cluster: Cluster, namespace: str, service_account: str
    ) -> dict[str, str]:
        return {"iam.gke.io/gcp-service-account": gsa_email(cluster, service_account)}

    def weights_sync(self, uri: str, dest: str, workers: int) -> WeightsSync:
        # gcloud storage sizes its process pool from the host's cores, not the
        # container's CPU limit (GoogleCloudPlatform/gsutil#1409): fix the
        # counts so the copy fits its memory limit on a 208-vCPU node.
        return WeightsSync(
            image=GCLOUD_IMAGE,
            command=("gcloud", "storage", "rsync", "--recursive", uri, dest),
            # gcloud keeps its configuration under CLOUDSDK_CONFIG; the root
            # filesystem is read-only.
            env={
                "HOME": "/tmp",
                "CLOUDSDK_CONFIG": "/tmp/gcloud",
                "CLOUDSDK_STORAGE_PROCESS_COUNT": str(workers),
                "CLOUDSDK_STORAGE_THREAD_COUNT": str(COPY_THREADS),
            },
        )

    def mirror_upload(self, uri: str, kms_key: str) -> WeightsSync:
        return WeightsSync(
            image=GCLOUD_IMAGE,
            command=("/bin/sh", "-ec", MIRROR_UPLOAD_SCRIPT),
            env={"CLOUDSDK_CONFIG": "/tmp/gcloud", "MIRROR_URI": uri, "MIRROR_KMS_KEY": kms_key},
        )

    def mirror_wait(self, uri: str) -> WeightsSync:
        return WeightsSync(
            image=GCLOUD_IMAGE,
            command=("/bin/sh", "-ec", MIRROR_WAIT_SCRIPT),
            env={
                "HOME": "/tmp",
                "CLOUDSDK_CONFIG": "/tmp/gcloud",
                "MIRROR_URI": uri,
                "POLL_SECONDS": str(MIRROR_POLL_SECONDS),
            },
        )

    def mirror_writer_annotations(self, cluster: Cluster, identity: str) -> dict[str, str]:
        return {"iam.gke.io/gcp-service-account": gsa_email(cluster, identity)}

    def mirror_writer_policy(self, bucket: str, prefix: str, kms_key: str) -> dict[str, Any]:
        """IAM bindings of one revision's sync service account, on the bucket.

        objectCreator can create objects but not replace them (replacing needs
        storage.objects.delete); objectViewer lets the Job read its own tags
        back. Both are conditioned on the object name, so other revisions stay
        out of reach. Neither role lists the bucket. CMEK needs no grant here:
        the Cloud Storage service agent encrypts with the key.
        """
        condition = {
            "title": "this revision only",
            "expression": (
                f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/{prefix}")'
            ),
        }
        return {
            "bindings": [
                {"role": "roles/storage.objectCreator", "condition": condition},
                {"role": "roles/storage.objectViewer", "condition": condition},
            ]
        }

    def root_disk_mibps(self, pool: NodePool, gpu: Gpu) -> float:
        """pd-balanced: 0.28 MiB/s per GB with a 140 MiB/s baseline (Persistent Disk limits)."""
        return max(140.0, 0.28 * disk_size_gb(pool, gpu))

    def load_balancer_annotations(
        self, cluster: Cluster, *, internal: bool = False, idle_timeout_seconds: int | None = None
    ) -> dict[str, str]:
        if internal:
            # An internal passthrough NLB, reachable from other regions (and,
            # through VPN or Interconnect, from the peer clouds' networks).
            return {
                "networking.gke.io/load-balancer-type": "Internal",
                "networking.gke.io/internal-load-balancer-allow-global-access": "true",
            }
        # A backend-service-based external passthrough NLB (regional, preserves
        # client IPs, supports more than 250 backends). It is connection-tracked
        # without a per-listener idle timeout annotation; README notes it.
        return {"cloud.google.com/l4-rbs": "enabled"}

    def acme_dns01_solver(self, cluster: Cluster, domain: str) -> dict[str, Any]:
        # Workload Identity: no key file; cert-manager's ServiceAccount
        # impersonates its Google service account (see addon_values).
        return {"cloudDNS": {"project": cluster.cloud_settings.get("projectID", "")}}

    def workload_identity_egress(self, cluster: Cluster) -> list[dict[str, Any]]:
        # GKE's metadata server (Workload Identity tokens) listens on the node:
        # 169.254.169.252:988 with Dataplane V2, 127.0.0.1:988 without it.
        return [
            {
                "to": [
                    {"ipBlock": {"cidr": "169.254.169.252/32"}},
                    {"ipBlock": {"cidr": "127.0.0.1/32"}},
                ],
                "ports": [{"protocol": "TCP", "port": 988}],
            }
        ]

    def addon_values(self, addon: str, cp: ClusterPlan) -> dict[str, Any]:
        cluster = cp.cluster
        if addon == "istio-cni":
            # The node agent's ResourceQuota for system-node-critical is the
            # add-ons concern's (critical_pods_need_quota).
            return {"cni": {"cniBinDir": GKE_CNI_BIN_DIR}}
        if addon == "cert-manager":
            # Cloud DNS DNS-01 challenges through Workload Identity.
            return {
                "serviceAccount": {
                    "annotations": self.workload_identity_annotations(
                        cluster, "cert-manager", "cert-manager"
                    )
                }
            }
        if addon == "external-dns":
            env = cp.environment
            if env is not None and env.dns is not None and env.dns.provider == "route53":
                return route53_external_dns(cluster, env.dns.account_id)
            project = cluster.cloud_settings.get("projectID", "")
            return {
                "provider": {"name": "google"},
                # public zones only: never a private zone of the same name
                "extraArgs": [f"--google-project={project}", "--google-zone-visibility=public"],
                "serviceAccount": {
                    "annotations": self.workload_identity_annotations(
                        cluster, "external-dns", "external-dns"
                    )
                },
            }
        if addon == "gpu-operator":
            # NVIDIA's guidance for GKE with Google's driver installer: GKE
            # installs the driver (node pools ask for it), the operator runs the
            # toolkit, device plugin and DCGM exporter against GKE's paths.
            return {
                "driver": {"enabled": False},
                "hostPaths": {"driverInstallDir": GKE_NVIDIA_DIR},
                "toolkit": {
                    "installDir": GKE_NVIDIA_DIR,
                    # Container Toolkit otherwise rewrites GKE 1.33+'s containerd
                    # config wrongly (NVIDIA known issue).
                    "env": [{"name": "RUNTIME_CONFIG_SOURCE", "value": "file"}],
                },
                "cdi": {"enabled": True, "default": True},
                # GPU nodes carry their ComputeClass's taint too (gpu_taints);
                # the chart's DaemonSets and NFD's worker (whose PCI labels make
                # the operator deploy there) tolerate only nvidia.com/gpu, so
                # without these no device plugin runs where GKE's is disabled.
                "daemonsets": {"tolerations": _operator_tolerations()},
                "node-feature-discovery": {"worker": {"tolerations": _operator_tolerations()}},
            }
        return {}


def _operator_tolerations() -> list[dict[str, str]]:
    """Every GPU node's taints, whatever its ComputeClass (its name is the value)."""
    return [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": COMPUTE_CLASS_LABEL, "operator": "Exists", "effect": "NoSchedule"},
    ]


def _gke_effect(effect: str) -> str:
    """Kubernetes taint effect -> the GKE API's enum (NoSchedule -> NO_SCHEDULE)."""
    return {
        "NoSchedule": "NO_SCHEDULE",
        "PreferNoSchedule": "PREFER_NO_SCHEDULE",
        "NoExecute": "NO_EXECUTE",
    }[effect]
