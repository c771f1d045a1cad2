"""The weights mirrors as cloud resources: buckets, key grants, per-revision identities.

What the controllers do with the rendered fields, at the pinned versions:

- ACK s3-controller v1.4.0 (aws-controllers-k8s/s3-controller): the Bucket
  CRD of this release is the one ../shared/crd-schemas holds (same spec
  fields; `objectLockConfiguration` arrives in v1.8.0);
  `objectLockEnabledForBucket` is only sent with CreateBucket
  (pkg/resource/bucket/sdk.go); the policy is compared as a string with what
  GetBucketPolicy returns (pkg/resource/bucket/delta.go `Spec.Policy`), so it
  is rendered compact, the form S3 stores.
- ACK iam-controller v1.8.1: `inlinePolicies` are put with PutRolePolicy
  (pkg/resource/role/hooks.go syncInlinePolicies), the trust policy is
  compared semantically (IAMPolicyDocumentEqual).
- Cloud Storage: a bucket with a retention policy cannot have Object
  Versioning; IAM conditions on a bucket need uniform bucket-level access;
  `resource.name` of an object is `projects/_/buckets/<bucket>/objects/<name>`.
  The conditions run through a real CEL runtime (cel-expr-python).

AWS policy documents are decided by tests/iampolicy.py (the IAM User Guide's
evaluation rules), with the prefixes the sync Jobs really write to.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from cel_expr_python import cel

from iampolicy import Request, decide
from llmgen.catalog.names import WEIGHTS_NAMESPACE
from llmgen.clouds import aws_mirror
from llmgen.plan.build import Plan
from llmgen.plan.check import validate_with_plan
from llmgen.verify.schemas import SchemaStore, schema_errors
from rendered import render_repo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "bench"))
import gencatalog  # noqa: E402

AWS, GCP = "prod-aws-use1", "prod-gcp-usc1"
Docs = dict[str, list[dict[str, Any]]]
#: Files a revision holds: nested paths too, and the manifest written last.
FILES = (
    "config.json",
    "model-00001-of-00004.safetensors",
    "tokenizer/vocab.json",
    "llmgen-manifest.sha256",
)
STORE_KINDS = (
    ("s3.services.k8s.aws/v1alpha1", "Bucket"),
    ("iam.services.k8s.aws/v1alpha1", "Role"),
    ("iam.services.k8s.aws/v1alpha1", "Policy"),
    ("storage.cnrm.cloud.google.com/v1beta1", "StorageBucket"),
    ("iam.cnrm.cloud.google.com/v1beta1", "IAMServiceAccount"),
    ("iam.cnrm.cloud.google.com/v1beta1", "IAMPolicyMember"),
)


@pytest.fixture(scope="module")
def shipped() -> tuple[Plan, Docs]:
    return render_repo(REPO)


def kind_of(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["apiVersion"], doc["kind"]


def of(docs: Docs, cluster: str, kind: str) -> list[dict[str, Any]]:
    """The weights namespace's documents of `kind` (ACK's Role, not RBAC's)."""
    return [
        d
        for d in docs[cluster]
        if d["kind"] == kind
        and d["metadata"].get("namespace") == WEIGHTS_NAMESPACE
        and not d["apiVersion"].startswith("rbac.")
    ]


def upload_uri(job: dict[str, Any]) -> tuple[str, str]:
    """(bucket, prefix) the Job's upload step writes, read as its script reads MIRROR_URI."""
    upload = next(c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == "upload")
    uri = next(e["value"] for e in upload["env"] if e["name"] == "MIRROR_URI")
    rest = uri.partition("://")[2]
    bucket, _, prefix = rest.partition("/")
    assert prefix.endswith("/")
    return bucket, prefix


def service_account(docs: Docs, cluster: str, job: dict[str, Any]) -> dict[str, Any]:
    name = job["spec"]["template"]["spec"]["serviceAccountName"]
    return next(s for s in of(docs, cluster, "ServiceAccount") if s["metadata"]["name"] == name)


def test_store_resources_pass_the_strict_schemas(
    shipped: tuple[Plan, Docs], crd_schemas: Path
) -> None:
    _plan, docs = shipped
    store = SchemaStore(crd_schemas)
    seen: set[str] = set()
    for cluster in (AWS, GCP):
        for doc in docs[cluster]:
            if kind_of(doc) not in STORE_KINDS and doc["kind"] != "ConfigConnectorContext":
                continue
            validator = store.validator(doc["apiVersion"], doc["kind"])
            assert validator is not None, doc["kind"]
            assert schema_errors(validator, doc) == [], doc["metadata"]["name"]
            seen.add(kind_of(doc))
    assert set(STORE_KINDS) <= seen
    # nowhere else: only the sync clusters own the mirrors
    others = [c for c in docs if c not in (AWS, GCP)]
    assert not [d for c in others for d in docs[c] if kind_of(d) in STORE_KINDS]


# ------------------------------------------------------------------ AWS


def test_each_sync_job_assumes_a_role_only_its_service_account_can(
    shipped: tuple[Plan, Docs],
) -> None:
    plan, docs = shipped
    settings = plan.clusters[AWS].cluster.cloud_settings
    issuer, account = settings["oidcIssuer"], settings["accountID"]
    roles = {r["spec"]["name"]: r for r in of(docs, AWS, "Role")}
    jobs = of(docs, AWS, "Job")
    assert jobs and len(roles) == len(jobs)
    for job in jobs:
        sa = service_account(docs, AWS, job)
        arn = sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        assert arn.startswith(f"arn:aws:iam::{account}:role/")
        role = roles[arn.rpartition("/")[2]]
        trust = json.loads(role["spec"]["assumeRolePolicyDocument"])
        (statement,) = trust["Statement"]
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Principal"] == {
            "Federated": f"arn:aws:iam::{account}:oidc-provider/{issuer}"
        }
        # StringEquals, not StringLike: exactly this ServiceAccount, for STS.
        subject = f"system:serviceaccount:{WEIGHTS_NAMESPACE}:{sa['metadata']['name']}"
        assert statement["Condition"] == {
            "StringEquals": {
                f"{issuer}:sub": subject,
                f"{issuer}:aud": "sts.amazonaws.com",
            }
        }


def test_each_role_writes_exactly_the_prefix_its_job_uploads_to(
    shipped: tuple[Plan, Docs],
) -> None:
    plan, docs = shipped
    key = plan.clusters[AWS].platform.weights_mirrors["aws"].kms_key
    roles = {r["spec"]["name"]: r for r in of(docs, AWS, "Role")}
    jobs = of(docs, AWS, "Job")
    prefixes = {upload_uri(j)[1] for j in jobs}
    for job in jobs:
        bucket, prefix = upload_uri(job)
        arn = service_account(docs, AWS, job)["metadata"]["annotations"][
            "eks.amazonaws.com/role-arn"
        ]
        (text,) = roles[arn.rpartition("/")[2]]["spec"]["inlinePolicies"].values()
        policy = json.loads(text)
        for f in FILES:
            obj = f"arn:aws:s3:::{bucket}/{prefix}{f}"
            assert decide(policy, Request("s3:PutObject", obj)) == "allow", obj
            assert decide(policy, Request("s3:GetObject", obj)) == "allow", obj  # HeadObject
            assert decide(policy, Request("s3:DeleteObject", obj)) == "none"
        for other in prefixes - {prefix}:
            obj = f"arn:aws:s3:::{bucket}/{other}config.json"
            assert decide(policy, Request("s3:PutObject", obj)) == "none", other
        sibling = f"arn:aws:s3:::{bucket}/{prefix.rstrip('/')}-other/config.json"
        assert decide(policy, Request("s3:PutObject", sibling)) == "none"
        assert decide(policy, Request("s3:ListBucket", f"arn:aws:s3:::{bucket}")) == "none"
        via_s3 = {"kms:ViaService": f"s3.{aws_mirror.key_region(key)}.amazonaws.com"}
        assert decide(policy, Request("kms:GenerateDataKey", key, context=via_s3)) == "allow"
        assert decide(policy, Request("kms:GenerateDataKey", key)) == "none"


def test_every_sync_role_is_bounded_to_the_mirror(shipped: tuple[Plan, Docs]) -> None:
    """Effective permissions are the role policy's intersected with the boundary's."""
    plan, docs = shipped
    mirror = plan.clusters[AWS].platform.weights_mirrors["aws"]
    (boundary_doc,) = of(docs, AWS, "Policy")
    boundary = json.loads(boundary_doc["spec"]["policyDocument"])
    via_s3 = {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    for role in of(docs, AWS, "Role"):
        # ACK resolves the reference to the Policy's ARN (iam-controller generator.yaml
        # Role.PermissionsBoundary references Policy Status.ACKResourceMetadata.ARN).
        assert role["spec"]["permissionsBoundaryRef"] == {
            "from": {"name": boundary_doc["metadata"]["name"]}
        }
        assert boundary_doc["metadata"]["namespace"] == role["metadata"]["namespace"]
        (inline,) = role["spec"]["inlinePolicies"].values()
        own = json.loads(inline)
        prefix = own["Statement"][0]["Resource"]
        for f in FILES:
            req = Request("s3:PutObject", prefix.replace("*", f))
            assert decide(own, req) == decide(boundary, req) == "allow"
        req = Request("kms:GenerateDataKey", mirror.kms_key, context=via_s3)
        assert decide(own, req) == decide(boundary, req) == "allow"
    outside = [
        Request("s3:DeleteObject", f"arn:aws:s3:::{mirror.bucket}/x"),
        Request("s3:ListBucket", f"arn:aws:s3:::{mirror.bucket}"),
        Request("s3:PutBucketPolicy", f"arn:aws:s3:::{mirror.bucket}"),
        Request("s3:PutObject", "arn:aws:s3:::another-bucket/x"),
        Request("iam:CreateRole", "arn:aws:iam::111122223333:role/x"),
        Request("kms:GenerateDataKey", mirror.kms_key),  # not through S3
    ]
    assert [decide(boundary, r) for r in outside] == ["none"] * len(outside)


def test_bucket_policy_enforces_the_key_and_keeps_revisions_in_use(
    shipped: tuple[Plan, Docs],
) -> None:
    plan, docs = shipped
    mirror = plan.clusters[AWS].platform.weights_mirrors["aws"]
    (bucket_doc,) = of(docs, AWS, "Bucket")
    text = bucket_doc["spec"]["policy"]
    # ACK s3-controller 1.4.0 compares this string with GetBucketPolicy's.
    assert text == aws_mirror.compact(json.loads(text))
    assert len(text.encode()) <= aws_mirror.BUCKET_POLICY_MAX_BYTES
    policy = json.loads(text)
    roles = {r["spec"]["name"]: r for r in of(docs, AWS, "Role")}
    writers: dict[str, tuple[str, dict[str, Any]]] = {}  # prefix -> (role ARN, IAM policy)
    for job in of(docs, AWS, "Job"):
        _bucket, prefix = upload_uri(job)
        arn = service_account(docs, AWS, job)["metadata"]["annotations"][
            "eks.amazonaws.com/role-arn"
        ]
        (inline,) = roles[arn.rpartition("/")[2]]["spec"]["inlinePolicies"].values()
        writers[prefix] = (arn, json.loads(inline))
    sse = "s3:x-amz-server-side-encryption"
    good = {"aws:SecureTransport": "true", sse: "aws:kms", f"{sse}-aws-kms-key-id": mirror.kms_key}
    tls = {"aws:SecureTransport": "true"}
    for prefix, (role, _own) in writers.items():
        obj = f"arn:aws:s3:::{mirror.bucket}/{prefix}model-00001-of-00004.safetensors"

        def put(context: dict[str, str], principal: str = role, obj: str = obj) -> str:
            return decide(policy, Request("s3:PutObject", obj, principal, context))

        assert put(good) != "deny"
        # UploadPart carries no SSE headers; the bucket default (the mirror key) applies.
        assert put(tls) != "deny"
        assert (
            put({**good, f"{sse}-aws-kms-key-id": mirror.kms_key.replace("6c1f", "0000")}) == "deny"
        )
        assert put({**tls, sse: "AES256"}) == "deny"
        assert put({**tls, f"{sse}-customer-algorithm": "AES256"}) == "deny"
        assert put({**good, "aws:SecureTransport": "false"}) == "deny"
        # Same account: a request needs an Allow in the bucket policy or the
        # principal's and no Deny in either. Only the revision's own sync role
        # writes it; nobody deletes any version of it, not even that role.
        admin = "arn:aws:iam::111122223333:role/admin"
        for action in aws_mirror.PROTECTED_ACTIONS:
            assert decide(policy, Request(action, obj, admin, good)) == "deny", action
        for other, (other_role, other_policy) in writers.items():
            for action in aws_mirror.PROTECTED_ACTIONS:
                req = Request(action, obj, other_role, good)
                says = (decide(policy, req), decide(other_policy, req))
                allowed = "deny" not in says and "allow" in says
                assert allowed == (other == prefix and action == "s3:PutObject"), (other, action)
    # a prefix no environment uses is the account's own business (filled by hand, retired)
    retired = f"arn:aws:s3:::{mirror.bucket}/org/retired-model/{'0' * 40}/config.json"
    for action in aws_mirror.PROTECTED_ACTIONS:
        assert decide(policy, Request(action, retired, context=good)) == "none"


def test_bucket_is_kms_encrypted_versioned_locked_and_private(
    shipped: tuple[Plan, Docs],
) -> None:
    plan, docs = shipped
    mirror = plan.clusters[AWS].platform.weights_mirrors["aws"]
    (bucket,) = of(docs, AWS, "Bucket")
    spec, annotations = bucket["spec"], bucket["metadata"]["annotations"]
    assert spec["name"] == mirror.bucket
    (rule,) = spec["encryption"]["rules"]
    assert rule == {
        "applyServerSideEncryptionByDefault": {
            "sseAlgorithm": "aws:kms",
            "kmsMasterKeyID": mirror.kms_key,
        },
        "bucketKeyEnabled": True,
    }
    assert spec["versioning"] == {"status": "Enabled"}
    # Only CreateBucket takes it (s3-controller v1.4.0): it must be there from the first apply.
    assert spec["objectLockEnabledForBucket"] is True
    assert set(spec["publicAccessBlock"].values()) == {True}
    assert annotations["services.k8s.aws/adoption-policy"] == "adopt-or-create"
    assert annotations["services.k8s.aws/deletion-policy"] == "retain"
    # An SSE-KMS key must be in the bucket's region: the bucket takes the key's.
    assert annotations["services.k8s.aws/region"] == "us-east-1"
    assert "createBucketConfiguration" not in spec  # us-east-1 takes no constraint


def test_location_constraint_follows_s3() -> None:
    """S3 refuses `us-east-1` as a LocationConstraint and needs every other region named."""
    assert aws_mirror.location_constraint("us-east-1") is None
    assert aws_mirror.location_constraint("eu-west-1") == "eu-west-1"


def test_ack_controllers_run_only_on_the_aws_sync_cluster(shipped: tuple[Plan, Docs]) -> None:
    plan, docs = shipped
    ack = {
        (c, d["metadata"]["name"])
        for c, ds in docs.items()
        for d in ds
        if d["kind"] == "HelmRelease" and d["metadata"]["name"].startswith("ack-")
    }
    assert ack == {(AWS, "ack-s3-controller"), (AWS, "ack-iam-controller")}
    account = plan.clusters[AWS].cluster.cloud_settings["accountID"]
    for doc in docs[AWS]:
        if doc["kind"] == "HelmRelease" and doc["metadata"]["name"].startswith("ack-"):
            values = doc["spec"]["values"]
            name = doc["metadata"]["name"]
            assert values["serviceAccount"]["annotations"] == {
                "eks.amazonaws.com/role-arn": f"arn:aws:iam::{account}:role/{AWS}-{name}"
            }
            assert values["aws"]["region"] == "us-east-1"
    # the weights layer applies after the controllers layer shows the ACK CRDs
    ks = {d["metadata"]["name"]: d for d in docs[AWS] if d["kind"] == "Kustomization"}
    assert {"name": "infrastructure-controllers"} in ks["weights"]["spec"]["dependsOn"]
    crds = {h["name"] for h in ks["infrastructure-controllers"]["spec"].get("healthChecks", [])}
    assert {"buckets.s3.services.k8s.aws", "roles.iam.services.k8s.aws"} <= crds


# ------------------------------------------------------------------ GCP


def test_gcs_bucket_cmek_retention_and_no_versioning(shipped: tuple[Plan, Docs]) -> None:
    plan, docs = shipped
    mirror = plan.clusters[GCP].platform.weights_mirrors["gcp"]
    (bucket,) = of(docs, GCP, "StorageBucket")
    spec = bucket["spec"]
    assert spec["resourceID"] == mirror.bucket
    assert spec["encryption"] == {"kmsKeyRef": {"external": mirror.kms_key}}
    # CMEK: the key ring's location is the bucket's (us -> US multi-region).
    assert spec["location"] == mirror.kms_key.split("/")[3].upper()
    assert spec["retentionPolicy"] == {
        "retentionPeriod": mirror.retention_days * 86400,
        "isLocked": False,
    }
    # Cloud Storage refuses Object Versioning on a bucket with a retention policy.
    assert spec["versioning"] == {"enabled": False}
    assert spec["uniformBucketLevelAccess"] is True  # conditional bucket IAM needs it
    assert spec["publicAccessPrevention"] == "enforced"
    assert bucket["metadata"]["annotations"] == {"cnrm.cloud.google.com/deletion-policy": "abandon"}
    (ns,) = [
        d
        for d in docs[GCP]
        if d["kind"] == "Namespace" and d["metadata"]["name"] == WEIGHTS_NAMESPACE
    ]
    project = plan.clusters[GCP].cluster.cloud_settings["projectID"]
    assert ns["metadata"]["annotations"] == {"cnrm.cloud.google.com/project-id": project}
    # namespaced Config Connector ignores a namespace without its context
    (ctx,) = of(docs, GCP, "ConfigConnectorContext")
    assert ctx["metadata"]["name"] == "configconnectorcontext.core.cnrm.cloud.google.com"
    assert (
        ctx["spec"]["googleServiceAccount"] == f"llmgen-weights@{project}.iam.gserviceaccount.com"
    )


def test_storage_service_agent_gets_the_key(shipped: tuple[Plan, Docs]) -> None:
    plan, docs = shipped
    mirror = plan.clusters[GCP].platform.weights_mirrors["gcp"]
    grants = [
        m
        for m in of(docs, GCP, "IAMPolicyMember")
        if m["spec"]["resourceRef"]["kind"] == "KMSCryptoKey"
    ]
    assert [g["spec"] for g in grants] == [
        {
            "resourceRef": {"kind": "KMSCryptoKey", "external": mirror.kms_key},
            "role": "roles/cloudkms.cryptoKeyEncrypterDecrypter",
            "member": f"serviceAccount:service-{mirror.project_number}"
            "@gs-project-accounts.iam.gserviceaccount.com",
        }
    ]


def test_each_gcp_writer_reaches_exactly_the_prefix_its_job_uploads_to(
    shipped: tuple[Plan, Docs],
) -> None:
    plan, docs = shipped
    project = plan.clusters[GCP].cluster.cloud_settings["projectID"]
    (bucket_doc,) = of(docs, GCP, "StorageBucket")
    members = of(docs, GCP, "IAMPolicyMember")
    accounts = {a["metadata"]["name"] for a in of(docs, GCP, "IAMServiceAccount")}
    env = cel.NewEnv(variables={"resource": cel.Type.DYN})
    jobs = of(docs, GCP, "Job")
    prefixes = {upload_uri(j)[1] for j in jobs}
    for job in jobs:
        bucket, prefix = upload_uri(job)
        sa = service_account(docs, GCP, job)
        email = sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        gsa = email.partition("@")[0]
        assert email.endswith(f"@{project}.iam.gserviceaccount.com") and gsa in accounts
        mine = [m for m in members if m["metadata"]["name"].startswith(gsa + "-")]
        (wi,) = [m for m in mine if m["spec"]["role"] == "roles/iam.workloadIdentityUser"]
        assert wi["spec"]["resourceRef"]["name"] == gsa
        assert wi["spec"]["member"] == (
            f"serviceAccount:{project}.svc.id.goog[{WEIGHTS_NAMESPACE}/{sa['metadata']['name']}]"
        )
        on_bucket = [m["spec"] for m in mine if m["spec"]["resourceRef"]["kind"] == "StorageBucket"]
        assert sorted(s["role"] for s in on_bucket) == [
            "roles/storage.objectCreator",
            "roles/storage.objectViewer",
        ]
        for spec in on_bucket:
            assert spec["resourceRef"]["name"] == bucket_doc["metadata"]["name"]
            assert spec["memberFrom"] == {"serviceAccountRef": {"name": gsa}}
            program = env.compile(spec["condition"]["expression"])

            def allowed(name: str, program: Any = program) -> bool:
                return bool(program.eval(data={"resource": {"name": name}}).value())

            objects = f"projects/_/buckets/{bucket}/objects/"
            for f in FILES:
                assert allowed(objects + prefix + f), f
            for other in prefixes - {prefix}:
                assert not allowed(objects + other + "config.json")
            assert not allowed(f"{objects}{prefix.rstrip('/')}-other/config.json")
            assert not allowed(f"projects/_/buckets/{bucket}")  # no listing


def test_too_many_revisions_for_one_bucket_policy_is_refused_at_the_mirror(
    tmp_path: Path,
) -> None:
    """S3 refuses a bucket policy over 20 KB; validate says so before ACK would fail."""
    root = tmp_path / "big"
    gencatalog.generate(root, models=260, clusters=2, environments=1)
    result, _plan = validate_with_plan(root)
    errors = [str(d) for d in result.diagnostics if d.is_error]
    assert len(errors) == 1, errors
    assert errors[0].startswith("catalog/platform.yaml:104:7: spec.weightsMirror.aws: ")
    assert "the bucket policy protecting the 260 revisions in use would be" in errors[0]
    assert "over S3's 20,480" in errors[0]
    gencatalog.generate(root, models=200, clusters=2, environments=1)
    result, _plan = validate_with_plan(root)
    assert not [d for d in result.diagnostics if d.is_error]


def _cond(type_: str, status: str, reason: str | None = None) -> dict[str, str]:
    return {"type": type_, "status": status, **({"reason": reason} if reason else {})}


# (status.conditions as the controller writes them, expected (current, failed))
ACK_STATES = [
    ([], (False, False)),  # not reconciled yet: in progress
    ([_cond("ACK.ResourceSynced", "True"), _cond("Ready", "True")], (True, False)),
    # a recoverable error (a permission being fixed): in progress, not failed
    (
        [_cond("ACK.Recoverable", "True"), _cond("Ready", "False", "ACK.Recoverable")],
        (False, False),
    ),
    ([_cond("ACK.Terminal", "True"), _cond("Ready", "False", "ACK.Terminal")], (False, True)),
]
CNRM_STATES = [
    ([], (False, False)),
    ([_cond("Ready", "True", "UpToDate")], (True, False)),
    ([_cond("Ready", "False", "DependencyNotFound")], (False, False)),
    ([_cond("Ready", "False", "UpdateFailed")], (False, True)),
]


def test_the_weights_layer_reads_the_controllers_ready_conditions(
    shipped: tuple[Plan, Docs],
) -> None:
    """kstatus ignores Ready on custom kinds; Flux's healthCheckExprs say what it means.

    Evaluated with a real CEL runtime over the conditions ACK (runtime v0.58.1
    pkg/runtime/reconciler.go: Ready from ACK.ResourceSynced, False with the
    terminal or recoverable reason) and Config Connector write.
    """
    _plan, docs = shipped
    env = cel.NewEnv(variables={"status": cel.Type.DYN})
    for cluster, group, states in (
        (AWS, "services.k8s.aws", ACK_STATES),
        (GCP, "cnrm", CNRM_STATES),
    ):
        # `weights` (the bucket, the boundary) is what each model's
        # `weights-<model>` (its revisions' identities and Jobs) depends on:
        # it health-checks the shared objects, the model folders wait for theirs.
        (shared,) = [
            d
            for d in docs[cluster]
            if d["kind"] == "Kustomization" and d["metadata"]["name"] == "weights"
        ]
        checked = {
            (c["apiVersion"], c["kind"])
            for c in shared["spec"]["healthChecks"]
            if group in c["apiVersion"]
        }
        assert checked & {
            ("s3.services.k8s.aws/v1alpha1", "Bucket"),
            ("storage.cnrm.cloud.google.com/v1beta1", "StorageBucket"),
        }
        per_model = [
            d
            for d in docs[cluster]
            if d["kind"] == "Kustomization" and d["metadata"]["name"].startswith("weights-")
        ]
        assert per_model and all(d["spec"]["wait"] is True for d in per_model)
        exprs = {
            (e["apiVersion"], e["kind"]): e
            for ks in [shared, *per_model]
            for e in ks["spec"].get("healthCheckExprs", [])
            if group in e["apiVersion"]
        }.values()
        assert checked <= {(e["apiVersion"], e["kind"]) for e in exprs}
        rendered = {
            kind_of(d)
            for d in docs[cluster]
            if d["metadata"].get("namespace") == WEIGHTS_NAMESPACE
            and group in d["apiVersion"]
            and d["kind"] != "ConfigConnectorContext"
        }
        assert {(e["apiVersion"], e["kind"]) for e in exprs} == rendered
        for e in exprs:
            current, failed = env.compile(e["current"]), env.compile(e["failed"])
            for conditions, expected in states:
                data = {"status": {"conditions": conditions} if conditions else {}}
                got = (current.eval(data=data).value(), failed.eval(data=data).value())
                assert got == expected, (e["kind"], conditions)


def test_model_clusters_in_other_accounts_may_read_the_mirror(shipped: tuple[Plan, Docs]) -> None:
    """llmgen owns the bucket policy, so it must let in every account whose clusters read it.

    A cross-account read needs an Allow in the bucket policy as well as in
    the reader's own IAM (S3 "Bucket owner granting cross-account
    permissions"); the readers' own roles and the key policy stay theirs.
    """
    plan, docs = shipped
    mirror = plan.clusters[AWS].platform.weights_mirrors["aws"]
    own = plan.clusters[AWS].cluster.cloud_settings["accountID"]
    readers = {
        cp.cluster.cloud_settings["accountID"]
        for cp in plan.clusters.values()
        if cp.cluster.cloud == "aws" and any("aws" in p.model.weight_uris for p in cp.placements)
    }
    assert readers - {own}  # the shipped catalog's staging and dev accounts
    assert set(plan.clusters[AWS].mirror_reader_accounts) == readers - {own}
    (bucket_doc,) = of(docs, AWS, "Bucket")
    policy = json.loads(bucket_doc["spec"]["policy"])
    tls = {"aws:SecureTransport": "true"}
    (job, *_) = of(docs, AWS, "Job")
    _bucket, prefix = upload_uri(job)
    obj = f"arn:aws:s3:::{mirror.bucket}/{prefix}config.json"
    for account in readers - {own}:
        role = f"arn:aws:iam::{account}:role/staging-aws-use1-llama"
        assert decide(policy, Request("s3:GetObject", obj, role, tls)) == "allow"
        listing = Request("s3:ListBucket", f"arn:aws:s3:::{mirror.bucket}", role, tls)
        assert decide(policy, listing) == "allow"
        assert decide(policy, Request("s3:PutObject", obj, role, tls)) == "deny"
        plain = {"aws:SecureTransport": "false"}
        assert decide(policy, Request("s3:GetObject", obj, role, plain)) == "deny"
    stranger = "arn:aws:iam::999999999999:role/reader"
    assert decide(policy, Request("s3:GetObject", obj, stranger, tls)) == "none"
