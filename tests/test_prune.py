"""What a prune or a deleted Kustomization takes with it (review D14).

Flux kustomize-controller deletes the objects of its inventory that left the
source, and all of them when the Kustomization itself is deleted (`prune:
true`), except objects annotated `kustomize.toolkit.fluxcd.io/prune:
disabled` (fluxcd.io kustomize docs, "Garbage collection"). A deleted
HelmRelease is a `helm uninstall`. External Secrets gives a Secret an
ownerReference to its ExternalSecret under `creationPolicy: Owner`, so
Kubernetes garbage-collects it with the ExternalSecret; `Orphan` does not
(external-secrets.io, ExternalSecret "creationPolicy").
"""

from __future__ import annotations

from typing import Any

import yaml

PRUNE = "kustomize.toolkit.fluxcd.io/prune"


def _docs(files: dict[str, bytes], cluster: str, under: str) -> list[dict[str, Any]]:
    base = f"generated/clusters/{cluster}/{under}"
    out = []
    for path, body in files.items():
        if path.startswith(base) and not path.endswith("kustomization.yaml"):
            out += [d for d in yaml.safe_load_all(body) if d]
    return out


def deleted_with_its_kustomization(doc: dict[str, Any]) -> bool:
    annotations = doc["metadata"].get("annotations") or {}
    return annotations.get(PRUNE) != "disabled"


def test_deleting_an_infrastructure_layer_keeps_namespaces_and_the_core_releases(
    files: dict[str, bytes],
) -> None:
    """The add-on, mesh CA and Istio layers' namespaces (istio-system holds
    `cacerts`) and the releases of the mesh CRDs, certificates and secret
    sync survive a pruned or deleted layer; stateless ones (the node-pools
    layer's GPU readiness namespace) stay prunable."""
    for cluster in ("prod-aws-use1", "prod-gcp-usc1"):
        docs = [
            d
            for layer in ("controllers", "mesh-ca", "istio")
            for d in _docs(files, cluster, f"infrastructure/{layer}/")
        ]
        namespaces = [d for d in docs if d["kind"] == "Namespace"]
        assert {"istio-system", "istio-ingress"} <= {d["metadata"]["name"] for d in namespaces}
        for ns in namespaces:
            assert not deleted_with_its_kustomization(ns), (cluster, ns["metadata"]["name"])
        releases = {d["metadata"]["name"]: d for d in docs if d["kind"] == "HelmRelease"}
        for name in ("istio-base", "cert-manager", "external-secrets"):
            assert not deleted_with_its_kustomization(releases[name]), (cluster, name)
        # the rest stay prunable: removing an add-on from platform.yaml removes it
        assert deleted_with_its_kustomization(releases["keda"])


def test_the_mesh_ca_secret_outlives_its_external_secret(files: dict[str, bytes]) -> None:
    """Orphan keeps syncing: ESO v0.20.4 updates an existing target under Orphan
    and removes its own controller reference from a Secret it created under
    Owner (pkg/controllers/externalsecret/externalsecret_controller.go), so a
    running cluster migrates without a hand edit."""
    for cluster in ("prod-aws-use1", "prod-gcp-usc1"):
        (cacerts,) = [
            d
            for d in _docs(files, cluster, "infrastructure/mesh-ca/")
            if d["kind"] == "ExternalSecret" and d["spec"]["target"]["name"] == "cacerts"
        ]
        assert cacerts["spec"]["target"]["creationPolicy"] == "Orphan"


def test_model_namespaces_stay_prunable(files: dict[str, bytes]) -> None:
    # `llmgen undeploy` removes a model: its namespace must go with it.
    docs = _docs(files, "prod-aws-use1", "models/")
    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    assert namespaces and all(deleted_with_its_kustomization(d) for d in namespaces)
