"""The Cloud Storage mirror as Config Connector resources on the GCP sync cluster.

In namespace `llmgen-weights` (annotated with the sync cluster's project;
a ConfigConnectorContext names the Google service account Config Connector
acts as there, `llmgen-weights`, a README prerequisite):

- one `StorageBucket`: the catalog's key as default CMEK key, a retention
  policy of `retentionDays` (no object may be deleted or replaced younger
  than that), uniform bucket-level access (IAM conditions on a bucket need
  it), public access prevention. Object Versioning stays off: Cloud Storage
  refuses versioning on a bucket with a retention policy ("Object Versioning
  cannot be enabled on a bucket with a retention policy"). The policy is
  not locked: locking is irreversible, a decision for a person, not a render.
  `deletion-policy: abandon` keeps the bucket if the resource goes; Config
  Connector acquires a bucket that already exists under `resourceID`.
- the Cloud Storage service agent's `cryptoKeyEncrypterDecrypter` grant on
  the key (an `IAMPolicyMember` on the KMSCryptoKey by its resource name),
  when the catalog gives the project number the agent's address needs; with
  CMEK it is the agent that encrypts and decrypts, so no reader or writer
  needs a KMS grant. The key itself is referenced, never created.
- per synced revision: an `IAMServiceAccount` `wsync-<12 hex>` (the Job's
  ServiceAccount annotation names it), its Workload Identity binding for the
  Job's ServiceAccount only, and `roles/storage.objectCreator` and
  `roles/storage.objectViewer` on the bucket, each conditioned on
  `resource.name.startsWith("projects/_/buckets/<bucket>/objects/<prefix>")`
  (`GcpProvider.mirror_writer_policy`), the prefix the Job writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from llmgen.clouds.gcp import gsa_email
from llmgen.render.types import Output, file_name, weights_layer

if TYPE_CHECKING:
    from llmgen.catalog.model import WeightsMirror
    from llmgen.plan.build import ClusterPlan
    from llmgen.plan.mirror import MirrorItem

DELETION_POLICY = "cnrm.cloud.google.com/deletion-policy"
PROJECT = "cnrm.cloud.google.com/project-id"
CONFIG_CONNECTOR_CONTEXT = "configconnectorcontext.core.cnrm.cloud.google.com"
#: The Google service account Config Connector acts as in the weights namespace.
CNRM_SERVICE_ACCOUNT = "llmgen-weights"
KEY_ROLE = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"
SECONDS_PER_DAY = 86400


def key_location(kms_key: str) -> str:
    """`projects/p/locations/us/keyRings/…` -> `US`: a CMEK key must be in the bucket's location."""
    return kms_key.split("/")[3].upper()


def storage_service_agent(project_number: str) -> str:
    return f"serviceAccount:service-{project_number}@gs-project-accounts.iam.gserviceaccount.com"


def bucket_object_name(bucket: str) -> str:
    return bucket.replace("_", "-").replace(".", "-")


def namespace_annotations(cp: ClusterPlan) -> dict[str, str]:
    """Config Connector creates the namespace's resources in this project."""
    return {PROJECT: cp.cluster.cloud_settings.get("projectID", "")}


def outputs(
    cp: ClusterPlan,
    mirror: WeightsMirror,
    items: list[MirrorItem],
    namespace: str,
    labels: dict[str, str],
    identity: Callable[[MirrorItem], str],
    job_name: Callable[[MirrorItem], str],
) -> Iterator[Output]:
    project = cp.cluster.cloud_settings.get("projectID", "")
    bucket = bucket_object_name(mirror.bucket)
    yield Output(
        f"weights/{file_name('ConfigConnectorContext', namespace)}",
        "weights/gcp/configconnectorcontext.yaml.j2",
        {
            "name": CONFIG_CONNECTOR_CONTEXT,
            "namespace": namespace,
            "labels": labels,
            "service_account": gsa_email(cp.cluster, CNRM_SERVICE_ACCOUNT),
        },
    )
    yield Output(
        f"weights/{file_name('StorageBucket', bucket)}",
        "weights/gcp/storagebucket.yaml.j2",
        {
            "name": bucket,
            "namespace": namespace,
            "labels": labels,
            "annotations": {DELETION_POLICY: "abandon"},
            "bucket": mirror.bucket,
            "location": key_location(mirror.kms_key),
            "kms_key": mirror.kms_key,
            "retention_seconds": mirror.retention_days * SECONDS_PER_DAY,
        },
    )
    if mirror.project_number:
        yield _member(
            "storage-agent-uses-key",
            namespace,
            labels,
            {"kind": "KMSCryptoKey", "external": mirror.kms_key},
            KEY_ROLE,
            member=storage_service_agent(mirror.project_number),
        )
    for item in items:
        gsa, sa = identity(item), job_name(item)
        folder = weights_layer(item.model.name)
        yield Output(
            f"{folder}/{file_name('IAMServiceAccount', gsa)}",
            "weights/gcp/iamserviceaccount.yaml.j2",
            {
                "name": gsa,
                "namespace": namespace,
                "labels": {**labels, "llmgen.io/model": item.model.name},
                "display_name": f"llmgen weights sync {sa}"[:100],
                "description": f"Writes {item.uri} once (llmgen weights sync)"[:256],
            },
        )
        yield _member(
            f"{gsa}-workload-identity",
            namespace,
            {**labels, "llmgen.io/model": item.model.name},
            {"kind": "IAMServiceAccount", "name": gsa},
            WORKLOAD_IDENTITY_USER,
            member=f"serviceAccount:{project}.svc.id.goog[{namespace}/{sa}]",
            folder=folder,
        )
        policy = cp.provider.mirror_writer_policy(mirror.bucket, item.prefix, mirror.kms_key)
        for binding in policy["bindings"]:
            role = str(binding["role"])
            yield _member(
                f"{gsa}-{role.rpartition('.')[2].lower()}",
                namespace,
                {**labels, "llmgen.io/model": item.model.name},
                {"kind": "StorageBucket", "name": bucket},
                role,
                service_account=gsa,
                condition=binding.get("condition"),
                folder=folder,
            )


def _member(
    name: str,
    namespace: str,
    labels: dict[str, str],
    resource_ref: dict[str, str],
    role: str,
    *,
    member: str = "",
    service_account: str = "",
    condition: Any = None,
    folder: str = "weights",
) -> Output:
    return Output(
        f"{folder}/{file_name('IAMPolicyMember', name)}",
        "weights/gcp/iampolicymember.yaml.j2",
        {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "resource_ref": {"apiVersion": _api(resource_ref["kind"]), **resource_ref}
            if "name" in resource_ref
            else resource_ref,
            "role": role,
            "member": member,
            # a flag, not the strings' truthiness: the template's shape is fixed here
            "member_from": not member,
            "member_service_account": service_account,
            "condition": condition,
        },
    )


def _api(kind: str) -> str:
    return {
        "IAMServiceAccount": "iam.cnrm.cloud.google.com/v1beta1",
        "StorageBucket": "storage.cnrm.cloud.google.com/v1beta1",
    }[kind]
