"""`llmgen status`: what is live on each cluster, through the Kubernetes API.

For every cluster of the catalog (or the selected ones) this connects with
the cluster's `kubeContext` from the kubeconfig and reads, without writing
anything:

- Flux Kustomizations and HelmReleases, ready or not, with the reason and
  message of their Ready condition;
- each model's Deployments, or a multi-node model's LeaderWorkerSet (found by
  the `llmgen.io/model` label), and their
  ready replicas against the bounds of the KEDA ScaledObject that scales them,
  beside the state of the model's own Flux Kustomization (`model-<model>`:
  one per model, so one model's failed apply or health check shows on that
  model alone);
- the Git revision the cluster applied (Kustomization
  `status.lastAppliedRevision`) against the repository's HEAD.

A cluster that cannot be reached is reported as such; it never stops the
others. Clusters are queried in parallel, each with its own API client.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from llmgen.errors import LlmgenError
from llmgen.gitops.syncstatus import SyncStatus, read_sync_objects, sync_statuses
from llmgen.plan.build import ClusterPlan, Placement, build_plan
from llmgen.render.concerns.flux import FLUX_NAMESPACE, layer_name, layers_of
from llmgen.render.pipeline import checked_catalog, select_clusters
from llmgen.render.types import INFRA_LAYERS, model_layer, weights_layer

MANAGED = "app.kubernetes.io/managed-by=llmgen"
MODEL_LABEL = "llmgen.io/model"
#: (connect, read) seconds per API call: a dead API server must not hang the report
TIMEOUT = (5.0, 20.0)
_SHA = re.compile(r"\b([0-9a-f]{40})\b")
# The client's loader is untyped; one typed handle keeps mypy strict elsewhere.
_load_kube_config: Callable[..., None] = k8s_config.load_kube_config


@dataclass(frozen=True)
class FluxObject:
    """One Flux Kustomization or HelmRelease and its Ready condition."""

    kind: str
    namespace: str
    name: str
    ready: bool | None  # None: no Ready condition reported yet
    reason: str = ""
    message: str = ""
    suspended: bool = False
    revision: str | None = None  # Kustomizations: status.lastAppliedRevision
    managed: bool = False  # rendered by llmgen (label app.kubernetes.io/managed-by)

    @property
    def state(self) -> str:
        if self.suspended:
            return "suspended"
        if self.ready is None:
            return "unknown"
        return "ready" if self.ready else "not ready"


@dataclass(frozen=True)
class ModelStatus:
    """One workload of a model (a Deployment, or a multi-node model's
    LeaderWorkerSet): ready replicas against its autoscaler's bounds."""

    model: str
    namespace: str
    deployment: str
    state: str  # ready | scaled to zero | degraded | missing | stopped
    ready_replicas: int = 0
    replicas: int = 0
    min_replicas: int | None = None
    max_replicas: int | None = None
    scaled_object: str | None = None
    #: the model's Flux Kustomization and its state (`FluxObject.state`), with
    #: the reason when it is not ready
    kustomization: str = ""
    kustomization_state: str = ""
    kustomization_detail: str = ""
    #: the workload's kind: Deployment, or LeaderWorkerSet for a multi-node model
    kind: str = "Deployment"

    @property
    def ok(self) -> bool:
        return self.state in ("ready", "scaled to zero", "stopped")


@dataclass
class ClusterStatus:
    """Everything `status` learned about one cluster, or why it could not."""

    cluster: str
    environment: str
    context: str
    stopped: bool = False
    error: str | None = None
    flux: list[FluxObject] = field(default_factory=list)
    models: list[ModelStatus] = field(default_factory=list)
    #: weights sync Jobs (a cloud's sync cluster only)
    weights: list[SyncStatus] = field(default_factory=list)
    revision: str | None = None  # the commit the llmgen Kustomizations applied
    revision_state: str = "unknown"  # current | behind N commits | differs | mixed | unknown

    @property
    def reachable(self) -> bool:
        return self.error is None

    @property
    def ok(self) -> bool:
        return (
            self.reachable
            and all(f.ready is True or f.suspended for f in self.flux)
            and all(m.ok for m in self.models)
            and all(w.ok for w in self.weights)
        )

    @property
    def state(self) -> str:
        if not self.reachable:
            return "unreachable"
        if not self.ok:
            return "not ready"
        return "stopped" if self.stopped else "ready"


@dataclass
class StatusReport:
    head: str | None
    clusters: list[ClusterStatus]

    @property
    def ok(self) -> bool:
        """True when every cluster was reached and everything on it is ready."""
        return all(c.ok for c in self.clusters)


# ------------------------------------------------------------------ reading


def _ready(obj: dict[str, Any]) -> tuple[bool | None, str, str]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            status = cond.get("status")
            ready = True if status == "True" else False if status == "False" else None
            return ready, str(cond.get("reason", "")), str(cond.get("message", ""))
    return None, "", ""


def flux_object(kind: str, obj: dict[str, Any]) -> FluxObject:
    """A Flux custom resource, as returned by the API, reduced to what status shows."""
    meta = obj.get("metadata") or {}
    ready, reason, message = _ready(obj)
    labels = meta.get("labels") or {}
    return FluxObject(
        kind,
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
        ready,
        reason,
        message,
        bool((obj.get("spec") or {}).get("suspend", False)),
        (obj.get("status") or {}).get("lastAppliedRevision"),
        labels.get("app.kubernetes.io/managed-by") == "llmgen",
    )


def model_statuses(
    placements: Iterable[Placement],
    deployments: list[dict[str, Any]],
    scaled_objects: list[dict[str, Any]],
    stopped: bool,
    flux: Iterable[FluxObject] = (),
) -> list[ModelStatus]:
    """Each planned model's Deployments, judged against their ScaledObject's bounds.

    Deployments are matched by their model label, so a canary Deployment is
    reported beside the main one. Without a ScaledObject the plan's minimum
    stands in for the bound.
    """
    scalers = {
        (
            so["metadata"].get("namespace", ""),
            (so.get("spec") or {}).get("scaleTargetRef", {}).get("name"),
        ): so
        for so in scaled_objects
    }
    kustomizations = {
        f.name: f for f in flux if f.kind == "Kustomization" and f.namespace == FLUX_NAMESPACE
    }
    out: list[ModelStatus] = []
    for p in placements:
        ks_name = layer_name(model_layer(p.model.name))
        ks = kustomizations.get(ks_name)
        ks_state = ks.state if ks else "absent"
        ks_detail = f"{ks.reason}: {ks.message}" if ks and ks.reason else ""
        mine = [
            d
            for d in deployments
            if (d["metadata"].get("labels") or {}).get(MODEL_LABEL) == p.model.name
            and d["metadata"].get("namespace") == p.namespace
        ]
        # Found objects carry their kind (the API serves it on every custom
        # resource); a missing one is named by what the plan renders for it.
        planned_kind = "LeaderWorkerSet" if p.model.multi_node else "Deployment"
        if not mine:
            state = "stopped" if stopped else "missing"
            out.append(
                ModelStatus(
                    p.model.name,
                    p.namespace,
                    p.name,
                    state,
                    min_replicas=p.min_replicas,
                    max_replicas=p.max_replicas,
                    kustomization=ks_name,
                    kustomization_state=ks_state,
                    kustomization_detail=ks_detail,
                    kind=planned_kind,
                )
            )
            continue
        for d in sorted(mine, key=lambda d: str(d["metadata"]["name"])):
            name = str(d["metadata"]["name"])
            status = d.get("status") or {}
            ready = int(status.get("readyReplicas") or 0)
            so = scalers.get((p.namespace, name))
            spec = (so or {}).get("spec") or {}
            # KEDA's defaults: minReplicaCount 0, maxReplicaCount 100.
            lo = int(spec.get("minReplicaCount", 0)) if so else p.min_replicas
            hi = int(spec.get("maxReplicaCount", 100)) if so else p.max_replicas
            if stopped:
                state = "stopped"
            elif ready >= max(lo, 1):
                state = "ready"
            elif lo == 0 and ready == 0:
                state = "scaled to zero"
            else:
                state = "degraded"
            out.append(
                ModelStatus(
                    p.model.name,
                    p.namespace,
                    name,
                    state,
                    ready,
                    int(status.get("replicas") or 0),
                    lo,
                    hi,
                    so["metadata"]["name"] if so else None,
                    ks_name,
                    ks_state,
                    ks_detail,
                    str(d.get("kind") or planned_kind),
                )
            )
    return out


def _items(result: Any) -> list[dict[str, Any]]:
    return list((result or {}).get("items") or [])


def _list_custom(
    api: k8s.CustomObjectsApi, group: str, version: str, plural: str, selector: str | None = None
) -> list[dict[str, Any]] | None:
    """All objects of a custom kind; None when its CRD is not installed (404)."""
    kwargs: dict[str, Any] = {"_request_timeout": TIMEOUT}
    if selector:
        kwargs["label_selector"] = selector
    try:
        return _items(api.list_cluster_custom_object(group, version, plural, **kwargs))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"API error {exc.status} {exc.reason}".strip()
    # urllib3 wraps the socket error; its reason is the part people act on.
    reason = getattr(exc, "reason", None)
    text = str(reason or exc) or type(exc).__name__
    return text.splitlines()[0][:300]


def query_cluster(cp: ClusterPlan, kubeconfig: str) -> ClusterStatus:
    """Read one cluster's Flux objects and model Deployments; never raises for I/O."""
    env = cp.environment
    stopped = bool(env and (env.suspended or cp.name in getattr(env, "suspended_clusters", ())))
    result = ClusterStatus(cp.name, cp.env_name, cp.cluster.kube_context, stopped=stopped)
    cfg = k8s.Configuration()
    try:
        _load_kube_config(
            config_file=kubeconfig,
            context=cp.cluster.kube_context,
            client_configuration=cfg,
            persist_config=False,
        )
    except (k8s_config.ConfigException, OSError, ValueError) as exc:
        text = _error_text(exc)
        if "Expected object with name" in text:
            text = f"no context {cp.cluster.kube_context!r}"
        result.error = f"kubeconfig: {text}"
        return result
    cfg.retries = 0  # an unreachable server is reported at once, not after retries
    try:
        with k8s.ApiClient(cfg) as api_client:
            custom = k8s.CustomObjectsApi(api_client)
            kustomizations = _list_custom(
                custom, "kustomize.toolkit.fluxcd.io", "v1", "kustomizations"
            )
            releases = _list_custom(custom, "helm.toolkit.fluxcd.io", "v2", "helmreleases")
            deployments = api_client.sanitize_for_serialization(
                k8s.AppsV1Api(api_client).list_deployment_for_all_namespaces(
                    label_selector=MANAGED, _request_timeout=TIMEOUT
                )
            )
            scaled = _list_custom(custom, "keda.sh", "v1alpha1", "scaledobjects", MANAGED)
            # A multi-node model's groups: a LeaderWorkerSet reports readyReplicas and
            # replicas (in groups) as a Deployment does (lws v0.10.0 LeaderWorkerSetStatus).
            groups = (
                _list_custom(custom, "leaderworkerset.x-k8s.io", "v1", "leaderworkersets", MANAGED)
                if any(p.model.multi_node for p in cp.placements)
                else None
            )
            if cp.mirror_items:
                jobs, pods = read_sync_objects(api_client, TIMEOUT)
                result.weights = sync_statuses(cp.mirror_items, jobs, pods)
    except (ApiException, HTTPError, OSError) as exc:
        result.error = _error_text(exc)
        return result
    expected = [
        *layers_of(cp),
        *(model_layer(p.model.name) for p in cp.placements),
        *sorted({weights_layer(i.model.name) for i in cp.mirror_items if i.commit}),
    ]
    result.flux = flux_objects(kustomizations, releases, expected)
    # The typed Deployment list leaves its items' kind unset: name each kind here.
    workloads = [
        *({**d, "kind": "Deployment"} for d in _items(deployments)),
        *({**g, "kind": "LeaderWorkerSet"} for g in groups or []),
    ]
    result.models = model_statuses(cp.placements, workloads, scaled or [], stopped, result.flux)
    return result


def flux_objects(
    kustomizations: list[dict[str, Any]] | None,
    releases: list[dict[str, Any]] | None,
    layers: Iterable[str] = INFRA_LAYERS,
) -> list[FluxObject]:
    """Flux objects as found, plus a not-ready entry for each one llmgen renders but is absent.

    `None` means the kind's CRD is not installed. A missing layer
    Kustomization means the cluster never synced llmgen's folder, which an
    empty list would otherwise hide.
    """
    found = [flux_object("Kustomization", o) for o in kustomizations or []]
    found += [flux_object("HelmRelease", o) for o in releases or []]
    for kind, items, api in (
        ("Kustomization", kustomizations, "kustomize.toolkit.fluxcd.io/v1"),
        ("HelmRelease", releases, "helm.toolkit.fluxcd.io/v2"),
    ):
        if items is None:
            found.append(
                FluxObject(kind, "", "*", False, "NotInstalled", f"the API serves no {api}")
            )
    have = {(f.namespace, f.name) for f in found if f.kind == "Kustomization"}
    if kustomizations is not None:
        for layer in layers:
            key = (FLUX_NAMESPACE, layer_name(layer))
            if key not in have:
                found.append(
                    FluxObject(
                        "Kustomization",
                        *key,
                        False,
                        "NotFound",
                        "llmgen renders this layer, but the cluster has not created it",
                        managed=True,
                    )
                )
    return sorted(found, key=lambda f: (f.kind != "Kustomization", f.namespace, f.name))


def revision_state(
    flux: list[FluxObject], head: str | None, repo: git.Repo | None
) -> tuple[str | None, str]:
    """The commit llmgen's Kustomizations applied, and how it relates to HEAD."""
    applied = {
        m.group(1)
        for f in flux
        if f.kind == "Kustomization" and f.managed and f.revision
        for m in [_SHA.search(f.revision)]
        if m
    }
    if not applied:
        return None, "unknown"
    if len(applied) > 1:
        return ",".join(sorted(applied)), "mixed"
    sha = applied.pop()
    if head is None:
        return sha, "unknown"
    if sha == head:
        return sha, "current"
    if repo is not None:
        try:
            if repo.is_ancestor(repo.commit(sha), repo.commit(head)):
                n = int(repo.git.rev_list("--count", f"{sha}..{head}"))
                return sha, f"behind {n} commit{'s' if n != 1 else ''}"
        except (git.BadName, git.GitCommandError, ValueError):
            pass  # a commit we do not have: someone pushed since our last fetch
    return sha, "differs"


# ------------------------------------------------------------------ entry


def default_kubeconfig(explicit: Path | None) -> str:
    """--kubeconfig, else $KUBECONFIG (a path list), else ~/.kube/config."""
    if explicit is not None:
        if not explicit.is_file():
            raise LlmgenError(f"kubeconfig {explicit} does not exist")
        return str(explicit)
    env = os.environ.get("KUBECONFIG")
    if env:
        return env
    path = Path.home() / ".kube" / "config"
    if not path.is_file():
        raise LlmgenError("no kubeconfig: set KUBECONFIG or pass --kubeconfig")
    return str(path)


def status(
    root: Path,
    envs: list[str] | None = None,
    clusters: list[str] | None = None,
    kubeconfig: Path | None = None,
    workers: int = 8,
) -> StatusReport:
    """Query every selected cluster of the catalog; unreachable ones are reported, not raised."""
    catalog, _warnings = checked_catalog(root)
    plan = build_plan(catalog)
    selected = select_clusters(plan, envs, clusters)
    names = selected if selected is not None else sorted(plan.clusters)
    config = default_kubeconfig(kubeconfig)
    repo: git.Repo | None
    try:
        repo = git.Repo(root, search_parent_directories=True)
        head: str | None = repo.head.commit.hexsha
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        repo, head = None, None
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names)))) as pool:
        found = list(pool.map(lambda n: query_cluster(plan.clusters[n], config), names))
    for c in found:  # git work stays on this thread: a Repo is not thread-safe
        if c.reachable:
            c.revision, c.revision_state = revision_state(c.flux, head, repo)
    return StatusReport(head, found)
