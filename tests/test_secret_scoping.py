"""Each model reads only its own secrets from the store.

Before, every `llm-*` namespace could use the cluster-wide stores, which
authenticate as External Secrets' own identity: an ExternalSecret in one
model's namespace could read any other model's secrets. Now each model
namespace has its own SecretStore that authenticates as the model's own
ServiceAccount (Vault: a per-model Kubernetes-auth role; AWS: the model's IRSA
role; GCP: the model's Workload Identity service account), so the store's own
policy (Vault policy, IAM) decides what one model can read, and the cluster
stores admit no model namespace. External Secrets v1: a SecretStore's
`serviceAccountRef` names an account in the store's own namespace
(external-secrets/external-secrets, apis/externalsecrets/v1 SecretStore docs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llmgen.catalog import names
from llmgen.verify.runner import verify_documents


def _docs(files: dict[str, bytes], cluster: str) -> list[dict[str, Any]]:
    prefix = f"generated/clusters/{cluster}/"
    out: list[dict[str, Any]] = []
    for path, body in sorted(files.items()):
        if path.startswith(prefix):
            out += [d for d in yaml.safe_load_all(body) if d]
    return out


def _clusters(files: dict[str, bytes]) -> list[str]:
    return sorted({p.split("/")[2] for p in files if p.startswith("generated/clusters/")})


def test_every_external_secret_uses_its_own_namespace_store_as_its_model(
    files: dict[str, bytes],
) -> None:
    checked = 0
    for cluster in _clusters(files):
        docs = _docs(files, cluster)
        stores = {
            (d["metadata"]["namespace"], d["metadata"]["name"]): d
            for d in docs
            if d["kind"] == "SecretStore"
        }
        accounts = {
            d["metadata"]["namespace"]: d["spec"]["template"]["spec"]["serviceAccountName"]
            for d in docs
            if d["kind"] == "Deployment" and d["metadata"]["namespace"].startswith("llm-")
        }
        # A multi-node model's pods (leader and workers) run as one account.
        for d in docs:
            if d["kind"] == "LeaderWorkerSet":
                lwt = d["spec"]["leaderWorkerTemplate"]
                (account,) = {
                    lwt[t]["spec"]["serviceAccountName"]
                    for t in ("leaderTemplate", "workerTemplate")
                }
                accounts[d["metadata"]["namespace"]] = account
        for es in (d for d in docs if d["kind"] == "ExternalSecret"):
            ns = es["metadata"]["namespace"]
            if not ns.startswith(names.NAMESPACE_PREFIX):
                continue  # mesh identity (istio-system) keeps its cluster store
            ref = es["spec"]["secretStoreRef"]
            assert ref["kind"] == "SecretStore", (cluster, es["metadata"]["name"])
            store = stores[(ns, ref["name"])]
            provider = next(iter(store["spec"]["provider"].values()))
            auth = next(iter(provider["auth"].values()))
            assert auth["serviceAccountRef"] == {"name": accounts[ns]}, (cluster, ns)
            checked += 1
    assert checked


def test_cluster_stores_admit_no_model_namespace(files: dict[str, bytes]) -> None:
    for cluster in _clusters(files):
        for d in _docs(files, cluster):
            if d["kind"] != "ClusterSecretStore":
                continue
            for cond in d["spec"].get("conditions", []):
                assert not cond.get("namespaceRegexes"), (cluster, d["metadata"]["name"])
                assert all(not n.startswith("llm-") for n in cond.get("namespaces", []))


def test_vault_stores_use_a_role_per_model(files: dict[str, bytes]) -> None:
    docs = _docs(files, "dev-aws-use2")
    vault = [d for d in docs if d["kind"] == "SecretStore" and "vault" in d["spec"]["provider"]]
    assert vault
    roles = {d["spec"]["provider"]["vault"]["auth"]["kubernetes"]["role"] for d in vault}
    assert len(roles) == len(vault)
    for d in vault:
        model = d["metadata"]["namespace"].removeprefix(names.NAMESPACE_PREFIX)
        assert d["spec"]["provider"]["vault"]["auth"]["kubernetes"]["role"] == f"llmgen-dev-{model}"


def test_secret_stores_validate_strictly(files: dict[str, bytes], crd_schemas: Path) -> None:
    docs = [
        ("x.yaml", 1, d)
        for cluster in _clusters(files)
        for d in _docs(files, cluster)
        if d["kind"] == "SecretStore"
    ]
    assert docs
    problems = verify_documents(docs, crd_schemas)
    assert not [p for p in problems if p.is_error], problems
