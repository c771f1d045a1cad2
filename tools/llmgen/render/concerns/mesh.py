"""The multi-cluster mesh of an environment, and the entry point of the mesh concerns.

Every cluster is an Istio primary on its own network (`Cluster.network`);
the clusters of one environment form one mesh: each cluster's istiod reads
the other clusters' API servers through remote secrets, and reaches their
endpoints through their east-west gateways (`gateway.py`). Nothing crosses
environments: remote secrets only ever name peers of the same environment.

Into `infrastructure/mesh-identity/mesh/`, namespace istio-system, as
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
from llmgen.render.concerns import bodyrouting, gateway, issuer, istio, security, traffic
from llmgen.render.concerns.istio import MeshView
from llmgen.render.types import Output, file_name

if TYPE_CHECKING:
    from llmgen.plan.build import ClusterPlan, Placement

CONFIGS = "infrastructure/mesh-identity/mesh"

REMOTE_SECRET_PROPERTY = "kubeconfig"
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
    return sb.store_name(backend), remote


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
        "data": [
            {"secretKey": key, "remoteRef": {**base, "property": key}} for key in CACERTS_KEYS
        ],
    }


def multicluster_outputs(mv: MeshView) -> Iterator[Output]:
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
    yield from multicluster_outputs(mv)


def outputs(cp: ClusterPlan) -> Iterator[Output]:
    yield from outputs_with(cp, environment_placements(cp))
