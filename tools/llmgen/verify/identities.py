"""Wiring between Kubernetes ServiceAccounts and the cloud identities rendered beside them.

A ServiceAccount names its cloud identity in an annotation; the identity
trusts a ServiceAccount in its own document. Both parse and both apply, and
a mismatch only shows when the pod's first cloud call is refused. Checked in
both directions, for identities the tree renders (ACK `Role`, Config
Connector `IAMServiceAccount`); identities made outside the tree (the
add-ons' and models' roles, README prerequisites) are not seen here:

- IRSA: a ServiceAccount whose `eks.amazonaws.com/role-arn` names a rendered
  Role (by `spec.name`) must be the `system:serviceaccount:<ns>:<name>` the
  Role's trust policy admits; a Role admitting a ServiceAccount must be the
  one that ServiceAccount's annotation names. The EKS pod identity webhook
  injects the annotation's ARN; STS then checks the token's `sub` against
  the trust policy's condition.
- Workload Identity: a ServiceAccount whose `iam.gke.io/gcp-service-account`
  names a rendered IAMServiceAccount needs an IAMPolicyMember granting
  `roles/iam.workloadIdentityUser` on it to
  `serviceAccount:<project>.svc.id.goog[<ns>/<name>]`, and such a binding
  must belong to a ServiceAccount annotated with that Google account.
- Config Connector references (`resourceRef.name`, `memberFrom.
  serviceAccountRef.name`) name objects of this cluster and namespace:
  Config Connector otherwise waits for the referent forever
  (DependencyNotFound).
"""

from __future__ import annotations

import json
from typing import Any

from llmgen.catalog.load import PathKey
from llmgen.errors import Diagnostic
from llmgen.verify.cluster import Cluster
from llmgen.verify.manifests import Manifest
from llmgen.verify.stats import Family

ROLE_ARN = "eks.amazonaws.com/role-arn"
GSA = "iam.gke.io/gcp-service-account"
ACK_IAM = "iam.services.k8s.aws/"
WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _annotation(m: Manifest, key: str) -> str:
    return str(_dict(_dict(m.data.get("metadata")).get("annotations")).get(key) or "")


def _trusted(role: Manifest) -> set[str]:
    """The `system:serviceaccount:ns:name` subjects a Role's trust policy admits exactly."""
    text = _dict(role.data.get("spec")).get("assumeRolePolicyDocument")
    try:
        doc = json.loads(str(text))
    except ValueError:
        return set()
    out: set[str] = set()
    statements = _dict(doc).get("Statement")
    for s in statements if isinstance(statements, list) else [statements]:
        for values in _dict(_dict(_dict(s).get("Condition")).get("StringEquals")).values():
            for v in values if isinstance(values, list) else [values]:
                if str(v).startswith("system:serviceaccount:"):
                    out.add(str(v))
    return out


def check_identities(cluster: Cluster, family: Family) -> list[Diagnostic]:
    return (
        _irsa(cluster, family) + _workload_identity(cluster, family) + _cnrm_refs(cluster, family)
    )


def _irsa(cluster: Cluster, family: Family) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    roles = {
        str(_dict(r.data.get("spec")).get("name")): r
        for r in cluster.by_kind.get("Role", [])
        if str(r.data.get("apiVersion", "")).startswith(ACK_IAM)
    }
    if not roles:
        return out
    accounts: dict[str, str] = {}  # subject -> the role name its annotation names
    for sa in cluster.by_kind.get("ServiceAccount", []):
        arn = _annotation(sa, ROLE_ARN)
        subject = f"system:serviceaccount:{cluster.namespace_of(sa)}:{sa.name}"
        accounts[subject] = arn.rpartition("/")[2]
        role = roles.get(arn.rpartition("/")[2]) if ":role/" in arn else None
        if role is None:
            continue
        family.run += 1
        if subject not in _trusted(role):
            family.failed += 1
            out.append(
                sa.diagnostic(
                    ("metadata", "annotations", ROLE_ARN),
                    f"{role.identity}'s trust policy does not admit {subject}; "
                    "AssumeRoleWithWebIdentity is refused",
                )
            )
    for name, role in sorted(roles.items()):
        for subject in sorted(_trusted(role)):
            family.run += 1
            if accounts.get(subject) != name:
                family.failed += 1
                out.append(
                    role.diagnostic(
                        ("spec", "assumeRolePolicyDocument"),
                        f"trusts {subject}, which "
                        + (
                            "this cluster does not render"
                            if subject not in accounts
                            else f"names role {accounts[subject] or '(none)'} in {ROLE_ARN}"
                        ),
                    )
                )
    return out


def _workload_identity(cluster: Cluster, family: Family) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    gsas = {
        (cluster.namespace_of(g), str(_dict(g.data.get("spec")).get("resourceID") or g.name))
        for g in cluster.by_kind.get("IAMServiceAccount", [])
    }
    if not gsas:
        return out
    bindings: dict[str, tuple[str, Manifest]] = {}  # member -> (GSA name, binding)
    for b in cluster.by_kind.get("IAMPolicyMember", []):
        spec = _dict(b.data.get("spec"))
        ref = _dict(spec.get("resourceRef"))
        if spec.get("role") == WORKLOAD_IDENTITY_USER and ref.get("kind") == "IAMServiceAccount":
            bindings[str(spec.get("member"))] = (str(ref.get("name")), b)
    annotated: dict[str, str] = {}
    for sa in cluster.by_kind.get("ServiceAccount", []):
        email = _annotation(sa, GSA)
        gsa, _, domain = email.partition("@")
        project = domain.removesuffix(".iam.gserviceaccount.com")
        member = f"serviceAccount:{project}.svc.id.goog[{cluster.namespace_of(sa)}/{sa.name}]"
        annotated[member] = gsa
        if not email or not any(name == gsa for _ns, name in gsas):
            continue
        family.run += 1
        if bindings.get(member, ("", None))[0] != gsa:
            family.failed += 1
            out.append(
                sa.diagnostic(
                    ("metadata", "annotations", GSA),
                    f"no IAMPolicyMember grants {WORKLOAD_IDENTITY_USER} on IAMServiceAccount "
                    f"{gsa} to {member}; the pod cannot impersonate it",
                )
            )
    for member, (gsa, b) in sorted(bindings.items()):
        family.run += 1
        if annotated.get(member) != gsa:
            family.failed += 1
            out.append(
                b.diagnostic(
                    ("spec", "member"),
                    f"{member} is no ServiceAccount of this cluster annotated with {GSA} "
                    f"naming {gsa}",
                )
            )
    return out


def _cnrm_refs(cluster: Cluster, family: Family) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for b in cluster.by_kind.get("IAMPolicyMember", []):
        spec = _dict(b.data.get("spec"))
        ns = cluster.namespace_of(b)
        ref = _dict(spec.get("resourceRef"))
        refs: list[tuple[PathKey, str, str]] = []
        if ref.get("name"):
            refs.append((("spec", "resourceRef", "name"), str(ref.get("kind")), str(ref["name"])))
        sa_ref = _dict(_dict(spec.get("memberFrom")).get("serviceAccountRef"))
        if sa_ref.get("name"):
            by = ("spec", "memberFrom", "serviceAccountRef", "name")
            refs.append((by, "IAMServiceAccount", str(sa_ref["name"])))
        for path, kind, name in refs:
            family.run += 1
            if cluster.get(kind, ns, name) is None:
                family.failed += 1
                out.append(
                    b.diagnostic(
                        path,
                        f'no {kind} "{name}" in namespace {ns}; Config Connector waits for it '
                        "(DependencyNotFound) and never applies the binding",
                    )
                )
    return out
