"""gpu-readiness may patch only the node its own pod runs on.

RBAC cannot scope `patch nodes` to one node, so a ValidatingAdmissionPolicy
does: the DaemonSet's bound service-account token carries the node it was
issued on, which the API server puts in
`request.userInfo.extra["authentication.kubernetes.io/node-name"]`
(kubernetes/kubernetes, feature gate ServiceAccountTokenPodNodeInfo: beta and on
by default in 1.30, GA in 1.32; the pattern is upstream's e2e test
test/e2e/auth/e2edata/per_node_validatingadmissionpolicy.yaml). VAP's
admissionregistration.k8s.io/v1 is GA in 1.30.

The policy's CEL is evaluated here with the CEL runtime (cel-expr-python) on
the admission requests a patch produces, so a wrong expression fails the test.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmgen.catalog.validate import validate
from llmgen.plan.build import Plan

cel = pytest.importorskip("cel_expr_python.cel")

BUNDLE = "infrastructure/node-pools/gpu-readiness.yaml"
SA = "system:serviceaccount:llmgen-system:gpu-readiness"
NODE_CLAIM = "authentication.kubernetes.io/node-name"
STARTUP = {"key": "llmgen.io/gpu-initializing", "value": "true", "effect": "NoSchedule"}
GPU = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}


def _docs(files: dict[str, bytes], plan: Plan) -> dict[str, dict[str, Any]]:
    cp = next(
        c for c in plan.clusters.values() if c.provider.name == "aws" and c.cluster.node_pools
    )
    body = files[f"generated/clusters/{cp.name}/{BUNDLE}"]
    return {d["kind"]: d for d in yaml.safe_load_all(body) if d}


def _node(name: str, taints: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"llmgen.io/gpu": "true"}},
        "spec": {"taints": taints},
    }


def _request(user: str, node_claim: str | None) -> dict[str, Any]:
    extra = {NODE_CLAIM: [node_claim]} if node_claim else {}
    return {"operation": "UPDATE", "userInfo": {"username": user, "extra": extra}}


def _admit(policy: dict[str, Any], request: dict[str, Any], old: Any, new: Any) -> bool:
    env = cel.NewEnv(
        variables={"request": cel.Type.DYN, "object": cel.Type.DYN, "oldObject": cel.Type.DYN}
    )
    data = {"request": request, "object": new, "oldObject": old}
    spec = policy["spec"]
    for cond in spec.get("matchConditions", []):
        if not env.compile(cond["expression"]).eval(data=data).value():
            return True  # the policy does not apply
    return all(env.compile(v["expression"]).eval(data=data).value() for v in spec["validations"])


def test_a_policy_and_binding_deny_patches_of_other_nodes(
    plan: Plan, files: dict[str, bytes]
) -> None:
    docs = _docs(files, plan)
    policy, binding = docs["ValidatingAdmissionPolicy"], docs["ValidatingAdmissionPolicyBinding"]
    assert binding["spec"] == {
        "policyName": policy["metadata"]["name"],
        "validationActions": ["Deny"],
    }
    assert policy["spec"]["failurePolicy"] == "Fail"
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["nodes"] and "UPDATE" in rule["operations"]
    old = _node("node-a", [GPU, STARTUP])
    untainted = _node("node-a", [GPU])
    # its own node: lifting the startup taint is allowed
    assert _admit(policy, _request(SA, "node-a"), old, untainted)
    # another node, or a token without the node claim: denied
    assert not _admit(policy, _request(SA, "node-b"), old, untainted)
    assert not _admit(policy, _request(SA, None), old, untainted)
    # its own node, but adding a taint or relabelling: denied
    assert not _admit(
        policy, _request(SA, "node-a"), old, _node("node-a", [GPU, STARTUP, {**GPU, "key": "x"}])
    )
    relabelled = copy.deepcopy(untainted)
    relabelled["metadata"]["labels"]["evil"] = "1"
    assert not _admit(policy, _request(SA, "node-a"), old, relabelled)
    # anyone else is not this policy's business
    assert _admit(policy, _request("system:node:node-b", None), old, relabelled)


def test_the_sa_in_the_policy_is_the_daemonsets(plan: Plan, files: dict[str, bytes]) -> None:
    docs = _docs(files, plan)
    sa = docs["ServiceAccount"]["metadata"]
    expected = f"system:serviceaccount:{sa['namespace']}:{sa['name']}"
    assert expected == SA
    assert any(
        expected in c["expression"]
        for c in docs["ValidatingAdmissionPolicy"]["spec"]["matchConditions"]
    )


def test_clusters_older_than_1_30_are_refused(scratch_repo: Path) -> None:
    path = scratch_repo / "catalog/clusters/dev-aws-use2.yaml"
    path.write_text(
        path.read_text().replace('kubernetesVersion: "1.33"', 'kubernetesVersion: "1.29"')
    )
    errors = [str(d) for d in validate(scratch_repo).errors]
    assert any(
        e.startswith("catalog/clusters/dev-aws-use2.yaml:")
        and "1.30" in e
        and "spec.kubernetesVersion" in e
        for e in errors
    ), errors
