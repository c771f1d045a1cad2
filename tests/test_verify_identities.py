"""`llmgen verify`: ServiceAccounts and the cloud identities rendered for them.

Runs on the weights layers the shipped catalog renders (generated/), each
test breaking one link the way a hand edit or a renamed Job would.
"""

from __future__ import annotations

from pathlib import Path

from llmgen.verify.cluster import Cluster
from llmgen.verify.identities import check_identities
from llmgen.verify.manifests import Manifest, split_documents
from llmgen.verify.stats import Family

REPO = Path(__file__).resolve().parents[1]
AWS = "generated/clusters/prod-aws-use1"
GCP = "generated/clusters/prod-gcp-usc1"
JOB = "bge-m3-5617a9f6"
SA_ARN = "eks.amazonaws.com/role-arn"
SA_GSA = "iam.gke.io/gcp-service-account"
ROLE = "Role/llmgen-weights/wsync-ab8aec5c1927: spec.assumeRolePolicyDocument"


def check(cluster: str, edits: list[tuple[str, str, str]] = ()) -> tuple[list[str], Family]:
    files = {
        p.relative_to(REPO).as_posix(): p.read_text()
        for p in sorted((REPO / cluster / "weights").rglob("*.yaml"))
    }
    for rel, old, new in edits:
        assert old in files[rel], (rel, old)
        files[rel] = files[rel].replace(old, new, 1)
    docs = [
        d
        for rel, text in files.items()
        for d in split_documents(text, rel)
        if isinstance(d, Manifest)
    ]
    family = Family()
    found = check_identities(Cluster(cluster, docs), family)
    assert family.failed == len(found)
    # located in the document at fault (the exact line moves with the templates)
    assert all(str(d.location).startswith(f"{cluster}/weights/") for d in found)
    return [f"{d.path}: {d.message}" for d in found], family


def test_the_shipped_sync_identities_are_wired() -> None:
    for cluster in (AWS, GCP):
        found, family = check(cluster)
        assert found == []
        assert family.run >= 12  # six revisions, both directions (and the bindings' refs)


def test_a_service_account_naming_another_revisions_role() -> None:
    rel = f"{AWS}/weights/bge-m3/bge-m3.yaml"
    found, _ = check(AWS, [(rel, "role/wsync-ab8aec5c1927", "role/wsync-3c25ccf02662")])
    assert found == [
        f"ServiceAccount/llmgen-weights/{JOB}: metadata.annotations.{SA_ARN}: "
        "Role/llmgen-weights/wsync-3c25ccf02662's trust policy does not admit "
        f"system:serviceaccount:llmgen-weights:{JOB}; AssumeRoleWithWebIdentity is refused",
        f"{ROLE}: trusts system:serviceaccount:llmgen-weights:{JOB}, which names role "
        "wsync-3c25ccf02662 in eks.amazonaws.com/role-arn",
    ]


def test_a_role_trusting_a_service_account_that_is_not_there() -> None:
    rel = f"{AWS}/weights/bge-m3/bge-m3.yaml"
    found, _ = check(
        AWS,
        [
            (
                rel,
                f"system:serviceaccount:llmgen-weights:{JOB}",
                "system:serviceaccount:llmgen-weights:gone",
            )
        ],
    )
    assert found == [
        f"ServiceAccount/llmgen-weights/{JOB}: metadata.annotations.{SA_ARN}: "
        "Role/llmgen-weights/wsync-ab8aec5c1927's trust policy does not admit "
        f"system:serviceaccount:llmgen-weights:{JOB}; AssumeRoleWithWebIdentity is refused",
        f"{ROLE}: trusts system:serviceaccount:llmgen-weights:gone, which this cluster does "
        "not render",
    ]


def test_a_workload_identity_binding_for_another_service_account() -> None:
    rel = f"{GCP}/weights/bge-m3/bge-m3.yaml"
    found, _ = check(GCP, [(rel, f"[llmgen-weights/{JOB}]", "[llmgen-weights/other]")])
    assert found == [
        f"ServiceAccount/llmgen-weights/{JOB}: metadata.annotations.{SA_GSA}: "
        "no IAMPolicyMember grants roles/iam.workloadIdentityUser on IAMServiceAccount "
        "wsync-8aea5c333f0d to serviceAccount:llm-prod-4821.svc.id.goog"
        f"[llmgen-weights/{JOB}]; the pod cannot impersonate it",
        "IAMPolicyMember/llmgen-weights/wsync-8aea5c333f0d-workload-identity: spec.member: "
        "serviceAccount:llm-prod-4821.svc.id.goog[llmgen-weights/other] is no ServiceAccount "
        "of this cluster annotated with iam.gke.io/gcp-service-account naming wsync-8aea5c333f0d",
    ]


def test_a_binding_on_a_bucket_that_is_not_rendered() -> None:
    rel = f"{GCP}/weights/bge-m3/bge-m3.yaml"
    found, _ = check(
        GCP,
        [
            (
                rel,
                "kind: StorageBucket\n    name: example-llm-weights",
                "kind: StorageBucket\n    name: example-llm-weight",
            )
        ],
    )
    assert found == [
        "IAMPolicyMember/llmgen-weights/wsync-8aea5c333f0d-objectcreator: spec.resourceRef.name: "
        'no StorageBucket "example-llm-weight" in namespace llmgen-weights; Config Connector '
        "waits for it (DependencyNotFound) and never applies the binding"
    ]
