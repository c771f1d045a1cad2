"""Multi-node replicas: a LeaderWorkerSet group per replica (`resources.nodes` > 1).

A model whose weights do not fit one node runs as groups of `nodes` pods,
one per node: tensor parallel over each node's GPUs, pipeline parallel
across the nodes. Everything here is read against the pinned versions:

- kubernetes-sigs/lws v0.10.0 (the controller the `leaderworkerset` add-on
  installs; api/leaderworkerset/v1/leaderworkerset_types.go, pkg/controllers,
  pkg/webhooks/pod_webhook.go).
- vLLM v0.11.0's documented multi-node launch with Ray
  (examples/online_serving/multi-node-serving.sh, which the vllm-openai image
  ships under /vllm-workspace/examples, and LWS's own docs/examples/vllm/GPU
  /lws.yaml): the leader starts a Ray head and waits until `LWS_GROUP_SIZE`
  nodes joined, then serves the API; each worker joins the head at
  `LWS_LEADER_ADDRESS`. vLLM's parallelism guide: tensor parallel size = GPUs
  per node, pipeline parallel size = nodes.

Decisions:
- The set is named after the model. The model's Service keeps that name, so
  the set's per-replica headless Services (`subdomainPolicy:
  UniquePerReplica`, named after each leader pod, `<model>-<group>`) never
  meet it; with the default `Shared` policy the controller would find the
  ClusterIP Service `<model>` already there (controller_utils.go
  `CreateHeadlessServiceIfNotExists` only creates when absent) and the pods'
  DNS names would never resolve.
- Only the leader (label `leaderworkerset.sigs.k8s.io/worker-index: "0"`, set
  on the leader StatefulSet's template by the controller; `podutils.LeaderPod`)
  serves HTTP: the Service, PodMonitor and readiness select it.
- `RecreateGroupOnPodRestart`: one lost pod restarts its group (Ray and NCCL
  do not survive a lost rank). `LeaderCreated`: workers start at once, so
  every pod copies its weights in parallel.
- Rolling updates replace one group at a time without a surge group
  (maxUnavailable 1, maxSurge 0, the controller's defaults made explicit):
  a surge would ask for `nodes` more GPU nodes at once.
- Scheduling: one pod of the set per node (required anti-affinity on the
  hostname: node fit and prices count a node per pod), and a group's pods in
  one zone (required affinity on the zone, matching the group's own
  `leaderworkerset.sigs.k8s.io/group-key`, which the webhook puts on the
  leader and the controller on its workers, through `matchLabelKeys`).
- Names: the longest a set derives is its workers' `controller-revision-hash`
  label, `<model>-<group>-<10-char hash>` (a label value, <= 63): 13 more
  than the model name for up to 9 groups, within the 16 that `names`
  already reserves for `keda-hpa-<model>-canary` (multi-node models have no
  canary, catalog/rules_capacity.py `multi_node_canary`).
- The sidecar intercepts only the serving port inbound
  (`traffic.sidecar.istio.io/includeInboundPorts`): Ray's and NCCL's ports
  are dynamic, so they bypass it; a NetworkPolicy lets the set's pods reach
  each other on any port.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from llmgen.render.concerns import vllm

if TYPE_CHECKING:
    from llmgen.plan.build import Placement

#: Labels the LWS controller and its pod webhook set (lws v0.10.0
#: api/leaderworkerset/v1/leaderworkerset_types.go).
SET_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
GROUP_KEY_LABEL = "leaderworkerset.sigs.k8s.io/group-key"
#: vLLM's multi-node helper inside the vllm-openai image.
MULTI_NODE_SCRIPT = "/vllm-workspace/examples/online_serving/multi-node-serving.sh"
#: Istio: inbound ports redirected to the sidecar (empty: none).
INCLUDE_INBOUND = "traffic.sidecar.istio.io/includeInboundPorts"

#: Ray's object store, in /dev/shm (the script passes unknown flags on to
#: `ray start`). Ray's default, 30 % of the container's memory, exceeds the
#: /dev/shm emptyDir, and Ray then puts the store under /tmp, whose emptyDir
#: has a size limit; vLLM moves tensors over NCCL, not through the store.
RAY_OBJECT_STORE_BYTES = 2 * 1024**3

# The numbers reach the shell as positional arguments, never pasted into the
# script text; catalog values are vLLM's arguments ("$@"), never evaluated.
LEADER_SCRIPT = (
    'bash "$0" leader --ray_cluster_size="$LWS_GROUP_SIZE" --ray_init_timeout="$1" '
    '--object-store-memory="$2" --include-dashboard=false '
    '&& shift 2 && exec vllm serve "$@"'
)
WORKER_SCRIPT = (
    'exec bash "$0" worker --ray_address="$LWS_LEADER_ADDRESS" --ray_init_timeout="$1" '
    '--object-store-memory="$2"'
)


def leader_labels(p: Placement) -> dict[str, str]:
    """Labels only a group's leader carries ({} for a single-node model)."""
    return {WORKER_INDEX_LABEL: "0"} if p.model.multi_node else {}


def ray_wait_seconds(cold_start: int) -> int:
    """How long the leader waits for its workers, and workers for the head.

    Every pod copies and verifies the weights before its container starts,
    so the slowest pod may join a whole cold start after the first one.
    """
    return max(300, cold_start)


def leader_command(args: list[str], wait: int) -> list[str]:
    store = str(RAY_OBJECT_STORE_BYTES)
    return ["/bin/sh", "-c", LEADER_SCRIPT, MULTI_NODE_SCRIPT, str(wait), store, *args]


def worker_command(wait: int) -> list[str]:
    store = str(RAY_OBJECT_STORE_BYTES)
    return ["/bin/sh", "-c", WORKER_SCRIPT, MULTI_NODE_SCRIPT, str(wait), store]


def affinity(name: str) -> dict[str, Any]:
    """One pod of the set per node; a group's pods in one zone."""
    of_set = {"matchLabels": {SET_NAME_LABEL: name}}
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": of_set, "topologyKey": "kubernetes.io/hostname"}
            ]
        },
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": of_set,
                    "matchLabelKeys": [GROUP_KEY_LABEL],
                    "topologyKey": "topology.kubernetes.io/zone",
                }
            ]
        },
    }


def context(base: dict[str, Any], p: Placement, cold_start: int) -> dict[str, Any]:
    """The LeaderWorkerSet's template context, from the Deployment's (`workloads.context`)."""
    m = p.model
    wait = ray_wait_seconds(cold_start)
    args = [*base["args"], "--distributed-executor-backend", "ray"]
    env = [*base["env"], {"name": "RAY_USAGE_STATS_ENABLED", "value": "0"}]
    leader_annotations = {**base["pod_annotations"], INCLUDE_INBOUND: str(vllm.PORT)}
    worker_annotations = {"kubectl.kubernetes.io/default-container": "vllm", INCLUDE_INBOUND: ""}
    return {
        **base,
        "size": m.nodes,
        "gpu_count": m.gpus_per_pod,
        "env": env,
        "leader_command": leader_command(args, wait),
        "worker_command": worker_command(wait),
        "leader_labels": {**base["workload_labels"], WORKER_INDEX_LABEL: "0"},
        "leader_annotations": leader_annotations,
        "worker_annotations": worker_annotations,
        "affinity": affinity(base["name"]),
        # The leader's API answers once its workers joined and vLLM loaded.
        "startup_failures": base["startup_failures"] + math.ceil(wait / base["probe_period"]),
    }


def pipeline_sizes(p: Placement) -> tuple[int, int]:
    """(tensor parallel, pipeline parallel) the group runs: GPUs per node, nodes."""
    return p.model.gpus_per_pod, p.model.nodes
