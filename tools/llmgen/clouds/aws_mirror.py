"""The S3 weights mirror's IAM and bucket policies, as AWS evaluates them.

Pure functions of the catalog: the render concern (`render/concerns/
mirror_aws.py`) puts them into ACK resources, and the plan's checks measure
the bucket policy against S3's size limit. The prefixes and role names are
the ones the sync Job uses (`MirrorItem.prefix`, `weightsync.identity_id`),
so what a role may write is exactly where its Job writes.

Encryption is a bucket rule, not the uploader's habit: the bucket's default
encryption is SSE-KMS with the mirror key, and the policy refuses any
PutObject that *names* another algorithm, another key or a customer-provided
key (SSE-C). The refusals only fire when the header is present (`Null` =
false): UploadPart requests of a multipart upload carry no SSE headers, so a
rule that also refused absent headers would refuse every large upload; an
upload without headers gets the bucket default, which is the mirror key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

#: S3 refuses a bucket policy over 20 KB (Amazon S3 quotas: "Bucket policy size").
BUCKET_POLICY_MAX_BYTES = 20 * 1024
#: What protecting a revision in use denies to every principal but the sync
#: roles: writing and deleting any version of its objects. The sync roles get
#: no delete permission at all (their policy and boundary), and each writes
#: only its own prefix; under versioning an overwrite leaves the old version.
PROTECTED_ACTIONS = ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion")
#: Every sync role's name starts so (`weightsync.identity_id`: `wsync-<12 hex>`).
SYNC_ROLE_PREFIX = "wsync-"
#: The sync roles' permissions boundary (an IAM managed policy llmgen creates).
SYNC_BOUNDARY = "llmgen-weights-sync-boundary"
#: IRSA tokens are issued for this audience (EKS pod identity webhook default).
STS_AUDIENCE = "sts.amazonaws.com"


def key_region(kms_key: str) -> str:
    """`arn:aws:kms:us-east-1:…` -> `us-east-1`: an SSE-KMS key must be in the bucket's region."""
    return kms_key.split(":")[3]


def partition(kms_key: str) -> str:
    return kms_key.split(":")[1]


def location_constraint(region: str) -> str | None:
    """CreateBucket's LocationConstraint: none in us-east-1.

    S3 answers InvalidLocationConstraint to `us-east-1` as a constraint; every
    other region must be named, or the bucket is created in us-east-1.
    """
    return None if region == "us-east-1" else region


def role_arn(account: str, role: str, part: str = "aws") -> str:
    return f"arn:{part}:iam::{account}:role/{role}"


def object_arn(bucket: str, prefix: str, part: str = "aws") -> str:
    """Every object under `prefix` (which ends with '/'): `arn:aws:s3:::bucket/prefix*`."""
    return f"arn:{part}:s3:::{bucket}/{prefix}*"


def irsa_trust_policy(
    account: str, oidc_issuer: str, namespace: str, service_account: str, part: str = "aws"
) -> dict[str, Any]:
    """Trust of an IRSA role: only this ServiceAccount's tokens, for STS, from this cluster."""
    subject = f"system:serviceaccount:{namespace}:{service_account}"
    provider = f"arn:{part}:iam::{account}:oidc-provider/{oidc_issuer}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ThisServiceAccountOnly",
                "Effect": "Allow",
                "Principal": {"Federated": provider},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{oidc_issuer}:sub": subject,
                        f"{oidc_issuer}:aud": STS_AUDIENCE,
                    }
                },
            }
        ],
    }


def bucket_policy(
    bucket: str,
    kms_key: str,
    account: str,
    prefixes: Iterable[str],
    readers: Iterable[str] = (),
) -> dict[str, Any]:
    """The mirror bucket's policy; `prefixes` are the revisions in use (synced).

    Denies: any request without TLS; a PutObject naming another encryption
    algorithm, another KMS key, or a customer-provided key; writing or
    deleting any version under a prefix in use by anyone but a sync role
    (`wsync-*` of the sync cluster's account, whose own policies allow only
    writing their own prefix, so together: only a revision's own role writes
    it, nobody deletes it). Prefixes not in use (a revision filled by hand,
    one retired) stay under the account's own IAM. `readers`, the other
    accounts whose clusters run models from the mirror, may list and read it
    (a cross-account read needs the bucket policy's Allow as well as the
    reader's own; their model roles' policies and the key policy decide the
    rest). One statement lists the
    prefixes, so the policy grows by one ARN per revision: S3's 20 KB limit
    holds about 170 of them (`policy_bytes`; validate refuses more).
    """
    writer_pattern = f"arn:{partition(kms_key)}:iam::{account}:role/{SYNC_ROLE_PREFIX}*"
    in_use = sorted(set(prefixes))
    part = partition(kms_key)
    everything = [f"arn:{part}:s3:::{bucket}", f"arn:{part}:s3:::{bucket}/*"]
    objects = f"arn:{part}:s3:::{bucket}/*"
    sse = "s3:x-amz-server-side-encryption"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": everything,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "DenyOtherEncryption",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": objects,
            "Condition": {"StringNotEquals": {sse: "aws:kms"}, "Null": {sse: "false"}},
        },
        {
            "Sid": "DenyOtherKeys",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": objects,
            "Condition": {
                "StringNotEquals": {f"{sse}-aws-kms-key-id": kms_key},
                "Null": {f"{sse}-aws-kms-key-id": "false"},
            },
        },
        {
            "Sid": "DenyCustomerProvidedKeys",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": objects,
            "Condition": {"Null": {f"{sse}-customer-algorithm": "false"}},
        },
    ]
    other_accounts = sorted(set(readers) - {account})
    if other_accounts:
        statements.append(
            {
                "Sid": "ReadersInOtherAccounts",
                "Effect": "Allow",
                "Principal": {"AWS": [f"arn:{part}:iam::{a}:root" for a in other_accounts]},
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": everything,
            }
        )
    if in_use:
        statements.append(
            {
                "Sid": "KeepRevisionsInUse",
                "Effect": "Deny",
                "Principal": "*",
                "Action": list(PROTECTED_ACTIONS),
                "Resource": [object_arn(bucket, p, part) for p in in_use],
                "Condition": {"ArnNotLike": {"aws:PrincipalArn": writer_pattern}},
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def sync_boundary(bucket: str, kms_key: str) -> dict[str, Any]:
    """The permissions boundary of every sync role: the most any of them may ever do.

    Write and read objects of the mirror bucket, use the mirror key through
    S3. A role's effective permissions are its policy's intersected with
    this, so a role created (by anyone who can write ACK `Role` objects) with
    a broader policy still cannot leave the mirror, when the ACK iam
    controller's own IAM policy requires this boundary on the roles it makes
    (docs/weights.md).
    """
    return object_writer_policy(
        object_arn(bucket, "", partition(kms_key)), kms_key, ("MirrorObjects", "MirrorKeyThroughS3")
    )


def object_writer_policy(objects: str, kms_key: str, sids: tuple[str, str]) -> dict[str, Any]:
    """Write and read `objects` (an object ARN pattern), encrypting with `kms_key`.

    PutObject and GetObject (HeadObject needs it); no ListBucket, DeleteObject
    or version permissions. SSE-KMS uploads need kms:GenerateDataKey, and
    multipart uploads kms:Decrypt, on the key, only through S3
    (kms:ViaService). A revision's sync role (its prefix) and the boundary of
    every sync role (the whole bucket) are this policy.
    """
    via_s3 = f"s3.{key_region(kms_key)}.amazonaws.com"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": sids[0],
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:GetObject"],
                "Resource": objects,
            },
            {
                "Sid": sids[1],
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": kms_key,
                "Condition": {"StringEquals": {"kms:ViaService": via_s3}},
            },
        ],
    }


def compact(document: Mapping[str, Any]) -> str:
    """A policy document as IAM and S3 store it: JSON without insignificant whitespace."""
    return json.dumps(document, separators=(",", ":"))


def policy_bytes(document: Mapping[str, Any]) -> int:
    return len(compact(document).encode())


def sorted_tags(tags: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in sorted(tags)]
