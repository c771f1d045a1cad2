"""How catalog names become Kubernetes object names.

Every derived name is built here, so the rule "names stay <= 63 characters
after prefixing" (validate) and the names the templates use (plan) cannot
drift apart. The longest prefix/suffix that anything adds to a name decides
how long that catalog name may be.
"""

from __future__ import annotations

MAX_NAME = 63

#: Names a model or add-on cannot take: its bundle `<layer>/<name>.yaml` would
#: be the layer's own `kustomization.yaml` (see render/engine.py _bundle_path).
RESERVED = frozenset({"kustomization"})

# KEDA names the HPA it creates `keda-hpa-<scaledobject>`; the canary
# Deployment of a model is `<model>-canary`. Both must fit in a label value.
KEDA_HPA_PREFIX = "keda-hpa-"
CANARY_SUFFIX = "-canary"
NAMESPACE_PREFIX = "llm-"
REMOTE_SECRET_PREFIX = "istio-remote-secret-"
NODEPOOL_PREFIX = "gpu-"


def model_namespace(model: str) -> str:
    """Each model runs in its own namespace: isolation, quotas and default-deny per team."""
    return f"{NAMESPACE_PREFIX}{model}"


def canary_name(model: str) -> str:
    return f"{model}{CANARY_SUFFIX}"


def nodepool_name(pool: str) -> str:
    return f"{NODEPOOL_PREFIX}{pool}"


def remote_secret_name(cluster: str) -> str:
    return f"{REMOTE_SECRET_PREFIX}{cluster}"


#: where the weights sync Jobs run, on each cloud's sync cluster (not `llm-*`, so
#: no model name can collide with it)
WEIGHTS_NAMESPACE = "llmgen-weights"

#: the ConfigMap of non-secret environment settings in every model namespace
ENV_CONFIGMAP = "llmgen-environment"


def short_identity(name: str, max_len: int, min_len: int = 1) -> str:
    """A cloud identity name for `name` within [min_len, max_len] characters.

    A name that fits is kept as it is (existing IAM bindings stay valid);
    a longer one keeps its head and ends in 8 hex digits of its SHA-256, and a
    shorter one gains them, so two names never share an identity the way
    plain truncation made them (`...-finetune-a`, `...-finetune-b`).
    """
    if min_len <= len(name) <= max_len:
        return name
    import hashlib

    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    head = name[: max_len - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}"


def secret_name(model: str, env_var: str) -> str:
    """The Kubernetes Secret an ExternalSecret creates for one model secret.

    Named after the environment variable it feeds (unique per model), e.g.
    `HF_TOKEN` -> `<model>-hf-token`; too long a name is shortened with a
    stable hash so it stays a valid 63-character name.
    """
    slug = env_var.lower().replace("_", "-").strip("-")
    name = f"{model}-{slug}"
    if len(name) <= MAX_NAME:
        return name
    import hashlib

    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9].rstrip('-')}-{digest}"


def longest_derived(kind: str, name: str) -> tuple[str, int]:
    """The longest object name derived from a catalog name of `kind`, and its length."""
    derived = {
        "Model": [
            f"{KEDA_HPA_PREFIX}{canary_name(name)}",
            model_namespace(name),
        ],
        "Cluster": [remote_secret_name(name)],
        "NodePool": [nodepool_name(name)],
    }.get(kind, [name])
    longest = max(derived, key=len)
    return longest, len(longest)


def max_length(kind: str) -> int:
    """How long a catalog name of `kind` may be so every derived name fits."""
    _, extra = longest_derived(kind, "")
    return MAX_NAME - extra
