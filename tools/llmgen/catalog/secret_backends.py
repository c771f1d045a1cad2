"""Secret backends: which one each model secret reads from, and where in it.

Pure decisions shared by the secrets concern (what ESO is told to fetch) and
`llmgen secrets check` (what must exist), so the two can never disagree:

- `backend_for`: the store a secret reads from in a cluster on a given cloud;
- `cluster_backends`: the ClusterSecretStores a cluster gets;
- `remote_ref`: the key/property ESO reads, and the same place for the check;
- `secret_problem` / `model_problems`: why a secret cannot work; the
  validate rules (`rules_policy`) and the secrets concern both ask these.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmgen.catalog import names
from llmgen.errors import Diagnostic

if TYPE_CHECKING:
    from llmgen.catalog.model import Cluster, Environment, Model, ModelSecret

#: every backend llmgen knows, in the order stores are rendered and checked
BACKENDS = ("vault", "aws", "gcp")
STORE_PREFIX = "llmgen-"

# The External Secrets controller as the platform add-on installs it (Helm
# release `external-secrets` in namespace `external-secrets`; the chart names
# its ServiceAccount after the release). Vault and GCP stores authenticate as it.
ESO_NAMESPACE = "external-secrets"
ESO_SERVICE_ACCOUNT = "external-secrets"
# ESO's AWS `jwt` auth reads the IAM role from the referenced ServiceAccount's
# `eks.amazonaws.com/role-arn` annotation, so the environment's roleArn needs a
# ServiceAccount of its own; llmgen renders it beside the store.
AWS_SERVICE_ACCOUNT = "llmgen-aws-secrets"
# Namespaces allowed to use llmgen's ClusterSecretStores: the model namespaces
# (`llm-<model>`), istio-system (remote-cluster secrets of the mesh) and the
# weights sync namespace (the hub token of the sync Jobs).
STORE_NAMESPACE_REGEX = f"^{names.NAMESPACE_PREFIX}[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
STORE_NAMESPACES = ("istio-system", names.WEIGHTS_NAMESPACE)
# GCP Secret Manager IDs allow only letters, digits, '_' and '-'.
_GCP_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
#: the GCP key that means "the whole payload" rather than a JSON property
GCP_WHOLE_VALUE_KEY = "value"


def store_name(backend: str) -> str:
    """`vault` -> `llmgen-vault`: the ClusterSecretStore of that backend."""
    return f"{STORE_PREFIX}{backend}"


def store_backend(store: str) -> str:
    """`llmgen-vault` -> `vault`: the backend a rendered `secretStoreRef` names."""
    backend = store.removeprefix(STORE_PREFIX)
    if store == backend or backend not in BACKENDS:
        raise ValueError(f"{store!r} is not an llmgen ClusterSecretStore")
    return backend


def usable_on(backend: str, cloud: str) -> bool:
    """Vault is reachable from any cloud; a cloud's secret manager only from its own
    clusters (IRSA and GKE Workload Identity do not cross clouds)."""
    return backend == "vault" or backend == cloud


def default_backend(env: Environment, cloud: str) -> str | None:
    """The cluster's cloud-native store if the environment configures it, else vault."""
    if cloud in env.secret_stores:
        return cloud
    if "vault" in env.secret_stores:
        return "vault"
    return None


def backend_for(secret: ModelSecret, env: Environment, cloud: str) -> str | None:
    """The backend `secret` reads from on a cluster of `cloud` (None: nothing fits)."""
    return secret.store or default_backend(env, cloud)


def cluster_backends(env: Environment, cloud: str, used: Iterable[str | None]) -> list[str]:
    """The ClusterSecretStores a cluster of `env` on `cloud` gets: the backends
    of `used` (what its ClusterSecretStore consumers read) it can use.

    The only consumers are the weights sync Jobs' hub-token ExternalSecrets
    (render/concerns/weightsync.py): model secrets read namespaced
    SecretStores of their own, the mesh its own `llmgen-mesh` store. A
    backend nothing on the cluster reads gets no store (review D21: an
    unused credential path).
    """
    wanted = set(used)
    return [b for b in BACKENDS if b in wanted and b in env.secret_stores and usable_on(b, cloud)]


def refresh_interval(secret: ModelSecret, env: Environment) -> str:
    """Rotation: the secret's own refreshInterval, else the environment's."""
    return secret.refresh_interval or env.secret_refresh_interval


def vault_mount(path: str) -> tuple[str, str]:
    """`llm/prod` -> (`llm`, `prod`): the KV v2 mount is the first segment, the rest a prefix."""
    mount, _, prefix = path.strip("/").partition("/")
    return mount, prefix


def gcp_secret_id(name: str) -> str:
    """`llm-serving/hf-token` -> `llm-serving_hf-token` (GCP IDs allow no '/' or '.')."""
    return _GCP_ID_UNSAFE.sub("_", name)


@dataclass(frozen=True)
class RemoteRef:
    """Where one model secret lives in its backend."""

    backend: str
    key: str  # ESO remoteRef.key (for vault: relative to the store's mount)
    property: str | None  # ESO remoteRef.property; None means the whole value
    where: str  # human-readable place, for messages: "vault at llm/prod/x"


def remote_ref(secret: ModelSecret, env: Environment, backend: str) -> RemoteRef:
    """The remote reference of `secret` in `backend` as `env` configures it."""
    settings: dict[str, Any] = env.secret_stores.get(backend, {})
    if backend == "vault":
        _mount, prefix = vault_mount(str(settings.get("path", "")))
        key = f"{prefix}/{secret.name}" if prefix else secret.name
        return RemoteRef(backend, key, secret.key, place(env, backend, key))
    if backend == "aws":
        return RemoteRef(backend, secret.name, secret.key, place(env, backend, secret.name))
    if backend == "gcp":
        sid = gcp_secret_id(secret.name)
        prop = None if secret.key == GCP_WHOLE_VALUE_KEY else secret.key
        return RemoteRef(backend, sid, prop, place(env, backend, sid))
    raise ValueError(f"unknown secret backend {backend!r}")


def place(env: Environment, backend: str, key: str) -> str:
    """Where remote key `key` (an ESO `remoteRef.key`) lives, for messages:
    `vault at llm/prod/x`, `aws secretsmanager (us-east-1) at x`, ..."""
    settings: dict[str, Any] = env.secret_stores.get(backend, {})
    if backend == "vault":
        mount, _prefix = vault_mount(str(settings.get("path", "")))
        return f"vault at {mount}/{key}"
    if backend == "aws":
        return f"aws secretsmanager ({settings.get('region', '')}) at {key}"
    if backend == "gcp":
        return f"gcp secretmanager at projects/{settings.get('projectID', '')}/secrets/{key}"
    raise ValueError(f"unknown secret backend {backend!r}")


# ------------------------------------------------------------------ problems


def secret_problem(secret: ModelSecret, env: Environment, cluster: Cluster) -> str | None:
    """Why `secret` cannot be synced on `cluster` of `env`, or None if it can."""
    backend = backend_for(secret, env, cluster.cloud)
    if backend is None:
        return (
            f"environment {env.name!r} configures no secret store usable from {cluster.cloud} "
            f"cluster {cluster.name!r}; add spec.secretStores.{cluster.cloud} or .vault"
        )
    if backend not in env.secret_stores:
        configured = ", ".join(sorted(env.secret_stores)) or "none"
        return (
            f"secret {secret.name!r} reads from store {backend!r}, which environment "
            f"{env.name!r} does not configure (it configures: {configured})"
        )
    if not usable_on(backend, cluster.cloud):
        return (
            f"secret {secret.name!r} reads from the {backend} store, which cluster "
            f"{cluster.name!r} ({cluster.cloud}, environment {env.name!r}) cannot use; "
            f"use 'vault' or '{cluster.cloud}'"
        )
    return None


def model_problems(model: Model) -> Iterator[Diagnostic]:
    """Secrets of one model that would render two objects with the same name."""
    seen: dict[str, int] = {}
    for i, s in enumerate(model.secrets):
        obj = names.secret_name(model.name, s.env)
        if obj in seen:
            yield s.where.error(
                f"env {s.env!r} maps to Secret {obj!r}, like spec.secrets[{seen[obj]}]; "
                "each secret needs its own environment variable"
            )
        else:
            seen[obj] = i


def model_vault_role(role: str, model: str) -> str:
    """The Vault Kubernetes-auth role one model's SecretStore logs in with.

    One role per model (bound to the model's ServiceAccount and namespace,
    with a policy for that model's paths): `<environment role>-<model>`.
    """
    return f"{role}-{model}"


def vault_auth_mount(cluster: Cluster) -> str:
    """Vault's Kubernetes auth mount for `cluster`: one per cluster, because a mount
    verifies tokens against a single API server (`kubernetes_host`)."""
    return f"kubernetes-{cluster.name}"


def aws_store_region(settings: Mapping[str, Any], cluster: Cluster) -> str:
    """The Secrets Manager region a cluster's stores read: its own region where
    the secrets are replicated (`replicaRegions`; a replica keeps the secret's
    name), else the secrets' primary `region`."""
    own = cluster.region if cluster.cloud == "aws" else ""
    if own and own in settings.get("replicaRegions", ()):
        return own
    return str(settings["region"])


def store_connection(
    backend: str, settings: Mapping[str, Any], cluster: Cluster, vault_role: str
) -> dict[str, Any]:
    """Where a store of `backend` on `cluster` connects, as the secret store
    templates read it: Vault's server, KV mount, Kubernetes auth mount and
    `vault_role`; Secrets Manager's region; Secret Manager's project and the
    cluster's workload identity coordinates. Every store llmgen renders (a
    model's SecretStore, the shared and the mesh ClusterSecretStores) uses it."""
    if backend == "vault":
        mount, _prefix = vault_mount(str(settings["path"]))
        return {
            "server": settings["server"],
            "mount": mount,
            "auth_mount": vault_auth_mount(cluster),
            "role": vault_role,
        }
    if backend == "aws":
        return {"region": aws_store_region(settings, cluster)}
    return {
        "project": settings["projectID"],
        "cluster_location": cluster.region,
        "cluster_name": cluster.name,
        "cluster_project": cluster.cloud_settings.get("projectID", settings["projectID"]),
    }
