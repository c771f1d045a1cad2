"""Amazon EKS: Karpenter GPU node pools, IRSA, S3 weights, Secrets Manager, NLB."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from llmgen.catalog import images, names
from llmgen.catalog.rules_weights import ACK_ADDONS
from llmgen.clouds import aws_mirror
from llmgen.clouds.base import CloudProvider, NodePoolResource, WeightsSync, register

if TYPE_CHECKING:
    from llmgen.catalog.model import Cluster, Gpu, NodePool
    from llmgen.plan.build import ClusterPlan
    from llmgen.plan.routing import DnsRecord

#: EKS-optimised AL2023 AMI release. Karpenter picks the NVIDIA variant (driver
#: and container toolkit preinstalled) for GPU instance types. Pinned, not
#: `@latest`, so a new AMI reaches GPU nodes only through a reviewed change
#: (which Karpenter then rolls out as drift, one node at a time).
AMI_ALIAS = "al2023@v20250915"
#: Root volume for the OS and container images (vLLM images are ~10 GB).
#: Weights do not live here: the instance store (NVMe, RAID0) backs emptyDirs.
ROOT_VOLUME = "200Gi"
#: Bandwidth the CRT client aims for per copy (a share of a GPU node's NIC).
COPY_GBPS = 10
#: Pinned AWS CLI image for the weights copy (`aws s3 sync`).
AWS_CLI_IMAGE = images.default("weightsFetchAws")  # spec.images.weightsFetchAws overrides it
#: S3 Standard list price (us-east-1, first 50 TB: USD 0.023 per GB-month), per GiB.
STORAGE_USD_PER_GIB_MONTH = round(0.023 * 1.073741824, 5)
#: Seconds between a model pod's looks for the mirror's manifest.
MIRROR_POLL_SECONDS = 30

# The sync Job's upload. Inputs come from the environment, never pasted into
# the script. A file already in the prefix with its SHA-256 tag is skipped
# (a retried pod resumes); one without the tag, or with another, is refused:
# a revision's objects are never overwritten. The manifest goes last, so its
# presence means every file it lists is there.
MIRROR_UPLOAD_SCRIPT = r"""cd "$WEIGHTS_DIR"
rest=${MIRROR_URI#s3://}
bucket=${rest%%/*}
prefix=${rest#"$bucket"/}
sync_one() {
  key="$prefix$1"
  if have=$(aws s3api head-object --bucket "$bucket" --key "$key" \
      --query Metadata.sha256 --output text 2>/dev/null </dev/null); then
    [ "$have" = "$2" ] && return 0
    echo "refusing to overwrite s3://$bucket/$key: tagged sha256=$have, manifest: $2" >&2
    exit 1
  fi
  aws s3 cp --only-show-errors --no-progress --sse aws:kms --sse-kms-key-id "$MIRROR_KMS_KEY" \
    --metadata "sha256=$2" "$1" "s3://$bucket/$key" </dev/null
}
while read -r sum path; do
  sync_one "$path" "$sum"
done < "$WEIGHTS_MANIFEST"
sync_one "$WEIGHTS_MANIFEST" "$(sha256sum < "$WEIGHTS_MANIFEST" | cut -d' ' -f1)"
echo "$MIRROR_URI holds $(wc -l < "$WEIGHTS_MANIFEST") files and the manifest"
"""
MIRROR_WAIT_SCRIPT = r"""rest=${MIRROR_URI#s3://}
bucket=${rest%%/*}
prefix=${rest#"$bucket"/}
key="$prefix$WEIGHTS_MANIFEST"
until aws s3api head-object --bucket "$bucket" --key "$key" >/dev/null 2>&1; do
  echo "waiting for s3://$bucket/$key (the weights sync writes it last)"
  sleep "$POLL_SECONDS"
done
"""

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
#: Applied at launch and expected to be lifted once the NVIDIA device plugin
#: advertises `nvidia.com/gpu`: Karpenter does not count it against pods, so
#: it does not launch a second node while the first one is still initialising.
STARTUP_TAINT = {"key": "llmgen.io/gpu-initializing", "value": "true", "effect": "NoSchedule"}


#: The tag that marks a cluster's network for discovery (subnets and security
#: groups for Karpenter, the VPC for the AWS Load Balancer Controller).
DISCOVERY_TAG = "karpenter.sh/discovery"


def role_name(cluster: str, service_account: str) -> str:
    """The IAM role an IRSA ServiceAccount assumes (IAM allows 64 characters).

    Too long a name is shortened with a hash, never truncated into another's role.
    """
    return names.short_identity(f"{cluster}-{service_account}", 64)


@register
class AwsProvider(CloudProvider):
    name: ClassVar[str] = "aws"
    storage_scheme: ClassVar[str] = "s3"
    storage_usd_per_gib_month: ClassVar[float] = STORAGE_USD_PER_GIB_MONTH
    secret_store_backend: ClassVar[str] = "aws"
    cloud_addons: ClassVar[frozenset[str]] = frozenset(
        {"karpenter", "aws-load-balancer-controller", *ACK_ADDONS}
    )
    dns_routing_policies: ClassVar[bool] = True
    #: instance-store NVMe, per device, MiB/s read (the EC2NodeClass stripes them, RAID0)
    local_ssd_mibps: ClassVar[float] = 500.0
    #: NodeLocal DNSCache's link-local listen address, where clusters run it
    node_dns_ips: ClassVar[tuple[str, ...]] = ("169.254.20.10",)
    load_balancer_addon: ClassVar[str | None] = "aws-load-balancer-controller"

    def gpu_node_selector(self, cluster: Cluster, pool: NodePool, gpu: Gpu) -> dict[str, str]:
        # Karpenter labels every node with the NodePool that launched it.
        return {"karpenter.sh/nodepool": names.nodepool_name(pool.name)}

    def gpu_tolerations(self, pool: NodePool) -> list[dict[str, str]]:
        return [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]

    def gpu_node_labels(self, cluster: Cluster, pool: NodePool, gpu: Gpu) -> dict[str, str]:
        return {"llmgen.io/nodepool": pool.name, "llmgen.io/gpu": gpu.key}

    def gpu_taints(self, pool: NodePool) -> list[dict[str, str]]:
        return [dict(GPU_TAINT)]

    def nodepool_resources(self, cp: ClusterPlan) -> list[NodePoolResource]:
        out: list[NodePoolResource] = []
        cluster = cp.cluster
        for pool in cluster.node_pools:
            gpu = cp.gpus[pool.gpu]
            name = names.nodepool_name(pool.name)
            labels = {**cp.labels, "llmgen.io/nodepool": pool.name}
            offer = gpu.offers.get(self.name)
            requirements: list[dict[str, Any]] = [
                _req("node.kubernetes.io/instance-type", sorted(pool.instance_types)),
                # A spot pool may also launch on-demand: Karpenter prefers spot
                # when both are allowed and falls back on an insufficient-capacity
                # error (as the GKE ComputeClass does), so a spot shortage does not
                # take the models down.
                _req("karpenter.sh/capacity-type", _capacity_types(pool.capacity_type)),
                _req("kubernetes.io/arch", ["amd64"]),
                _req("kubernetes.io/os", ["linux"]),
            ]
            if pool.zones:
                requirements.append(_req("topology.kubernetes.io/zone", sorted(pool.zones)))
            if offer is not None and offer.label:
                requirements.append(_req("karpenter.k8s.aws/instance-gpu-name", [offer.label]))
            out.append(
                NodePoolResource(
                    "NodePool",
                    name,
                    "nodepools/aws/nodepool.yaml.j2",
                    {
                        "name": name,
                        "labels": labels,
                        "node_labels": self.gpu_node_labels(cluster, pool, gpu),
                        "node_class": name,
                        "requirements": requirements,
                        "taints": self.gpu_taints(pool),
                        "startup_taints": [dict(STARTUP_TAINT)],
                        # The plan's cap: GPUs the placed models need at their
                        # budget-capped maximum (<= maxNodes x gpusPerNode), so
                        # Karpenter cannot buy capacity the budget forbids.
                        "gpu_limit": cp.gpu_caps.get(
                            pool.name, pool.max_nodes * pool.gpus_per_node
                        ),
                        # Bound the time a drifted/expired node may spend draining
                        # behind PDBs before Karpenter forces it (a stuck drain
                        # would otherwise keep an old AMI forever).
                        "expire_after": "720h",
                        "termination_grace": "4h",
                        "consolidate_after": "10m" if pool.capacity_type == "spot" else "30m",
                    },
                    pool=pool.name,
                )
            )
            out.append(
                NodePoolResource(
                    "EC2NodeClass",
                    name,
                    "nodepools/aws/ec2nodeclass.yaml.j2",
                    {
                        "name": name,
                        "labels": labels,
                        "ami_alias": AMI_ALIAS,
                        "role": f"KarpenterNodeRole-{cluster.name}",
                        "discovery": {DISCOVERY_TAG: cluster.name},
                        "root_volume": ROOT_VOLUME,
                        "tags": {
                            "llmgen.io/cluster": cluster.name,
                            "llmgen.io/nodepool": pool.name,
                            "llmgen.io/environment": cp.env_name,
                        },
                    },
                    pool=pool.name,
                )
            )
        return out

    def workload_identity_annotations(
        self, cluster: Cluster, namespace: str, service_account: str
    ) -> dict[str, str]:
        account = cluster.cloud_settings.get("accountID", "")
        role = role_name(cluster.name, service_account)
        return {"eks.amazonaws.com/role-arn": f"arn:aws:iam::{account}:role/{role}"}

    def weights_sync(self, uri: str, dest: str, workers: int) -> WeightsSync:
        # The AWS CRT transfer client (multi-part, parallel, sized to the NIC)
        # instead of the classic client's 10 concurrent requests; the config
        # lives in the writable /tmp (the root filesystem is read-only) and the
        # URIs come from the environment, never pasted into the script.
        script = (
            "aws configure set default.s3.preferred_transfer_client crt\n"
            'aws configure set default.s3.target_bandwidth "$COPY_BANDWIDTH"\n'
            'exec aws s3 sync --only-show-errors --no-progress "$WEIGHTS_URI" "$WEIGHTS_DEST"\n'
        )
        return WeightsSync(
            image=AWS_CLI_IMAGE,
            command=("/bin/sh", "-ec", script),
            env={
                "HOME": "/tmp",
                "AWS_CONFIG_FILE": "/tmp/.aws/config",
                "AWS_RETRY_MODE": "adaptive",
                "AWS_MAX_ATTEMPTS": "10",
                "COPY_BANDWIDTH": f"{COPY_GBPS}Gb/s",
                "WEIGHTS_URI": uri,
                "WEIGHTS_DEST": dest,
            },
        )

    def mirror_upload(self, uri: str, kms_key: str) -> WeightsSync:
        return WeightsSync(
            image=AWS_CLI_IMAGE,
            command=("/bin/sh", "-ec", MIRROR_UPLOAD_SCRIPT),
            env={
                "MIRROR_URI": uri,
                "MIRROR_KMS_KEY": kms_key,
                "AWS_RETRY_MODE": "adaptive",
                "AWS_MAX_ATTEMPTS": "10",
            },
        )

    def mirror_wait(self, uri: str) -> WeightsSync:
        return WeightsSync(
            image=AWS_CLI_IMAGE,
            command=("/bin/sh", "-ec", MIRROR_WAIT_SCRIPT),
            env={"HOME": "/tmp", "MIRROR_URI": uri, "POLL_SECONDS": str(MIRROR_POLL_SECONDS)},
        )

    def mirror_writer_annotations(self, cluster: Cluster, identity: str) -> dict[str, str]:
        account = cluster.cloud_settings.get("accountID", "")
        return {"eks.amazonaws.com/role-arn": f"arn:aws:iam::{account}:role/{identity}"}

    def mirror_writer_policy(self, bucket: str, prefix: str, kms_key: str) -> dict[str, Any]:
        """IAM policy of one revision's sync role: its prefix only, the mirror key
        through S3 (aws_mirror.object_writer_policy)."""
        part = aws_mirror.partition(kms_key)
        return aws_mirror.object_writer_policy(
            aws_mirror.object_arn(bucket, prefix, part),
            kms_key,
            ("WriteThisRevision", "EncryptWithTheMirrorKey"),
        )

    def load_balancer_annotations(
        self, cluster: Cluster, *, internal: bool = False, idle_timeout_seconds: int | None = None
    ) -> dict[str, str]:
        # AWS Load Balancer Controller: an NLB straight to pod IPs (no extra
        # kube-proxy hop).
        out = {
            "service.beta.kubernetes.io/aws-load-balancer-type": "external",
            "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
            "service.beta.kubernetes.io/aws-load-balancer-scheme": (
                "internal" if internal else "internet-facing"
            ),
            "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled": (
                "true"
            ),
        }
        if not internal:
            # Client IPs for the WAF, access logs and policies: LBC v2.14 turns
            # client IP preservation off for `ip` targets unless this target
            # group attribute says otherwise (pkg/service/model_build_target_group.go
            # buildPreserveClientIPFlag), and then opens the targets' security
            # group to the load balancer's source ranges instead of its subnets.
            # Not on the internal east-west NLB: mTLS passthrough, peers' IPs unused.
            out["service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"] = (
                "preserve_client_ip.enabled=true"
            )
        if idle_timeout_seconds is not None:
            # An NLB TCP listener drops a flow after 350 s without packets unless
            # told otherwise (60-6000 s); LBC v2.14 sets listener attributes from
            # `...listener-attributes.<protocol>-<service port>`
            # (pkg/service/model_build_listener.go buildListenerAttributes).
            # Ports: HTTPS on the ingress gateway, mTLS passthrough on east-west;
            # an annotation naming a port the Service lacks is never read.
            seconds = min(max(idle_timeout_seconds, NLB_IDLE_MIN), NLB_IDLE_MAX)
            for port in IDLE_TIMEOUT_PORTS:
                out[f"{LISTENER_ATTRIBUTES}.TCP-{port}"] = f"tcp.idle_timeout.seconds={seconds}"
        return out

    def acme_dns01_solver(self, cluster: Cluster, domain: str) -> dict[str, Any]:
        # IRSA: no keys; cert-manager's ServiceAccount assumes its role (see
        # addon_values), and ClusterIssuers may use ambient credentials.
        return {"route53": {"region": cluster.region}}

    def external_dns_annotations(self, record: DnsRecord) -> dict[str, str]:
        """Route 53 routing-policy records: one per gateway, told apart by set identifier.

        Health: ExternalDNS writes alias records to the NLB with "evaluate
        target health", so Route 53 stops answering with a gateway whose NLB
        has no healthy targets (the gateway pods' readiness), no health-check
        ID needed; a GKE gateway's record (an IP) needs the catalog's Route 53
        health check (`spec.dns.healthChecks`). geo uses geoproximity by AWS
        region: every client gets the nearest gateway, where geolocation needs
        a default record and allows only one record per continent.
        """
        out = super().external_dns_annotations(record)
        if record.policy is None or record.set_identifier is None:
            return out
        prefix = "external-dns.alpha.kubernetes.io/"
        out[prefix + "set-identifier"] = record.set_identifier
        if record.policy == "latency" and record.region:
            out[prefix + "aws-region"] = record.region
        elif record.policy == "geo" and record.region:
            out[prefix + "aws-geoproximity-region"] = record.region
        elif record.policy == "weighted" and record.weight is not None:
            out[prefix + "aws-weight"] = str(record.weight)
        elif record.policy == "failover" and record.failover:
            out[prefix + "aws-failover"] = record.failover
        if record.health_check:
            # external-dns v0.19.0 provider/aws/aws.go: `aws/health-check-id`
            # becomes the record set's HealthCheckId (source/annotations
            # provider_specific.go maps `aws-<x>` annotations to `aws/<x>`).
            out[prefix + "aws-health-check-id"] = record.health_check
        return out

    def addon_values(self, addon: str, cp: ClusterPlan) -> dict[str, Any]:
        cluster = cp.cluster
        if addon == "karpenter":
            return {
                "settings": {"clusterName": cluster.name, "interruptionQueue": cluster.name},
                "serviceAccount": {
                    "annotations": self.workload_identity_annotations(
                        cluster, "karpenter", "karpenter"
                    )
                },
                # Karpenter must never run on the nodes it manages.
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {"key": "karpenter.sh/nodepool", "operator": "DoesNotExist"}
                                    ]
                                }
                            ]
                        }
                    }
                },
            }
        if addon == "aws-load-balancer-controller":
            return {
                "clusterName": cluster.name,
                "region": cluster.region,
                # Pods cannot reach IMDS (hop limit 1) to look the VPC up. v2.14
                # takes --aws-vpc-id, or looks the VPC up by the `Name` tag alone
                # (pkg/aws/cloud.go getVpcID: only vpcTags["Name"] is read).
                **vpc_values(cluster),
                "serviceAccount": {
                    "annotations": self.workload_identity_annotations(
                        cluster, "aws-load-balancer-controller", "aws-load-balancer-controller"
                    )
                },
                "serviceMonitor": {"enabled": True},
                # Pod Security `restricted` on top of the chart's defaults.
                "podSecurityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "securityContext": {"capabilities": {"drop": ["ALL"]}},
            }
        if addon in ACK_ADDONS:
            # The mirror bucket's region comes from each Bucket's region
            # annotation; this is the controller's default and its STS region.
            return {
                "aws": {"region": cluster.region},
                "serviceAccount": {
                    # the charts name their ServiceAccount like the add-on
                    "annotations": self.workload_identity_annotations(cluster, "ack-system", addon)
                },
                # A bucket or role made by hand before is taken over, not refused.
                "featureGates": {"ResourceAdoption": True},
            }
        if addon == "cert-manager":
            # Route 53 DNS-01 challenges through IRSA.
            return {
                "serviceAccount": {
                    "annotations": self.workload_identity_annotations(
                        cluster, "cert-manager", "cert-manager"
                    )
                }
            }
        if addon == "external-dns":
            return {
                "provider": {"name": "aws"},
                "serviceAccount": {
                    "annotations": self.workload_identity_annotations(
                        cluster, "external-dns", "external-dns"
                    )
                },
            }
        if addon == "gpu-operator":
            # The AL2023 NVIDIA AMI ships the driver and the container toolkit.
            return {
                "driver": {"enabled": False},
                "toolkit": {"enabled": False},
                "daemonsets": {"tolerations": _operator_tolerations()},
                # NFD's worker labels the node as NVIDIA PCI hardware; without
                # that label the operator deploys no device plugin there, the
                # node never advertises nvidia.com/gpu and its startup taint
                # is never lifted. The chart's list tolerates nvidia.com/gpu only.
                "node-feature-discovery": {"worker": {"tolerations": _operator_tolerations()}},
            }
        return {}


def _capacity_types(capacity_type: str) -> list[str]:
    return ["on-demand", "spot"] if capacity_type == "spot" else [capacity_type]


LISTENER_ATTRIBUTES = "service.beta.kubernetes.io/aws-load-balancer-listener-attributes"
#: The NLB TCP idle timeout's allowed range (AWS: "60-6000 seconds").
NLB_IDLE_MIN, NLB_IDLE_MAX = 60, 6000
IDLE_TIMEOUT_PORTS = (443, 15443)


def vpc_values(cluster: Cluster) -> dict[str, Any]:
    """The chart values telling the Load Balancer Controller its VPC (validate requires one)."""
    aws = cluster.cloud_settings
    if aws.get("vpcID"):
        return {"vpcId": aws["vpcID"]}
    if aws.get("vpcName"):
        return {"vpcTags": {"Name": aws["vpcName"]}}
    return {}


def _req(key: str, values: list[str]) -> dict[str, Any]:
    return {"key": key, "operator": "In", "values": values}


def _operator_tolerations() -> list[dict[str, str]]:
    """The operator's DaemonSets must start on nodes still under the startup taint."""
    return [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": STARTUP_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"},
    ]
