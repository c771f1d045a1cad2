"""The multi-cluster mesh of an environment, and the entry point of the mesh concerns.

Every cluster is an Istio primary on its own network (`Cluster.network`);
the clusters of one environment form one mesh: each cluster's istiod reads
the other clusters' API servers through remote secrets, and reaches their
endpoints through their east-west gateways (`gateway.py`). Nothing crosses
environments: remote secrets only ever name peers of the same environment.

Into `infrastructure/mesh-ca/mesh/`, namespace istio-system, as
ExternalSecrets from the environment's secret store (no credentials in git):

- `cacerts`: this cluster's intermediate CA under the mesh's shared root, so
  workloads of every cluster trust each other's certificates;
- `istio-remote-secret-<peer>` for each other cluster of the environment:
  a kubeconfig for the peer's API server (as `istioctl create-remote-secret`
  writes it), labelled `istio/multiCluster: "true"` for istiod to pick up.

`outputs` is the registered concern: it runs `gateway`, `issuer`, `traffic`
and `security` as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgen.catalog import names
from llmgen.catalog import secret_backends as sb
from llmgen.catalog.model import ModelSecret
from llmgen.render.concerns import (
    bodyrouting,
    gateway,
    inferencegateway,
    issuer,
    istio,
    security,
    traffic,
)
from llmgen.render.concerns.istio import MeshView
from llmgen.render.types import Output, file_name

if TYPE_CHECKING:
    from llmgen.plan.build import ClusterPlan, Placement

CONFIGS = "infrastructure/mesh-ca/mesh"

REMOTE_SECRET_PROPERTY = "kubeconfig"
#: The mesh's own ClusterSecretStore: only istio-system may use it, and it
#: authenticates as a per-cluster identity (`mesh_identity`) whose cloud policy
#: grants this cluster's CA key and its peers' remote secrets, nothing else.
#: Model namespaces use the environment's stores (secrets.py), which never
#: admit istio-system's material.
MESH_STORE = f"{sb.STORE_PREFIX}mesh"
MESH_SERVICE_ACCOUNT = "llmgen-mesh-secrets"
MESH_NAMESPACES = (istio.ISTIO_SYSTEM,)
CACERTS = "cacerts"
CACERTS_KEYS = ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem")


def _reference(mv: MeshView, name: str, prop: str | None) -> tuple[str, dict[str, Any]] | None:
    """(store, remoteRef) of secret `name` in the backend this cluster reads from.

    The same backend choice and key layout as model secrets (secret_backends),
    so `llmgen secrets check` finds these where ESO looks for them.
    """
    env = mv.environment
    backend = sb.default_backend(env, mv.cp.cluster.cloud)
    if backend is None:
        return None  # validate reports a cluster with no usable store
    wanted = ModelSecret(name, prop or sb.GCP_WHOLE_VALUE_KEY, "", None, None, env.where)
    ref = sb.remote_ref(wanted, env, backend)
    remote: dict[str, Any] = {"key": ref.key}
    if prop is not None and ref.property is not None:
        remote["property"] = ref.property
    return MESH_STORE, remote


def mesh_backend(mv: MeshView) -> str | None:
    """The backend the mesh store reads (the cluster's default backend)."""
    return sb.default_backend(mv.environment, mv.cp.cluster.cloud)


def mesh_identity(cp: ClusterPlan) -> str:
    """The cloud identity of this cluster's mesh store: `<cluster>-mesh-secrets`
    (an IAM role on AWS, a Google service account on GCP, a Vault role)."""
    return f"{cp.name}-mesh-secrets"


def store_outputs(mv: MeshView) -> Iterator[Output]:
    """The mesh ClusterSecretStore (istio-system only) and the ServiceAccount it runs as."""
    cp, env = mv.cp, mv.environment
    backend = sb.default_backend(env, cp.cluster.cloud)
    if backend is None:
        return
    settings = env.secret_stores[backend]
    identity = mesh_identity(cp)
    annotations: dict[str, str] = {}
    ctx: dict[str, Any] = {
        "name": MESH_STORE,
        "labels": cp.labels,
        "namespace_regexes": [],
        "namespaces": list(MESH_NAMESPACES),
        "service_account": MESH_SERVICE_ACCOUNT,
        "service_account_namespace": sb.ESO_NAMESPACE,
    }
    ctx |= sb.store_connection(backend, settings, cp.cluster, identity)
    if backend == "aws":
        account = cp.cluster.cloud_settings.get("accountID", "")
        annotations = {"eks.amazonaws.com/role-arn": f"arn:aws:iam::{account}:role/{identity}"}
    elif backend == "gcp":
        project = ctx["cluster_project"]
        # Google service account IDs are at most 30 characters.
        gsa = identity[:30].rstrip("-")
        annotations = {"iam.gke.io/gcp-service-account": f"{gsa}@{project}.iam.gserviceaccount.com"}
    yield Output(
        f"{CONFIGS}/{file_name('ServiceAccount', MESH_SERVICE_ACCOUNT)}",
        "mesh/serviceaccount-mesh-secrets.yaml.j2",
        {
            "name": MESH_SERVICE_ACCOUNT,
            "namespace": sb.ESO_NAMESPACE,
            "labels": cp.labels,
            "annotations": annotations,
        },
        cp.input_hash,
    )
    yield Output(
        f"{CONFIGS}/{file_name('ClusterSecretStore', MESH_STORE)}",
        f"secrets/clustersecretstore-{backend}.yaml.j2",
        ctx,
        cp.input_hash,
    )


def remote_secret_context(mv: MeshView, peer: str) -> dict[str, Any] | None:
    """The ExternalSecret delivering `peer`'s remote secret to this cluster's istiod."""
    name = names.remote_secret_name(peer)
    found = _reference(mv, name, REMOTE_SECRET_PROPERTY)
    if found is None:
        return None
    store, remote = found
    return {
        "name": name,
        "namespace": istio.ISTIO_SYSTEM,
        "labels": mv.cp.labels,
        "refresh_interval": mv.environment.secret_refresh_interval,
        "store": store,
        "backend": mesh_backend(mv),
        "secret_labels": {"istio/multiCluster": "true"},
        "secret_annotations": {"networking.istio.io/cluster": peer},
        # istiod reads one kubeconfig per data key, named after the cluster.
        "template_data": {peer: "{{ ." + REMOTE_SECRET_PROPERTY + " }}"},
        "secret_key": REMOTE_SECRET_PROPERTY,
        "remote_ref": remote,
    }


def cacerts_context(mv: MeshView) -> dict[str, Any] | None:
    """The ExternalSecret of this cluster's intermediate CA (`cacerts`, read by istiod)."""
    found = _reference(mv, f"istio-cacerts-{mv.cp.name}", None)
    if found is None:
        return None
    store, base = found
    return {
        "name": CACERTS,
        "namespace": istio.ISTIO_SYSTEM,
        "labels": mv.cp.labels,
        "refresh_interval": mv.environment.secret_refresh_interval,
        "store": store,
        "backend": mesh_backend(mv),
        "data": [
            {"secretKey": key, "remoteRef": {**base, "property": key}} for key in CACERTS_KEYS
        ],
    }


#: The identity peers' istiods read this cluster as (their remote secret's token):
#: `istioctl create-remote-secret --service-account istio-remote-reader
#: --create-service-account=false`.
REMOTE_READER = "istio-remote-reader"
_READ = ["get", "list", "watch"]
#: Istio's istio-reader-clusterrole (istio-discovery
#: templates/reader-clusterrole.yaml; the rules are the same at 1.27.3 and at
#: the pinned 1.28.0, which only wraps them in a `resourceScope` condition)
#: without `secrets`: that role lets a holder of the remote secret read every
#: Secret of this cluster (CA key, TLS keys, tokens); a primary only needs a
#: peer's endpoints and services, and llmgen serves no gateway credential
#: across clusters.
REMOTE_READER_RULES = [
    {
        "apiGroups": [
            "config.istio.io",
            "security.istio.io",
            "networking.istio.io",
            "authentication.istio.io",
            "rbac.istio.io",
            "telemetry.istio.io",
            "extensions.istio.io",
        ],
        "resources": ["*"],
        "verbs": _READ,
    },
    {
        "apiGroups": [""],
        "resources": [
            "endpoints",
            "pods",
            "services",
            "nodes",
            "replicationcontrollers",
            "namespaces",
        ],
        "verbs": _READ,
    },
    {
        "apiGroups": ["networking.x-k8s.io", "gateway.networking.k8s.io"],
        "resources": ["gateways"],
        "verbs": _READ,
    },
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": _READ,
    },
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": _READ},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": _READ},
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["subjectaccessreviews"],
        "verbs": ["create"],
    },
]


def remote_reader_outputs(cp: ClusterPlan) -> Iterator[Output]:
    """The least-privilege identity peers read this cluster's API server as."""
    yield Output(
        f"{CONFIGS}/{file_name('ServiceAccount', REMOTE_READER)}",
        "mesh/serviceaccount-mesh-secrets.yaml.j2",
        {
            "name": REMOTE_READER,
            "namespace": istio.ISTIO_SYSTEM,
            "labels": cp.labels,
            "annotations": {},
        },
        cp.input_hash,
    )
    yield Output(
        f"{CONFIGS}/{file_name('ClusterRole', REMOTE_READER)}",
        "mesh/clusterrole.yaml.j2",
        {"name": REMOTE_READER, "labels": cp.labels, "rules": REMOTE_READER_RULES},
        cp.input_hash,
    )
    yield Output(
        f"{CONFIGS}/{file_name('ClusterRoleBinding', REMOTE_READER)}",
        "mesh/clusterrolebinding.yaml.j2",
        {
            "name": REMOTE_READER,
            "labels": cp.labels,
            "role": REMOTE_READER,
            "subjects": [
                {"kind": "ServiceAccount", "name": REMOTE_READER, "namespace": istio.ISTIO_SYSTEM}
            ],
        },
        cp.input_hash,
    )


def identity_outputs(mv: MeshView) -> Iterator[Output]:
    """The mesh store and its identity, and the reader peers use (not ExternalSecrets)."""
    yield from store_outputs(mv)
    if len(mv.cp.peers) > 1:
        yield from remote_reader_outputs(mv.cp)


def multicluster_outputs(mv: MeshView) -> Iterator[Output]:
    """The mesh's ExternalSecrets (`llmgen secrets check` reads exactly these)."""
    cp = mv.cp
    ca = cacerts_context(mv)
    if ca is not None:
        yield Output(
            f"{CONFIGS}/{file_name('ExternalSecret', CACERTS)}",
            "mesh/externalsecret-cacerts.yaml.j2",
            ca,
            cp.input_hash,
        )
    for peer in cp.peers:
        if peer.name == cp.name:
            continue
        ctx = remote_secret_context(mv, peer.name)
        if ctx is not None:
            yield Output(
                f"{CONFIGS}/{file_name('ExternalSecret', ctx['name'])}",
                "mesh/externalsecret-remote.yaml.j2",
                ctx,
                cp.input_hash,
            )


def environment_placements(cp: ClusterPlan) -> tuple[Placement, ...] | None:
    """The placements of `cp`'s whole environment (None for a cluster in no environment)."""
    return cp.environment_placements if cp.environment is not None else None


def outputs_with(cp: ClusterPlan, env_placements: tuple[Placement, ...] | None) -> Iterator[Output]:
    """Every mesh file of `cp`, routing the given environment placements."""
    mv = istio.view(cp, env_placements)
    if mv is None:
        return
    yield from gateway.controller_outputs(mv)
    yield from gateway.config_outputs(mv)
    yield from issuer.outputs(mv)
    yield from traffic.outputs(mv)
    yield from bodyrouting.outputs(mv)
    yield from security.outputs(mv)
    yield from inferencegateway.outputs(mv)
    yield from identity_outputs(mv)
    yield from multicluster_outputs(mv)


def outputs(cp: ClusterPlan) -> Iterator[Output]:
    yield from outputs_with(cp, environment_placements(cp))
