"""Multi-node models: a replica is a LeaderWorkerSet group of `resources.nodes` pods.

The shipped catalog's llama-3-1-405b-instruct (16 × H100 as 2 nodes × 8) runs
in prod on prod-aws-use1 and prod-gcp-usc1. What the LeaderWorkerSet
controller does with the rendered object is modelled from its source at the
pinned v0.10.0 (kubernetes-sigs/lws), cited where used:

- the leader StatefulSet is named after the set and its pod template gets
  `leaderworkerset.sigs.k8s.io/name: <set>` and `worker-index: "0"`
  (pkg/controllers/leaderworkerset_controller.go
  `constructLeaderStatefulSetApplyConfiguration`); its pods are `<set>-<group>`;
- each group's worker StatefulSet `<set>-<group>` gets the set name, group
  index and group key (pkg/controllers/pod_controller.go
  `constructWorkerStatefulSetApplyConfiguration`); the pod webhook adds
  `worker-index: "<n>"` from the pod's ordinal (pkg/webhooks/pod_webhook.go
  `Default`) and LWS_LEADER_ADDRESS / LWS_GROUP_SIZE to every container
  (pkg/utils/pod/pod_utils.go `AddLWSVariables`);
- `podutils.LeaderPod` is `worker-index == "0"`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmgen.plan.allocate import _Pools
from llmgen.plan.build import Placement, Plan
from llmgen.plan.check import validate_with_plan
from llmgen.plan.signals import pods as pod_regex
from llmgen.render.concerns import group, vllm
from llmgen.render.concerns.workloads import CONTAINER_SECURITY
from llmgen.verify.apiserver import selector_matches

MODEL = "llama-3-1-405b-instruct"
NS = f"llm-{MODEL}"
CLUSTERS = ("prod-aws-use1", "prod-gcp-usc1")
MODEL_FILE = f"catalog/models/{MODEL}.yaml"
PROD = "catalog/environments/prod.yaml"
ENTRY = f"    - name: {MODEL}  # multi-node: groups of 2 × 8 H100, one per cloud at most\n"


def docs(files: dict[str, bytes], cluster: str) -> list[dict[str, Any]]:
    prefix = f"generated/clusters/{cluster}/"
    return [
        d
        for path, body in sorted(files.items())
        if path.startswith(prefix) and not path.endswith("kustomization.yaml")
        for d in yaml.safe_load_all(body)
        if d
    ]


def one(found: list[dict[str, Any]], kind: str, name: str = MODEL) -> dict[str, Any]:
    hits = [d for d in found if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind}/{name}: {len(hits)}"
    return hits[0]


def placement(plan: Plan, cluster: str) -> Placement:
    (p,) = [p for p in plan.clusters[cluster].placements if p.model.name == MODEL]
    return p


def controller_pods(lws: dict[str, Any], group_index: int = 0) -> list[dict[str, str]]:
    """The labels of one group's pods as the LWS controller and webhook set them."""
    name = lws["metadata"]["name"]
    lwt = lws["spec"]["leaderWorkerTemplate"]
    key = f"key-{group_index}"
    common = {
        "leaderworkerset.sigs.k8s.io/name": name,
        "leaderworkerset.sigs.k8s.io/group-index": str(group_index),
        "leaderworkerset.sigs.k8s.io/group-key": key,
    }
    leader = {**lwt["leaderTemplate"]["metadata"]["labels"], **common}
    leader["leaderworkerset.sigs.k8s.io/worker-index"] = "0"
    workers = [
        {
            **lwt["workerTemplate"]["metadata"]["labels"],
            **common,
            "leaderworkerset.sigs.k8s.io/worker-index": str(i),
        }
        for i in range(1, lwt["size"])
    ]
    return [leader, *workers]


# ------------------------------------------------------------------ catalog


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {rel}"
    path.write_text(text.replace(old, new))


def errors(root: Path) -> list[str]:
    result, _ = validate_with_plan(root)
    return [str(d) for d in result.errors]


def test_the_shipped_group_is_accepted(plan: Plan) -> None:
    result, _ = validate_with_plan(Path(__file__).resolve().parents[1])
    assert result.ok
    for cluster in CLUSTERS:
        p = placement(plan, cluster)
        assert (p.model.gpu_count, p.model.nodes, p.model.gpus_per_pod) == (16, 2, 8)
        # The pool that holds it: 8 GPUs per node, room for 2 nodes, one zone.
        assert p.pool.name == "h100-x8-group"
        assert p.pool.gpus_per_node == 8 and p.pool.max_nodes >= 2 and len(p.pool.zones) == 1


def test_gpu_count_across_nodes_without_nodes_is_refused_with_the_fix(scratch_repo: Path) -> None:
    edit(
        scratch_repo,
        MODEL_FILE,
        "    nodes: 2          # per node: 8 GPUs, and the cpu and memory below\n",
        "",
    )
    found = errors(scratch_repo)
    assert found == [
        f"{PROD}:56:7: spec.models[5]: cluster '{c}' has no node pool with 16 × H100-80GB on one "
        f"node for model '{MODEL}' (its pools: {pools}); to span nodes set the model's "
        "resources.nodes (e.g. 2, tensor parallel within a node, pipeline parallel across nodes)"
        for c, pools in (
            (
                "prod-aws-use1",
                "l4-x1 (1 × L4), l4-x4 (4 × L4), a100-x8 (8 × A100-80GB), h100-x8 (8 × H100-80GB), "
                "h100-x8-group (8 × H100-80GB)",
            ),
            (
                "prod-gcp-usc1",
                "l4-x1 (1 × L4), l4-x4 (4 × L4), a100-x2 (2 × A100-80GB), h100-x8 (8 × H100-80GB), "
                "h100-x8-group (8 × H100-80GB)",
            ),
        )
    ]


def test_a_group_no_pool_can_hold_is_refused_at_the_environment_entry(scratch_repo: Path) -> None:
    # 4 nodes of 8: every H100 pool has maxNodes 2 or 3.
    edit(scratch_repo, MODEL_FILE, "gpuCount: 16", "gpuCount: 32")
    edit(scratch_repo, MODEL_FILE, "nodes: 2 ", "nodes: 4 ")
    edit(scratch_repo, MODEL_FILE, "pipelineParallel: 2", "pipelineParallel: 4")
    found = errors(scratch_repo)
    assert len(found) == 2
    assert found[0] == (
        f"{PROD}:56:7: spec.models[5]: cluster 'prod-aws-use1' has no node pool that can hold a "
        f"group of 4 nodes with 8 × H100-80GB each for model '{MODEL}' (its pools: l4-x1 (1 × L4, "
        "maxNodes 12), l4-x4 (4 × L4, maxNodes 6), a100-x8 (8 × A100-80GB, maxNodes 2), h100-x8 "
        "(8 × H100-80GB, maxNodes 3), h100-x8-group (8 × H100-80GB, maxNodes 2))"
    )
    assert found[1].startswith(f"{PROD}:56:7: spec.models[5]: cluster 'prod-gcp-usc1' has no")


def test_parallelism_must_be_tensor_within_and_pipeline_across_nodes(scratch_repo: Path) -> None:
    edit(scratch_repo, MODEL_FILE, "tensorParallel: 8", "tensorParallel: 16")
    edit(scratch_repo, MODEL_FILE, "pipelineParallel: 2", "pipelineParallel: 1")
    assert errors(scratch_repo) == [
        f"{MODEL_FILE}:22:21: spec.engine.tensorParallel: a replica on 2 nodes of 8 GPUs runs "
        "tensor parallel within a node and pipeline parallel across nodes: engine.tensorParallel "
        "must be 8 and engine.pipelineParallel 2 (they are 16 and 1)"
    ]


def test_gpu_count_must_divide_into_the_nodes(scratch_repo: Path) -> None:
    edit(scratch_repo, MODEL_FILE, "gpuCount: 16", "gpuCount: 15")
    found = errors(scratch_repo)
    assert (
        f"{MODEL_FILE}:29:15: spec.resources.gpuCount: gpuCount 15 does not divide into 2 nodes: "
        "every pod of a multi-node replica requests the same number of GPUs"
    ) in found


def test_each_pod_must_fit_its_node(scratch_repo: Path) -> None:
    # p5.48xlarge has 2048 GiB, a3-highgpu-8g 1872 GiB: 1900 GiB per pod fits neither once
    # the kubelet and DaemonSets have taken theirs.
    edit(scratch_repo, MODEL_FILE, "memoryGiB: 1200", "memoryGiB: 1900")
    found = errors(scratch_repo)
    assert found and all(f"{MODEL_FILE}:32:16: spec.resources.memoryGiB:" in e for e in found)
    assert "each of a replica's 2 pods requests 96.1 CPU and 1916.1 GiB" in found[0]


def test_no_canary_for_a_multi_node_model(scratch_repo: Path) -> None:
    edit(
        scratch_repo,
        PROD,
        ENTRY,
        ENTRY + "      canary: {revision: 0123456789abcdef0123456789abcdef01234567, weight: 10}\n",
    )
    assert (
        f"{PROD}:57:15: spec.models[5].canary: model '{MODEL}' spans 2 nodes per replica: "
        "canaries of multi-node models are not supported (roll it out by revision instead)"
    ) in errors(scratch_repo)


# ------------------------------------------------------------------- render


def test_the_leaderworkerset_is_valid_against_the_strict_schema(
    files: dict[str, bytes], crd_schemas: Path
) -> None:
    import jsonschema

    schema = json.loads(
        (crd_schemas / "leaderworkerset.x-k8s.io" / "leaderworkerset_v1.json").read_text()
    )
    for cluster in CLUSTERS:
        lws = one(docs(files, cluster), "LeaderWorkerSet")
        jsonschema.validate(lws, schema)
        # KEDA owns the count (scale subresource); a rendered one would fight it.
        assert "replicas" not in lws["spec"]
        # Only where the model is placed: a Deployment nowhere.
        assert not [
            d
            for d in docs(files, cluster)
            if d["kind"] == "Deployment" and d["metadata"]["name"] == MODEL
        ]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (kustomize)")
def test_the_model_folder_builds_with_kustomize(
    files: dict[str, bytes], tmp_path: Path, repo_root: Path
) -> None:
    """The model's Flux path builds with the prod overlay, which reaches every pod of the group."""
    for rel, data in files.items():
        if rel.startswith("generated/clusters/prod-aws-use1/"):
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_bytes(data)
    shutil.copytree(repo_root / "overlays", tmp_path / "overlays")
    folder = tmp_path / f"generated/clusters/prod-aws-use1/models/{MODEL}"
    built = subprocess.run(
        ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=True
    ).stdout
    found = [d for d in yaml.safe_load_all(built) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in found}
    assert {("LeaderWorkerSet", MODEL), ("Service", MODEL), ("ScaledObject", MODEL)} <= kinds
    assert ("PodDisruptionBudget", MODEL) in kinds and ("NetworkPolicy", "allow-group") in kinds
    lwt = one(found, "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]
    for template in ("leaderTemplate", "workerTemplate"):
        annotations = lwt[template]["metadata"]["annotations"]
        assert annotations["karpenter.sh/do-not-disrupt"] == "true"  # overlays/prod
        # The merge patch kept what llmgen rendered beside it.
        assert group.INCLUDE_INBOUND in annotations


def test_service_and_podmonitor_select_exactly_the_leaders(files: dict[str, bytes]) -> None:
    for cluster in CLUSTERS:
        found = docs(files, cluster)
        lws = one(found, "LeaderWorkerSet")
        leader, *workers = controller_pods(lws)
        assert workers, "a group of 2 has a worker"
        service = one(found, "Service")["spec"]["selector"]
        monitor = one(found, "PodMonitor")["spec"]["selector"]
        for selector in ({"matchLabels": service}, monitor):
            assert selector_matches(selector, leader)
            assert not any(selector_matches(selector, w) for w in workers)
        # The leader declares the port the Service targets; workers serve no HTTP.
        lwt = lws["spec"]["leaderWorkerTemplate"]
        (leader_c,) = lwt["leaderTemplate"]["spec"]["containers"]
        (worker_c,) = lwt["workerTemplate"]["spec"]["containers"]
        assert [p["name"] for p in leader_c["ports"]] == ["http"]
        assert "ports" not in worker_c
        # The mesh's stable subset routes to the leaders too.
        rule = one(found, "DestinationRule")
        stable = next(s for s in rule["spec"]["subsets"] if s["name"] == "stable")
        assert selector_matches({"matchLabels": stable["labels"]}, leader)


def test_the_pdb_covers_every_pod_of_the_set(files: dict[str, bytes]) -> None:
    """One pod at a time over the whole set: with RecreateGroupOnPodRestart an
    evicted pod restarts its group, whose pods are then unready, so the
    disruption controller allows nothing more until that group is back: the
    budget is one group."""
    for cluster in CLUSTERS:
        found = docs(files, cluster)
        lws = one(found, "LeaderWorkerSet")
        assert lws["spec"]["leaderWorkerTemplate"]["restartPolicy"] == "RecreateGroupOnPodRestart"
        pdb = one(found, "PodDisruptionBudget")["spec"]
        assert pdb["maxUnavailable"] == 1
        for labels in controller_pods(lws) + controller_pods(lws, 1):
            assert selector_matches(pdb["selector"], labels)


def test_keda_scales_the_set_by_its_leaders_signals(files: dict[str, bytes]) -> None:
    for cluster in CLUSTERS:
        found = docs(files, cluster)
        so = one(found, "ScaledObject")["spec"]
        # LeaderWorkerSet has a scale subresource (lws v0.10.0 CRD: specReplicasPath
        # .spec.replicas, labelSelectorPath .status.hpaPodSelector), KEDA's
        # operator may patch */scale of any group.
        assert so["scaleTargetRef"] == {
            "apiVersion": "leaderworkerset.x-k8s.io/v1",
            "kind": "LeaderWorkerSet",
            "name": MODEL,
        }
        one(found, "LeaderWorkerSet", so["scaleTargetRef"]["name"])
        # Leaders are `<set>-<group>`, workers `<set>-<group>-<worker>`.
        regex = re.compile(json.loads(pod_regex(MODEL, group=True)).replace("\\\\", "\\"))
        assert regex.fullmatch(f"{MODEL}-0") and regex.fullmatch(f"{MODEL}-12")
        assert not regex.fullmatch(f"{MODEL}-0-1")
        queries = [t["metadata"]["query"] for t in so["triggers"] if t["type"] == "prometheus"]
        leader_queries = [q for q in queries if "vllm:" in q]
        assert leader_queries and all(pod_regex(MODEL, group=True) in q for q in leader_queries)
        deployed = next(t for t in so["triggers"] if t["name"] == "deployed_replicas")
        assert deployed["metadata"]["query"] == (
            f'sum(kube_statefulset_status_replicas{{namespace="{NS}", statefulset="{MODEL}"}})'
        )


def _arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_vllm_parallelism_is_tensor_per_node_pipeline_across(
    plan: Plan, files: dict[str, bytes]
) -> None:
    for cluster in CLUSTERS:
        p = placement(plan, cluster)
        lws = one(docs(files, cluster), "LeaderWorkerSet")
        lwt = lws["spec"]["leaderWorkerTemplate"]
        (leader,) = lwt["leaderTemplate"]["spec"]["containers"]
        args = leader["command"][6:]  # /bin/sh -c SCRIPT $0 $1 $2, then vLLM's arguments
        tp = int(_arg(args, "--tensor-parallel-size"))
        pp = int(_arg(args, "--pipeline-parallel-size"))
        per_pod = leader["resources"]["limits"]["nvidia.com/gpu"]
        assert tp == per_pod == p.model.gpus_per_pod
        assert pp == lwt["size"] == p.model.nodes
        assert tp * pp == p.model.gpu_count == per_pod * lwt["size"]
        assert _arg(args, "--distributed-executor-backend") == "ray"
        for template in ("leaderTemplate", "workerTemplate"):
            (c,) = lwt[template]["spec"]["containers"]
            assert c["resources"]["requests"]["nvidia.com/gpu"] == per_pod


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def test_the_launch_commands_run_as_vllm_documents(files: dict[str, bytes], tmp_path: Path) -> None:
    """Run the rendered commands in a real shell with the script and vLLM stubbed.

    The leader runs vLLM's multi-node-serving.sh `leader` with the group size
    LWS injects, then `vllm serve` with exactly the catalog's arguments
    (nothing the shell could split or expand); a worker joins the head at
    LWS_LEADER_ADDRESS.
    """
    lws = one(docs(files, "prod-aws-use1"), "LeaderWorkerSet")
    lwt = lws["spec"]["leaderWorkerTemplate"]
    (leader,) = lwt["leaderTemplate"]["spec"]["containers"]
    (worker,) = lwt["workerTemplate"]["spec"]["containers"]
    log = tmp_path / "log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = tmp_path / "multi-node-serving.sh"
    _stub(script, f'for a in "$@"; do echo "script:$a" >> {log}; done\n')
    _stub(bin_dir / "vllm", f'for a in "$@"; do echo "vllm:$a" >> {log}; done\n')
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "LWS_GROUP_SIZE": "2",
        "LWS_LEADER_ADDRESS": f"{MODEL}-0.{MODEL}-0.{NS}",
    }

    def run(command: list[str]) -> list[str]:
        assert command[:2] == ["/bin/sh", "-c"] and command[3] == group.MULTI_NODE_SCRIPT
        log.write_text("")
        local = [*command[:3], str(script), *command[4:]]
        subprocess.run(local, env=env, check=True)
        return log.read_text().splitlines()

    wait, store = leader["command"][4:6]
    assert int(wait) >= 300
    # Ray's object store stays inside the /dev/shm emptyDir.
    volumes = lwt["leaderTemplate"]["spec"]["volumes"]
    (dshm,) = [v for v in volumes if v["name"] == "dshm"]
    assert int(store) < int(dshm["emptyDir"]["sizeLimit"].removesuffix("Gi")) * 1024**3
    got = run(leader["command"])
    assert got == [
        "script:leader",
        "script:--ray_cluster_size=2",
        f"script:--ray_init_timeout={wait}",
        f"script:--object-store-memory={store}",
        "script:--include-dashboard=false",
        "vllm:serve",
        *(f"vllm:{a}" for a in leader["command"][6:]),
    ]
    assert run(worker["command"]) == [
        "script:worker",
        f"script:--ray_address={MODEL}-0.{MODEL}-0.{NS}",
        f"script:--ray_init_timeout={wait}",
        f"script:--object-store-memory={store}",
    ]


def test_every_pod_of_the_group_is_hardened_and_fetches_verified_weights(
    files: dict[str, bytes],
) -> None:
    for cluster in CLUSTERS:
        lws = one(docs(files, cluster), "LeaderWorkerSet")
        lwt = lws["spec"]["leaderWorkerTemplate"]
        for template in ("leaderTemplate", "workerTemplate"):
            spec = lwt[template]["spec"]
            (c,) = spec["containers"]
            assert c["securityContext"] == CONTAINER_SECURITY
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert spec["automountServiceAccountToken"] is False
            env = {e["name"]: e.get("value") for e in c["env"]}
            assert env["USER"] == env["LOGNAME"] == vllm.USER
            assert env["HF_HUB_OFFLINE"] == "1"  # verified local weights only
            inits = [i["name"] for i in spec["initContainers"]]
            assert inits == ["wait-for-mirror", "fetch-weights", "verify-weights"]
            # One pod of the set per node; a group's pods in one zone.
            assert spec["affinity"] == group.affinity(MODEL)
            annotations = lwt[template]["metadata"]["annotations"]
            assert annotations[group.INCLUDE_INBOUND] == (
                str(vllm.PORT) if template == "leaderTemplate" else ""
            )
        leader = lwt["leaderTemplate"]["spec"]["containers"][0]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert leader[probe]["httpGet"] == {"path": "/health", "port": "http"}
        assert "preStop" in leader["lifecycle"]
        worker = lwt["workerTemplate"]["spec"]["containers"][0]
        assert not {"startupProbe", "readinessProbe", "livenessProbe"} & set(worker)


def test_the_groups_pods_reach_each_other(files: dict[str, bytes]) -> None:
    for cluster in CLUSTERS:
        found = docs(files, cluster)
        policy = one(found, "NetworkPolicy", "allow-group")["spec"]
        lws = one(found, "LeaderWorkerSet")
        pods = controller_pods(lws)
        assert all(selector_matches(policy["podSelector"], labels) for labels in pods)
        (peer,) = policy["ingress"][0]["from"]
        assert all(selector_matches(peer["podSelector"], labels) for labels in pods)
        assert policy["egress"][0]["to"] == [peer] and "ports" not in policy["ingress"][0]


def test_the_controller_is_an_add_on_the_model_waits_for(files: dict[str, bytes]) -> None:
    for cluster in CLUSTERS:
        found = docs(files, cluster)
        release = one(found, "HelmRelease", "leaderworkerset")["spec"]
        source = one(found, "OCIRepository", "leaderworkerset")["spec"]
        assert source["url"] == "oci://registry.k8s.io/lws/charts/lws"
        assert source["ref"] == {"tag": "0.10.0"}
        assert release["install"]["crds"] == release["upgrade"]["crds"] == "CreateReplace"
        assert release["values"]["image"]["manager"]["tag"] == "v0.10.0"
        ks = one(found, "Kustomization", "infrastructure-controllers")["spec"]
        crd = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "name": "leaderworkersets.leaderworkerset.x-k8s.io",
        }
        assert crd in ks["healthChecks"]
        model_ks = one(found, "Kustomization", f"model-{MODEL}")["spec"]
        assert {"name": "infrastructure-controllers"} in model_ks["dependsOn"]


def test_plan_shows_the_group_and_what_it_runs_without(plan: Plan) -> None:
    from llmgen.cli.planview import model_row

    for cluster in CLUSTERS:
        p = placement(plan, cluster)
        row = model_row(p)
        assert (row.nodes_per_replica, row.gpus_per_replica) == (2, 16)
        assert (row.nodes_min, row.nodes_max) == (0, 2)
        assert row.usd_per_hour_max == pytest.approx(
            2 * max(t.on_demand_usd for t in p.gpu.offers[p.cluster.cloud].types.values()), abs=1e-3
        )
        fabric = "EFA" if p.cluster.cloud == "aws" else "GPUDirect-TCPX"
        assert fabric in row.interconnect and "default network" in row.interconnect
        # Pool limit: two nodes for the group, no surge group (maxSurge 0).
        assert plan.clusters[cluster].node_caps["h100-x8-group"] == 2


def test_the_allocator_gives_a_group_whole_nodes() -> None:
    pools = _Pools({"pool": 5})
    assert pools.room("pool", "big", 1, nodes=2) == 2
    pools.add("pool", "big", 1, 2, nodes=2)
    assert pools.used("pool") == 4
    assert pools.room("pool", "big", 1, nodes=2) == 0
    # A single-node model still packs the node left over.
    assert pools.room("pool", "small", 4) == 4


def test_flux_waits_for_every_group_to_be_available(files: dict[str, bytes]) -> None:
    """The model's Kustomization is healthy when the set is `Available` (every group's
    leader ready and worker StatefulSet ready, on the current revision), evaluated
    with a real CEL runtime the way Flux's healthCheckExprs see an object: its
    top-level fields as variables."""
    cel = pytest.importorskip("cel_expr_python.cel")
    ks = one(docs(files, "prod-aws-use1"), "Kustomization", f"model-{MODEL}")["spec"]
    assert ks["wait"] is True
    (expr,) = [e for e in ks["healthCheckExprs"] if e["kind"] == "LeaderWorkerSet"]
    assert expr["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    env = cel.NewEnv(
        variables={"status": cel.Type.DYN, "metadata": cel.Type.DYN, "spec": cel.Type.DYN}
    )
    program = env.compile(expr["current"])

    def current(status: dict[str, Any]) -> bool:
        return bool(program.eval(data={"status": status, "metadata": {}, "spec": {}}).value())

    def cond(kind: str) -> dict[str, str]:
        return {"type": kind, "status": "True"}

    assert current({"conditions": [cond("Available")]})
    assert not current({"conditions": [cond("Progressing")]})
    assert not current({"conditions": [cond("UpdateInProgress"), cond("Progressing")]})
    assert not current({})


def test_verify_checks_the_group_pod_templates_as_the_api_server_would(
    files: dict[str, bytes],
) -> None:
    """The API server validates a group's pod templates only when the LWS controller
    creates their StatefulSets; verify runs its pod checks on both templates."""
    from llmgen.verify.apiserver import check_apiserver
    from llmgen.verify.manifests import Manifest, split_documents
    from llmgen.verify.stats import Family

    path = f"generated/clusters/prod-aws-use1/models/{MODEL}/{MODEL}.yaml"
    text = files[path].decode()
    (lws,) = [
        m
        for m in split_documents(text, path)
        if isinstance(m, Manifest) and m.kind == "LeaderWorkerSet"
    ]
    assert check_apiserver(lws, Family()) == []
    # A worker mounting a volume its pod does not have: refused, at the worker's line.
    broken = text.replace(
        "                mountPath: /dev/shm\n",
        "                mountPath: /dev/shm\n"
        "              - name: missing\n"
        "                mountPath: /x\n",
        2,
    )
    (bad,) = [
        m
        for m in split_documents(broken, path)
        if isinstance(m, Manifest) and m.kind == "LeaderWorkerSet"
    ]
    found = [str(d) for d in check_apiserver(bad, Family())]
    assert len(found) == 2
    assert "spec.leaderWorkerTemplate.leaderTemplate.spec.containers[0].volumeMounts" in found[0]
    assert "spec.leaderWorkerTemplate.workerTemplate.spec.containers[0].volumeMounts" in found[1]
    assert all('volumeMount "missing" names no volume of the pod' in f for f in found)


def test_a_cluster_too_old_for_the_group_affinity_is_refused(scratch_repo: Path) -> None:
    edit(scratch_repo, "catalog/clusters/prod-aws-use1.yaml", '"1.33"', '"1.30"')
    assert errors(scratch_repo) == [
        "catalog/clusters/prod-aws-use1.yaml:9:22: spec.kubernetesVersion: Kubernetes 1.30 is "
        f"older than multi-node model '{MODEL}' needs on 'prod-aws-use1' (1.31 or newer): "
        "podAffinity matchLabelKeys: feature gate MatchLabelKeysInPodAffinity, alpha (off) in "
        "1.29 and 1.30, on by default from 1.31 (KEP-3633); an older API server drops it "
        "silently and a group's pods may land in different zones"
    ]


def test_status_judges_the_groups_like_a_deployment(plan: Plan) -> None:
    """`llmgen status` lists a multi-node model's LeaderWorkerSet (readyReplicas and
    replicas count groups, lws v0.10.0 LeaderWorkerSetStatus) against its ScaledObject."""
    from llmgen.gitops.status import model_statuses

    p = placement(plan, "prod-aws-use1")
    labels = {"llmgen.io/model": MODEL, "app.kubernetes.io/managed-by": "llmgen"}
    lws = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": MODEL, "namespace": NS, "labels": labels},
        "status": {"readyReplicas": 1, "replicas": 1},
    }
    so = {
        "metadata": {"name": MODEL, "namespace": NS},
        "spec": {
            "scaleTargetRef": {"kind": "LeaderWorkerSet", "name": MODEL},
            "minReplicaCount": 0,
            "maxReplicaCount": 1,
        },
    }
    (ready,) = model_statuses([p], [lws], [so], stopped=False)
    assert (ready.state, ready.ready_replicas, ready.max_replicas) == ("ready", 1, 1)
    idle = {**lws, "status": {}}
    (zero,) = model_statuses([p], [idle], [so], stopped=False)
    assert zero.state == "scaled to zero"
