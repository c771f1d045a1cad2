"""The S3 mirror as ACK resources on the AWS sync cluster (layer `weights`).

- one `Bucket` (s3.services.k8s.aws, ACK s3-controller 1.4.0): SSE-KMS with
  the catalog's key and an S3 Bucket Key, versioning, Object Lock, Block
  Public Access, owner-enforced ownership, and the bucket policy of
  `clouds.aws_mirror.bucket_policy`. `adopt-or-create` (ACK runtime
  ResourceAdoption, on by default in the chart) takes over a bucket that
  exists; `deletion-policy: retain` keeps the bucket and its objects if the
  resource is ever deleted or pruned.
- one IAM `Role` (iam.services.k8s.aws, ACK iam-controller 1.8.1) per
  synced revision, named like the Job's ServiceAccount annotation
  (`wsync-<12 hex>`), trusted by that ServiceAccount only (IRSA), with the
  inline policy `AwsProvider.mirror_writer_policy` (write and read its own
  prefix, GenerateDataKey/Decrypt on the key through S3). An inline policy
  lives and dies with its role: a revision leaving the catalog takes both.
  Every sync role carries the permissions boundary
  `llmgen-weights-sync-boundary` (an IAM `Policy`, referenced by
  `permissionsBoundaryRef`, which ACK resolves to its ARN once it exists):
  the mirror's objects and key, nothing else.

What ACK s3-controller 1.4.0 does with these fields (its source at v1.4.0):
`objectLockEnabledForBucket` is only sent with CreateBucket
(pkg/resource/bucket/sdk.go newCreateRequestPayload); there is no field for
the default retention (`objectLockConfiguration` arrives in 1.8.0), so that
rule is a one-time step (docs/weights.md). The key is referenced, never
created: deleting a KMS key makes every object unreadable, which no pruned
resource may be able to cause.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from llmgen.clouds import aws_mirror
from llmgen.render.types import Output, file_name, weights_layer

if TYPE_CHECKING:
    from llmgen.catalog.model import WeightsMirror
    from llmgen.plan.build import ClusterPlan
    from llmgen.plan.mirror import MirrorItem

#: ACK annotations (aws-controllers-k8s/runtime apis/core/v1alpha1/annotations.go).
ADOPTION_POLICY = "services.k8s.aws/adoption-policy"
DELETION_POLICY = "services.k8s.aws/deletion-policy"
REGION = "services.k8s.aws/region"


def bucket_object_name(bucket: str) -> str:
    return bucket.replace("_", "-").replace(".", "-")


def outputs(
    cp: ClusterPlan,
    mirror: WeightsMirror,
    items: list[MirrorItem],
    namespace: str,
    labels: dict[str, str],
    identity: Callable[[MirrorItem], str],
    job_name: Callable[[MirrorItem], str],
) -> Iterator[Output]:
    region = aws_mirror.key_region(mirror.kms_key)
    name = bucket_object_name(mirror.bucket)
    account = cp.cluster.cloud_settings.get("accountID", "")
    policy = aws_mirror.bucket_policy(
        mirror.bucket,
        mirror.kms_key,
        account,
        (i.prefix for i in items),
        cp.mirror_reader_accounts,
    )
    yield Output(
        f"weights/{file_name('Bucket', name)}",
        "weights/aws/bucket.yaml.j2",
        {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                ADOPTION_POLICY: "adopt-or-create",
                DELETION_POLICY: "retain",
                REGION: region,
            },
            "bucket": mirror.bucket,
            "location_constraint": aws_mirror.location_constraint(region),
            "kms_key": mirror.kms_key,
            "policy": aws_mirror.compact(policy),
            "tags": aws_mirror.sorted_tags([("llmgen.io/component", "weights-mirror")]),
        },
    )
    yield Output(
        f"weights/{file_name('Policy', aws_mirror.SYNC_BOUNDARY)}",
        "weights/aws/policy.yaml.j2",
        {
            "name": aws_mirror.SYNC_BOUNDARY,
            "namespace": namespace,
            "labels": labels,
            "policy_name": aws_mirror.SYNC_BOUNDARY,
            "description": f"The most an llmgen weights sync role may do: {mirror.bucket}",
            "document": aws_mirror.compact(aws_mirror.sync_boundary(mirror.bucket, mirror.kms_key)),
        },
    )
    issuer = cp.cluster.cloud_settings.get("oidcIssuer", "")
    part = aws_mirror.partition(mirror.kms_key)
    for item in items:
        role = identity(item)
        sa = job_name(item)
        write = cp.provider.mirror_writer_policy(mirror.bucket, item.prefix, mirror.kms_key)
        trust = aws_mirror.irsa_trust_policy(account, issuer, namespace, sa, part)
        yield Output(
            f"{weights_layer(item.model.name)}/{file_name('Role', role)}",
            "weights/aws/role.yaml.j2",
            {
                "name": role,
                "namespace": namespace,
                "labels": {**labels, "llmgen.io/model": item.model.name},
                # A role made by hand under this name (the earlier setup) is taken over.
                "annotations": {ADOPTION_POLICY: "adopt-or-create"},
                "role_name": role,
                "description": f"llmgen weights sync of {item.uri}"[:1000],
                "trust_policy": aws_mirror.compact(trust),
                "inline_policies": {"write-this-revision": aws_mirror.compact(write)},
                "boundary": aws_mirror.SYNC_BOUNDARY,
                "tags": aws_mirror.sorted_tags(
                    [("llmgen.io/model", item.model.name), ("llmgen.io/component", "weights-sync")]
                ),
            },
        )
