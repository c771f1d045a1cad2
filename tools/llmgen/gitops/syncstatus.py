"""Weights sync progress for `llmgen status`: the sync Jobs of a cloud's sync cluster.

Each revision the cluster's mirror must hold (`ClusterPlan.mirror_items`) has
one Job, named by `render.concerns.weightsync.job_name`. Its state comes from
the Job's conditions (Complete, Failed) and counters; while it runs, the step
its pod is in says how far it got: `download` (from the hub), `manifest`
(hashing), `upload` (into the bucket). A Job the plan expects but the cluster
does not have is `missing` (its layer has not synced yet).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from llmgen.catalog.names import WEIGHTS_NAMESPACE
from llmgen.plan.mirror import MirrorItem
from llmgen.render.concerns.weightsync import COMPONENT, job_name

#: selects the sync Jobs and their pods
SELECTOR = f"app.kubernetes.io/component={COMPONENT}"
#: the label the Job controller puts on a Job's pods (Kubernetes >= 1.27)
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


@dataclass(frozen=True)
class SyncStatus:
    """One revision's sync Job as the cluster reports it."""

    job: str
    model: str
    revision: str
    uri: str
    state: str  # complete | running | pending | failed | missing
    step: str = ""  # while running: download | manifest | upload
    failed_pods: int = 0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.state not in ("failed", "missing")


def read_sync_objects(
    api_client: Any, timeout: tuple[float, float]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The sync Jobs and their pods in the weights namespace, as plain data."""
    from kubernetes import client as k8s

    kw: dict[str, Any] = {"label_selector": SELECTOR, "_request_timeout": timeout}
    jobs = k8s.BatchV1Api(api_client).list_namespaced_job(WEIGHTS_NAMESPACE, **kw)
    pods = k8s.CoreV1Api(api_client).list_namespaced_pod(WEIGHTS_NAMESPACE, **kw)
    return (
        list((api_client.sanitize_for_serialization(jobs) or {}).get("items") or []),
        list((api_client.sanitize_for_serialization(pods) or {}).get("items") or []),
    )


def _condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return dict(cond)
    return None


def current_step(pod: dict[str, Any]) -> str:
    """The first container of the pod (init containers first) that has not finished."""
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for c in status.get(key) or []:
            terminated = (c.get("state") or {}).get("terminated")
            if not terminated or terminated.get("exitCode") != 0:
                return str(c.get("name", ""))
    return ""


def sync_statuses(
    items: Iterable[MirrorItem], jobs: list[dict[str, Any]], pods: list[dict[str, Any]]
) -> list[SyncStatus]:
    """Each planned sync against the Jobs and pods found in the sync namespace."""
    by_name = {str(j["metadata"]["name"]): j for j in jobs}
    newest: dict[str, dict[str, Any]] = {}
    for pod in pods:
        owner = ((pod.get("metadata") or {}).get("labels") or {}).get(JOB_NAME_LABEL)
        stamp = str((pod.get("metadata") or {}).get("creationTimestamp") or "")
        if owner and stamp >= str(
            ((newest.get(owner) or {}).get("metadata") or {}).get("creationTimestamp") or ""
        ):
            newest[owner] = pod
    return [_one(i, by_name.get(job_name(i)), newest.get(job_name(i))) for i in items if i.commit]


def _one(item: MirrorItem, job: dict[str, Any] | None, pod: dict[str, Any] | None) -> SyncStatus:
    """One revision's sync (branches are never synced; validate warns about them)."""

    def found(state: str, step: str = "", failed: int = 0, message: str = "") -> SyncStatus:
        name = job_name(item)
        return SyncStatus(
            name, item.model.name, item.revision, item.uri, state, step, failed, message
        )

    if job is None:
        return found("missing", message="no Job in the cluster")
    status: dict[str, Any] = job.get("status") or {}
    failed = int(status.get("failed") or 0)
    if _condition(job, "Complete"):
        return found("complete", failed=failed)
    cond = _condition(job, "Failed")
    if cond is not None:
        why = f"{cond.get('reason', '')}: {cond.get('message', '')}".strip(": ")
        return found("failed", failed=failed, message=why)
    step = current_step(pod) if pod is not None else ""
    state = "running" if int(status.get("active") or 0) else "pending"
    return found(state, step, failed)
