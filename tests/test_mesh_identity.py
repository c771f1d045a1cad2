"""Mesh identity is least-privilege (issue 14, point 6).

External Secrets (external-secrets.io v1 ClusterSecretStore `spec.conditions`):
a namespace may use a ClusterSecretStore when it is listed in a condition's
`namespaces`, matches one of its `namespaceRegexes`, or its selector. RBAC: a
rule grants `secrets` when its apiGroups hold "" (or "*") and its resources
hold `secrets` (or "*").
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from llmgen.plan.build import Plan

MESH_STORE = "llmgen-mesh"


def _docs(files: dict[str, bytes], cluster: str) -> list[dict[str, Any]]:
    out = []
    for path, body in files.items():
        if path.startswith(f"generated/clusters/{cluster}/") and not path.endswith(
            "kustomization.yaml"
        ):
            out += [d for d in yaml.safe_load_all(body) if d]
    return out


def store_admits(store: dict[str, Any], namespace: str) -> bool:
    conditions = store["spec"].get("conditions")
    if not conditions:
        return True
    for c in conditions:
        if namespace in (c.get("namespaces") or []):
            return True
        if any(re.search(r, namespace) for r in c.get("namespaceRegexes") or []):
            return True
    return False


def grants_secrets(rules: list[dict[str, Any]]) -> bool:
    return any(
        set(r.get("apiGroups", [])) & {"", "*"} and set(r.get("resources", [])) & {"secrets", "*"}
        for r in rules
    )


def test_mesh_material_comes_from_a_store_only_istio_system_may_use(
    plan: Plan, files: dict[str, bytes]
) -> None:
    roles = set()
    for name, cp in plan.clusters.items():
        if cp.environment is None or len(cp.peers) < 2:
            continue
        docs = _docs(files, name)
        stores = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterSecretStore"}
        mesh = stores[MESH_STORE]
        assert store_admits(mesh, "istio-system")
        for p in cp.placements:
            assert not store_admits(mesh, p.namespace), (name, p.namespace)
        # cacerts and every remote secret read through it, and nothing else does.
        for d in docs:
            if d["kind"] != "ExternalSecret":
                continue
            uses_mesh = d["spec"]["secretStoreRef"]["name"] == MESH_STORE
            is_mesh = d["metadata"]["namespace"] == "istio-system"
            assert uses_mesh == is_mesh, (name, d["metadata"]["name"])
        # Its identity is this cluster's own: one cluster's credentials read
        # only its own CA key and its peers' remote secrets (README lists the policy).
        sa = next(
            d
            for d in docs
            if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "llmgen-mesh-secrets"
        )
        identity = next(iter((sa["metadata"].get("annotations") or {}).values()))
        assert name in identity
        roles.add(identity)
    assert len(roles) > 2  # one per cluster, not one per environment


def test_the_remote_secret_identity_cannot_read_secrets(
    plan: Plan, files: dict[str, bytes]
) -> None:
    for name, cp in plan.clusters.items():
        if len(cp.peers) < 2:
            continue
        docs = _docs(files, name)
        (role,) = [
            d
            for d in docs
            if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "istio-remote-reader"
        ]
        assert not grants_secrets(role["rules"])
        # What a primary reads of its peer stays readable.
        read = {res for r in role["rules"] for res in r["resources"]}
        assert {"pods", "services", "endpointslices", "namespaces"} <= read


def test_trust_domain_per_environment(plan: Plan, files: dict[str, bytes]) -> None:
    seen: dict[str, str] = {}
    for name, cp in plan.clusters.items():
        if cp.environment is None:
            continue
        docs = _docs(files, name)
        (istiod,) = [
            d for d in docs if d["kind"] == "HelmRelease" and d["metadata"]["name"] == "istiod"
        ]
        domain = istiod["spec"]["values"]["meshConfig"]["trustDomain"]
        assert domain != "cluster.local"
        assert seen.setdefault(cp.env_name, domain) == domain  # one per environment
        for d in docs:
            if d["kind"] == "AuthorizationPolicy":
                for rule in d["spec"].get("rules", []):
                    for src in rule.get("from", []):
                        for p in src["source"].get("principals", []):
                            assert p.startswith(f"{domain}/ns/"), (name, p)
    assert len(set(seen.values())) == len(seen)
