"""Model workloads: the vLLM Deployment's decisions, proven on the shipped catalog."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmgen.catalog import names
from llmgen.catalog.model import at_revision
from llmgen.plan.build import ClusterPlan, Placement, Plan
from llmgen.render.concerns import vllm as vllm_concern
from llmgen.render.concerns import weights, workloads
from llmgen.verify.runner import catalog_facts, verify_tree

REPO = Path(__file__).resolve().parents[1]


def documents(files: dict[str, bytes], cluster: str) -> list[dict[str, Any]]:
    prefix = f"generated/clusters/{cluster}/"
    out: list[dict[str, Any]] = []
    for path, body in sorted(files.items()):
        if path.startswith(prefix) and not path.endswith("kustomization.yaml"):
            out += [d for d in yaml.safe_load_all(body) if d]
    return out


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind}/{name}: {len(hits)} documents"
    return hits[0]


def placements(plan: Plan) -> list[tuple[ClusterPlan, Placement]]:
    """Placements that run as a Deployment (multi-node ones: tests/test_multinode.py)."""
    return [
        (cp, p) for cp in plan.clusters.values() for p in cp.placements if not p.model.multi_node
    ]


def vllm(deployment: dict[str, Any]) -> dict[str, Any]:
    spec = deployment["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == "vllm")


def copy_words(fetch: dict[str, Any]) -> list[str]:
    """What the copy container runs with: its command and its environment's values."""
    return [*fetch["command"], *(e.get("value", "") for e in fetch.get("env", []))]


def test_every_placement_gets_its_workload(plan: Plan, files: dict[str, bytes]) -> None:
    pairs = placements(plan)
    assert {cp.provider.name for cp, _ in pairs} == {"aws", "gcp"}
    for cp, p in pairs:
        docs = documents(files, cp.name)
        for kind in ("Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"):
            assert find(docs, kind, p.name)["metadata"]["namespace"] == p.namespace
        assert find(docs, "Namespace", names.model_namespace(p.name))


def test_gpu_requests_equal_limits_equal_gpu_count(plan: Plan, files: dict[str, bytes]) -> None:
    seen = set()
    for cp, p in placements(plan):
        res = vllm(find(documents(files, cp.name), "Deployment", p.name))["resources"]
        assert res["requests"]["nvidia.com/gpu"] == p.model.gpu_count
        assert res["limits"]["nvidia.com/gpu"] == p.model.gpu_count
        seen.add(p.model.gpu_count)
    assert seen >= {1, 2, 4}  # the catalog exercises several sizes


def test_no_replicas_under_a_scaledobject(plan: Plan, files: dict[str, bytes]) -> None:
    for cp, p in placements(plan):
        assert "replicas" not in find(documents(files, cp.name), "Deployment", p.name)["spec"]


def test_pods_select_a_pool_that_has_their_gpu(plan: Plan, files: dict[str, bytes]) -> None:
    for cp, p in placements(plan):
        docs = documents(files, cp.name)
        spec = find(docs, "Deployment", p.name)["spec"]["template"]["spec"]
        selector = spec["nodeSelector"]
        if cp.provider.name == "aws":
            pool_name = selector["karpenter.sh/nodepool"]
            reqs = {
                r["key"]: r["values"]
                for r in find(docs, "NodePool", pool_name)["spec"]["template"]["spec"][
                    "requirements"
                ]
            }
            assert reqs["karpenter.k8s.aws/instance-gpu-name"] == [p.gpu.offers["aws"].label]
        else:
            pool_name = selector["cloud.google.com/compute-class"]
            find(docs, "ComputeClass", pool_name)
            accel = find(docs, "ContainerNodePool", pool_name)["spec"]["nodeConfig"][
                "guestAccelerator"
            ][0]
            assert accel["type"] == p.gpu.offers["gcp"].label
            assert accel["count"] >= p.model.gpu_count
        pool = next(x for x in cp.cluster.node_pools if names.nodepool_name(x.name) == pool_name)
        assert pool.gpu == p.model.gpu and pool.gpus_per_node >= p.model.gpu_count
        tolerated = {t["key"] for t in spec["tolerations"]}
        assert "nvidia.com/gpu" in tolerated


def test_weights_are_fetched_then_verified_before_vllm(plan: Plan, files: dict[str, bytes]) -> None:
    for cp, p in placements(plan):
        spec = find(documents(files, cp.name), "Deployment", p.name)["spec"]["template"]["spec"]
        # Wait for the mirror, copy, verify; a model's LoRA adapters follow (test_adapters.py).
        wait, fetch, verify = spec["initContainers"][:3]
        assert (wait["name"], fetch["name"], verify["name"]) == (
            "wait-for-mirror",
            "fetch-weights",
            "verify-weights",
        )
        rest = [c["name"] for c in spec["initContainers"][3:]]
        steps = ("fetch", "verify")
        assert rest == [f"{s}-adapter-{i}" for i in range(len(p.model.adapters)) for s in steps]
        uri = p.model.weight_uris[cp.provider.name]
        assert {"name": "MIRROR_URI", "value": uri} in wait["env"]
        assert uri.startswith(f"{cp.provider.storage_scheme}://")
        assert uri in copy_words(fetch)
        env = {e["name"]: e.get("value") for e in verify["env"]}
        assert env["WEIGHTS_SHA256"] == p.model.weights_sha256
        assert verify["command"][:2] == ["/bin/sh", "-ec"]
        assert "sha256sum -c" in verify["command"][2] and "$WEIGHTS_SHA256" in verify["command"][2]
        assert {"name": "weights", "mountPath": weights.WEIGHTS_DIR, "readOnly": True} in (
            verify["volumeMounts"]
        )
        main = vllm({"spec": {"template": {"spec": spec}}})
        args = main["args"]
        assert args[args.index("--model") + 1] == weights.WEIGHTS_DIR
        main_env = {e["name"]: e.get("value") for e in main["env"]}
        assert main_env["HF_HUB_OFFLINE"] == "1"


def test_verify_script_rejects_tampered_weights(tmp_path: Path) -> None:
    """The verify step, run for real: a changed shard or manifest stops the pod."""
    # Enough files for several parallel batches, one name with a space.
    shards = [f"model-{i:05d}.safetensors" for i in range(40)] + ["tokenizer config.json"]
    for name in shards:
        (tmp_path / name).write_bytes(name.encode())
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    listing = subprocess.run(
        ["sha256sum", "model.safetensors", *shards], cwd=tmp_path, check=True, capture_output=True
    ).stdout
    (tmp_path / weights.MANIFEST).write_bytes(listing)
    digest = subprocess.run(
        ["sha256sum", weights.MANIFEST], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.split()[0]

    def run(expected: str) -> int:
        env = {
            "WEIGHTS_DIR": str(tmp_path),
            "WEIGHTS_MANIFEST": weights.MANIFEST,
            "WEIGHTS_SHA256": expected,
            "VERIFY_PARALLELISM": "4",
            "PATH": "/usr/bin:/bin",
        }
        cmd = ["/bin/sh", "-ec", weights.VERIFY_SCRIPT]
        return subprocess.run(cmd, env=env, capture_output=True).returncode

    assert run(digest) == 0
    assert run("0" * 64) != 0  # manifest not the pinned one
    (tmp_path / "model-00037.safetensors").write_bytes(b"tampered")
    assert run(digest) != 0  # a shard changed after the manifest was pinned
    (tmp_path / "model-00037.safetensors").write_bytes(b"model-00037.safetensors")
    assert run(digest) == 0
    (tmp_path / "tokenizer config.json").unlink()
    assert run(digest) != 0  # a listed file is missing


def test_unmirrored_weights_load_from_the_pinned_revision(plan: Plan) -> None:
    cp, p = placements(plan)[0]
    args = vllm_concern.args(p.model, p.gpu, mirrored=False)
    assert args[args.index("--model") + 1] == p.model.repo
    assert args[args.index("--revision") + 1] == p.model.revision
    env = {e["name"] for e in vllm_concern.env(p.model, mirrored=False)}
    assert "HF_HUB_OFFLINE" not in env


def test_secrets_reach_env_and_reloader_watches_them(plan: Plan, files: dict[str, bytes]) -> None:
    checked = 0
    for cp, p in placements(plan):
        dep = find(documents(files, cp.name), "Deployment", p.name)
        annotations = dep["metadata"].get("annotations", {})
        env = {e["name"]: e for e in vllm(dep)["env"]}
        # Mirrored weights load offline: hub tokens are neither injected nor watched.
        injected = vllm_concern.injected_secrets(p.model, mirrored=True)
        assert all(s.env not in vllm_concern.HUB_TOKEN_ENVS for s in injected)
        assert all(e not in env for e in vllm_concern.HUB_TOKEN_ENVS)
        expected = sorted(names.secret_name(p.model.name, s.env) for s in injected)
        for s in injected:
            ref = env[s.env]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": names.secret_name(p.model.name, s.env), "key": s.key}
            checked += 1
        if expected:
            assert annotations["secret.reloader.stakater.com/reload"] == ",".join(expected)
        else:
            assert "secret.reloader.stakater.com/reload" not in annotations
        assert vllm(dep)["envFrom"] == [
            {"configMapRef": {"name": names.ENV_CONFIGMAP, "optional": True}}
        ]
    assert any(p.model.secrets for _, p in placements(plan))  # the catalog has secrets


def test_startup_budget_grows_with_weights_per_gpu(plan: Plan, files: dict[str, bytes]) -> None:
    by_model = {p.model.name: (cp, p) for cp, p in placements(plan)}
    small_cp, small = by_model["bge-m3"]
    big_cp, big = by_model["llama-3-3-70b-instruct"]

    def threshold(cp: ClusterPlan, p: Placement) -> int:
        dep = find(documents(files, cp.name), "Deployment", p.name)
        probe = vllm(dep)["startupProbe"]
        return int(probe["failureThreshold"]) * int(probe["periodSeconds"])

    assert threshold(big_cp, big) > threshold(small_cp, small) >= 300
    # the 70B reads ~131 GiB from its share of the node's NVMe (half of 8 or 16 devices)
    for cp, p in ((big_cp, big), (small_cp, small)):
        io = workloads.node_io(cp, p)
        assert threshold(cp, p) >= weights.startup_budget_seconds(p.model, io)


def test_restricted_pod_security_and_memory_for_shm(plan: Plan, files: dict[str, bytes]) -> None:
    for cp, p in placements(plan):
        dep = find(documents(files, cp.name), "Deployment", p.name)
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in pod["containers"] + pod["initContainers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["readOnlyRootFilesystem"] is True
        shm = next(v for v in pod["volumes"] if v["name"] == "dshm")["emptyDir"]
        assert shm["medium"] == "Memory"
        memory = vllm(dep)["resources"]["limits"]["memory"]
        # /dev/shm is charged to the pod's memory: the limit leaves room for it
        assert int(memory[:-2]) >= p.model.memory_gib + int(shm["sizeLimit"][:-2])
        spread = pod["topologySpreadConstraints"][0]
        assert spread["topologyKey"] == "topology.kubernetes.io/zone"
        assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
        # the grace period covers the preStop drain's bound (its 3rd argument)
        drain = vllm(dep)["lifecycle"]["preStop"]["exec"]["command"]
        assert pod["terminationGracePeriodSeconds"] > int(drain[5])


TRACK = "llmgen.io/track"


def staging_mixtral(plan: Plan) -> list[tuple[ClusterPlan, Placement]]:
    found = [
        (cp, p)
        for cp, p in placements(plan)
        if p.environment.name == "staging" and p.name == "mixtral-8x7b-instruct"
    ]
    assert found
    return found


def test_canary_runs_its_own_revision_beside_the_stable_track(
    plan: Plan, files: dict[str, bytes]
) -> None:
    for cp, p in staging_mixtral(plan):
        canary_cfg = p.deployment.canary
        assert canary_cfg is not None and canary_cfg.weight == 10 and canary_cfg.revision
        assert canary_cfg.revision != p.model.revision
        docs = documents(files, cp.name)
        stable = find(docs, "Deployment", p.name)
        canary = find(docs, "Deployment", names.canary_name(p.name))
        assert "replicas" not in canary["spec"]  # its own ScaledObject owns the count
        scaled = find(docs, "ScaledObject", names.canary_name(p.name))
        assert scaled["spec"]["scaleTargetRef"]["name"] == names.canary_name(p.name)
        # Same shape: pool, resources, probes; only the revision differs.
        s_pod, c_pod = (d["spec"]["template"]["spec"] for d in (stable, canary))
        assert c_pod["nodeSelector"] == s_pod["nodeSelector"]
        assert vllm(canary)["resources"] == vllm(stable)["resources"]
        assert c_pod["serviceAccountName"] == s_pod["serviceAccountName"] == p.name
        assert vllm(canary)["image"] == vllm(stable)["image"]  # revision-only canary
        fetch = {c["name"]: c for c in c_pod["initContainers"]}["fetch-weights"]
        mirror = p.model.weight_uris[cp.provider.name]
        assert p.model.revision in mirror
        assert mirror.replace(p.model.revision, canary_cfg.revision) in copy_words(fetch)
        assert mirror not in copy_words(fetch)
        # The catalog pins only the stable manifest: the canary checks its
        # files against the mirror's manifest, never against the stable hash.
        verify = {c["name"]: c for c in c_pod["initContainers"]}["verify-weights"]
        assert "WEIGHTS_SHA256" not in {e["name"] for e in verify["env"]}
        assert "sha256sum -c --quiet --strict" in verify["command"][2]
        s_verify = {c["name"]: c for c in s_pod["initContainers"]}["verify-weights"]
        assert {"name": "WEIGHTS_SHA256", "value": p.model.weights_sha256} in s_verify["env"]


def test_track_labels_match_the_destination_rule_subsets(
    plan: Plan, files: dict[str, bytes]
) -> None:
    for cp, p in placements(plan):
        docs = documents(files, cp.name)
        rule = find(docs, "DestinationRule", p.name)
        if p.environment.uses_inference_pools:
            # Tracks are InferencePools there, not subsets (tests/test_inference_pools.py).
            pools = [d for d in docs if d["kind"] == "InferencePool"]
            subsets = {
                d["spec"]["selector"]["matchLabels"]["llmgen.io/track"]: {
                    "llmgen.io/track": d["spec"]["selector"]["matchLabels"]["llmgen.io/track"]
                }
                for d in pools
                if d["metadata"]["namespace"] == p.namespace
            }
        else:
            subsets = {s["name"]: s["labels"] for s in rule["spec"]["subsets"]}
        deployments = {"stable": find(docs, "Deployment", p.name)}
        if p.has_canary:
            deployments["canary"] = find(docs, "Deployment", names.canary_name(p.name))
        else:
            assert not [d for d in docs if d["metadata"]["name"] == names.canary_name(p.name)]
        assert set(subsets) == set(deployments)
        service = find(docs, "Service", p.name)["spec"]["selector"]
        for track, dep in deployments.items():
            pod_labels = dep["spec"]["template"]["metadata"]["labels"]
            assert pod_labels[TRACK] == track
            # the subset selects exactly this track's pods; the Service all of them
            assert subsets[track].items() <= pod_labels.items()
            assert service.items() <= pod_labels.items() and TRACK not in service
            selector = dep["spec"]["selector"]["matchLabels"]
            assert selector[TRACK] == track and selector.items() <= pod_labels.items()
            name = dep["metadata"]["name"]
            pdb = find(docs, "PodDisruptionBudget", name)
            # one PDB per pod: the eviction API refuses pods under two
            assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert any(p.has_canary for _, p in placements(plan))


def init_container(ctx: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in ctx["init_containers"] if c["name"] == name)


def test_canary_of_only_an_image_keeps_the_pinned_weights(plan: Plan) -> None:
    cp, p = staging_mixtral(plan)[0]
    image = "vllm/vllm-openai:v0.11.1@sha256:" + "a" * 64
    canary = dataclasses.replace(p.deployment.canary, revision=None, image=image)
    q = dataclasses.replace(p, deployment=dataclasses.replace(p.deployment, canary=canary))
    ctx = workloads.context(cp, q, "canary")
    assert ctx["name"] == names.canary_name(p.name) and ctx["image"] == image
    verify = init_container(ctx, "verify-weights")
    assert {"name": "WEIGHTS_SHA256", "value": p.model.weights_sha256} in verify["env"]
    assert verify["image"] == image
    fetch = init_container(ctx, "fetch-weights")
    assert p.model.weight_uris[cp.provider.name] in copy_words(fetch)


def test_canary_revision_without_a_mirror_path_loads_from_the_hub(plan: Plan) -> None:
    cp, p = staging_mixtral(plan)[0]
    # A mirror laid out without revisions cannot hold the canary's weights.
    flat = {
        cloud: uri.replace(p.model.revision + "/", "") for cloud, uri in p.model.weight_uris.items()
    }
    q = dataclasses.replace(p, model=dataclasses.replace(p.model, weight_uris=flat))
    ctx = workloads.context(cp, q, "canary")
    assert not ctx["mirrored"] and ctx["init_containers"] == []
    args = ctx["args"]
    assert args[args.index("--revision") + 1] == p.deployment.canary.revision
    stable = workloads.context(cp, q)
    assert stable["mirrored"]  # the stable track still reads its mirror


def test_at_revision_replaces_only_a_whole_path_segment() -> None:
    rev, new = "a" * 40, "b" * 40
    assert at_revision(f"s3://bucket/org/model/{rev}/", rev, new) == (
        f"s3://bucket/org/model/{new}/"
    )
    assert at_revision(f"gs://bucket/{rev}x/", rev, new) is None
    assert at_revision(f"gs://{rev}/weights/", rev, new) is None  # a bucket, not a path


def test_rendered_tree_validates_and_builds(
    files: dict[str, bytes], tmp_path: Path, crd_schemas: Path
) -> None:
    for path, body in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(body)
    if (REPO / "overlays").is_dir():
        shutil.copytree(REPO / "overlays", tmp_path / "overlays")
    report = verify_tree(tmp_path, crd_schemas, clusters=catalog_facts(REPO))
    assert report.documents > 100
    assert [str(d) for d in report.diagnostics if d.is_error] == []


def test_checkov_passes_or_each_finding_is_justified(
    plan: Plan, files: dict[str, bytes], tmp_path: Path
) -> None:
    checkov = shutil.which("checkov")
    if checkov is None:
        pytest.skip("checkov is not installed (pip install checkov)")
    # One AWS and one GCP cluster's model bundles, as shipped.
    for cluster in ("prod-aws-use1", "prod-gcp-euw4"):
        prefix = f"generated/clusters/{cluster}/models/"
        for path, body in files.items():
            if path.startswith(prefix) and not path.endswith("kustomization.yaml"):
                (tmp_path / f"{cluster}-{path.rsplit('/', 1)[1]}").write_bytes(body)
    proc = subprocess.run(
        [
            # Not --quiet: that drops passed and skipped checks from the report.
            checkov, "-d", str(tmp_path), "--framework", "kubernetes", "-o", "json",
            # Per-model NetworkPolicies belong to the network-policy concern.
            "--skip-check", "CKV2_K8S_6",
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin:" + str(Path(checkov).parent), "BC_SKIP_MAPPING": "TRUE"},
    )  # fmt: skip
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    passed = [c for r in reports for c in r["results"]["passed_checks"]]
    assert passed, proc.stderr[-2000:]
    assert not failed, [(c["check_id"], c["resource"]) for c in failed]
    reasons = {c["check_id"]: c["check_result"].get("suppress_comment", "") for c in skipped}
    # Exactly the justified skips are in effect, each with its reason.
    assert reasons == dict(s.split("=", 1) for s in workloads.CHECKOV_SKIPS)


def test_canary_of_a_new_revision_pins_its_own_manifest(plan: Plan) -> None:
    """`canary.weightsSha256` pins the canary's manifest exactly as the stable track's is."""
    cp, p = staging_mixtral(plan)[0]
    assert p.deployment.canary is not None
    pin = "8e2a1c0b" * 8
    canary = dataclasses.replace(p.deployment.canary, weights_sha256=pin)
    q = dataclasses.replace(p, deployment=dataclasses.replace(p.deployment, canary=canary))
    stable = init_container(workloads.context(cp, q, "stable"), "verify-weights")
    verify = init_container(workloads.context(cp, q, "canary"), "verify-weights")
    assert {"name": "WEIGHTS_SHA256", "value": pin} in verify["env"]
    assert {"name": "WEIGHTS_SHA256", "value": p.model.weights_sha256} in stable["env"]
    # the same checks as the stable track: the manifest's hash, then every file
    assert verify["command"] == stable["command"] == ["/bin/sh", "-ec", weights.VERIFY_SCRIPT]
