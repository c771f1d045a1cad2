"""Secrets and environment config: ClusterSecretStores, ExternalSecrets, ConfigMaps.

Per cluster, into `infrastructure/configs/`: one ClusterSecretStore
(`llmgen-<backend>`) per backend something on the cluster reads through one
(the weights sync Jobs' hub tokens; model secrets and the mesh have stores of
their own) and its cloud can use (Vault anywhere; AWS Secrets Manager on EKS
through IRSA; GCP Secret Manager on GKE through Workload Identity), plus the
IRSA ServiceAccount the AWS store authenticates as.

Per model, into `models/<model>/`: one ExternalSecret per `spec.secrets[]`
entry, creating the Secret `names.secret_name(model, env)` with the entry's
key, which the Deployment reads; and the environment's `config` as the
ConfigMap `names.ENV_CONFIGMAP`, which the Deployment loads with `envFrom`.
Values never pass through here: only where they live.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgen.catalog import names
from llmgen.catalog import secret_backends as sb
from llmgen.errors import CatalogError, Diagnostic
from llmgen.render.concerns.weightsync import hf_token_secret
from llmgen.render.types import Output, file_name

if TYPE_CHECKING:
    from llmgen.plan.build import ClusterPlan, Placement

CONFIGS = "infrastructure/configs"
# Retain: if a secret disappears from its backend (deleted by mistake, or
# mid-rotation), the serving pods keep the last synced Secret instead of losing
# it on their next restart; the ExternalSecret reports SecretSyncedError.
DELETION_POLICY = "Retain"


def _store_conditions() -> dict[str, Any]:
    # Model namespaces use their own SecretStores (model_store_outputs): a
    # cluster store authenticates as External Secrets itself and could read
    # any model's secrets.
    return {"namespace_regexes": [], "namespaces": list(sb.STORE_NAMESPACES)}


def model_store_outputs(cp: ClusterPlan, p: Placement) -> Iterator[Output]:
    """One SecretStore per backend a model's secrets use, in its namespace, as the model.

    It authenticates as the model's own ServiceAccount (the one its pods run
    as): Vault through a Kubernetes-auth role of the model's own
    (`sb.model_vault_role`), AWS through the model's IRSA role, GCP through its
    Workload Identity service account. So the backend's policy for that one
    identity bounds what the model can read, not External Secrets' identity.
    """
    env = cp.environment
    assert env is not None
    cluster = cp.cluster
    used = {sb.backend_for(s, env, cluster.cloud) for s in p.model.secrets}
    for backend in sorted(b for b in used if b is not None):
        settings = env.secret_stores[backend]
        name = sb.store_name(backend)
        ctx: dict[str, Any] = {
            "name": name,
            "namespace": p.namespace,
            "labels": p.labels,
            "service_account": p.name,
        }
        role = sb.model_vault_role(str(settings["role"]), p.name) if backend == "vault" else ""
        ctx |= sb.store_connection(backend, settings, cluster, role)
        yield Output(
            f"models/{p.name}/{file_name('SecretStore', name)}",
            f"secrets/secretstore-{backend}.yaml.j2",
            ctx,
            p.input_hash,
        )


def store_outputs(cp: ClusterPlan) -> Iterator[Output]:
    """The ClusterSecretStores (and IRSA ServiceAccount) of one cluster."""
    env = cp.environment
    if env is None:
        return
    cluster = cp.cluster
    tokens = (hf_token_secret(cp, item) for item in cp.mirror_items)
    used = [sb.store_backend(str(t["store"])) for t in tokens if t is not None]
    for backend in sb.cluster_backends(env, cluster.cloud, used):
        settings = env.secret_stores[backend]
        name = sb.store_name(backend)
        ctx: dict[str, Any] = {
            "name": name,
            "labels": cp.labels,
            **_store_conditions(),
            **sb.store_connection(backend, settings, cluster, str(settings.get("role", ""))),
            "service_account": sb.ESO_SERVICE_ACCOUNT,
            "service_account_namespace": sb.ESO_NAMESPACE,
        }
        if backend == "aws":
            ctx["service_account"] = sb.AWS_SERVICE_ACCOUNT
            yield Output(
                f"{CONFIGS}/{file_name('ServiceAccount', sb.AWS_SERVICE_ACCOUNT)}",
                "secrets/serviceaccount-irsa.yaml.j2",
                {
                    "name": sb.AWS_SERVICE_ACCOUNT,
                    "namespace": sb.ESO_NAMESPACE,
                    "labels": cp.labels,
                    "annotations": {"eks.amazonaws.com/role-arn": settings["roleArn"]},
                },
                cp.input_hash,
            )
        yield Output(
            f"{CONFIGS}/{file_name('ClusterSecretStore', name)}",
            f"secrets/clustersecretstore-{backend}.yaml.j2",
            ctx,
            cp.input_hash,
        )


def external_secret_context(cp: ClusterPlan, p: Placement, index: int) -> dict[str, Any]:
    """What the ExternalSecret of `p.model.secrets[index]` says, decided here."""
    env = cp.environment
    assert env is not None
    s = p.model.secrets[index]
    backend = sb.backend_for(s, env, cp.cluster.cloud)
    assert backend is not None  # _check_cluster refused this placement otherwise
    ref = sb.remote_ref(s, env, backend)
    return {
        "name": names.secret_name(p.model.name, s.env),
        "namespace": p.namespace,
        "labels": p.labels,
        "refresh_interval": sb.refresh_interval(s, env),
        "store": sb.store_name(backend),
        "store_kind": "SecretStore",
        "deletion_policy": DELETION_POLICY,
        "secret_key": s.key,
        "remote_key": ref.key,
        "remote_property": ref.property,
    }


def _check_cluster(cp: ClusterPlan) -> None:
    """Refuse to render secrets that cannot sync (validate reports these first)."""
    env = cp.environment
    if env is None:
        return
    found: set[Diagnostic] = set()
    for p in cp.placements:
        found.update(sb.model_problems(p.model))
        for s in p.model.secrets:
            why = sb.secret_problem(s, env, cp.cluster)
            if why:
                found.add(s.where.error(why))
    if found:
        raise CatalogError(found)


def outputs(cp: ClusterPlan) -> Iterator[Output]:
    env = cp.environment
    if env is None:
        return
    _check_cluster(cp)
    yield from store_outputs(cp)
    for p in cp.placements:
        folder = f"models/{p.name}"
        yield from model_store_outputs(cp, p)
        for i in range(len(p.model.secrets)):
            ctx = external_secret_context(cp, p, i)
            yield Output(
                f"{folder}/{file_name('ExternalSecret', ctx['name'])}",
                "secrets/externalsecret.yaml.j2",
                ctx,
                p.input_hash,
            )
        if env.config:
            yield Output(
                f"{folder}/{file_name('ConfigMap', names.ENV_CONFIGMAP)}",
                "secrets/configmap-environment.yaml.j2",
                {
                    "name": names.ENV_CONFIGMAP,
                    "namespace": p.namespace,
                    "labels": p.labels,
                    "data": dict(sorted(env.config.items())),
                },
                p.input_hash,
            )
