"""`llmgen bootstrap CLUSTER`: the sync object Flux's bootstrap path needs.

Flux is bootstrapped at `clusters/<cluster>` (outside generated/, which
llmgen owns and rewrites whole): `flux bootstrap … --path=clusters/<cluster>`
commits `clusters/<cluster>/flux-system/` (Flux's components, the
`flux-system` GitRepository with the secret it made, and the `flux-system`
Kustomization applying `./clusters/<cluster>`). This writes the one file
beside it that llmgen needs, `clusters/<cluster>/llmgen.yaml`: a Flux
Kustomization applying `./generated/clusters/<cluster>` (the layer and model
Kustomizations) from that same GitRepository. render, render --check and
commit never read or write anything under clusters/.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmgen.errors import UsageError
from llmgen.render.concerns.flux import FLUX_NAMESPACE, ROOT_NAME, SOURCE_NAME
from llmgen.render.pipeline import checked_catalog
from llmgen.render.yamltext import scalar

BOOTSTRAP_DIR = "clusters"
#: Flux 2.7 serves every API llmgen renders: kustomize.toolkit.fluxcd.io/v1
#: with dependsOn readyExpr-capable references and healthCheckExprs (2.5+),
#: source.toolkit.fluxcd.io/v1 OCIRepository (2.6+), HelmRelease chartRef (2.3+).
MIN_FLUX_VERSION = "2.7.0"


@dataclass(frozen=True)
class Bootstrap:
    path: str  # repo-relative
    written: bool  # False: already there, identical
    commands: tuple[str, ...]


def sync_object(cluster: str) -> str:
    return (
        f"# Written by `llmgen bootstrap {cluster}`; edit freely, llmgen never rewrites it.\n"
        "# Flux (bootstrapped at this folder) applies llmgen's rendered folder for this\n"
        "# cluster: one Kustomization per layer and per model, ordered by dependsOn.\n"
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\n"
        "kind: Kustomization\n"
        "metadata:\n"
        f"  name: {scalar(ROOT_NAME)}\n"
        f"  namespace: {scalar(FLUX_NAMESPACE)}\n"
        "spec:\n"
        "  interval: 10m\n"
        "  retryInterval: 1m\n"
        "  timeout: 5m\n"
        "  sourceRef:\n"
        "    kind: GitRepository\n"
        f"    name: {scalar(SOURCE_NAME)}\n"
        f"  path: {scalar(f'./generated/clusters/{cluster}')}\n"
        "  prune: true\n"
        # The objects here are Kustomizations, each with its own health.
        "  wait: false\n"
    )


def flux_commands(cluster: str, url: str, branch: str) -> tuple[str, ...]:
    """What to run next (README "Bootstrap a cluster" has the per-cloud prerequisites)."""
    path = f"--path={BOOTSTRAP_DIR}/{cluster}"
    context = "kubectl config use-context <the cluster's kubeContext>"
    return (
        context,
        f"flux check --pre   # Flux >= {MIN_FLUX_VERSION}",
        f"flux bootstrap git --url={url} --branch={branch} {path} --private-key-file=<key>",
        f"# or, with an HTTPS token: flux bootstrap git --url=<https url> --branch={branch} "
        f"{path} --token-auth --password=<token>",
        f"git add {BOOTSTRAP_DIR}/{cluster}/llmgen.yaml && git commit && git push",
    )


def bootstrap(root: Path, cluster: str) -> Bootstrap:
    """Write clusters/<cluster>/llmgen.yaml unless it is already there."""
    catalog, _warnings = checked_catalog(root)
    if cluster not in catalog.clusters:
        known = ", ".join(sorted(catalog.clusters)) or "none"
        raise UsageError(f"no cluster {cluster!r} in catalog/clusters/ (known: {known})")
    rel = f"{BOOTSTRAP_DIR}/{cluster}/llmgen.yaml"
    target = root / rel
    text = sync_object(cluster)
    platform = catalog.platform
    commands = flux_commands(
        cluster,
        platform.git_url if platform else "<repository url>",
        platform.git_branch if platform else "main",
    )
    if target.exists():
        if target.read_text() == text:
            return Bootstrap(rel, False, commands)
        raise UsageError(f"{rel} exists and differs from what llmgen writes; leaving it as it is")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return Bootstrap(rel, True, commands)
