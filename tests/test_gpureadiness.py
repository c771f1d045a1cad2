"""GPU readiness: the DaemonSet that lifts the Karpenter startup taint on EKS GPU nodes.

The shell loop is run for real under the shells at hand, against a fake
`kubectl` that serves a Node from a file and hands every jsonpath query and
JSON patch to the real kubectl (`--local`), so the script's jsonpath
expressions and patches are checked by kubectl itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmgen.plan.build import ClusterPlan, Plan
from llmgen.render.concerns import gpureadiness
from llmgen.verify.runner import verify_documents

REPO = Path(__file__).resolve().parents[1]
BUNDLE = "infrastructure/node-pools/gpu-readiness.yaml"
KINDS = [
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",  # tests/test_gpureadiness_own_node.py
    "ValidatingAdmissionPolicyBinding",
    "NetworkPolicy",
    "DaemonSet",
]
REAL_KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(REAL_KUBECTL is None, reason="kubectl is not installed")
SHELLS = [s for s in ("dash", "bash", "busybox") if shutil.which(s)]


def aws_gpu_clusters(plan: Plan) -> list[ClusterPlan]:
    found = [
        cp for cp in plan.clusters.values() if cp.provider.name == "aws" and cp.cluster.node_pools
    ]
    assert found, "the shipped catalog has no AWS cluster with GPU pools"
    return found


def cluster_docs(files: dict[str, bytes], cluster: str) -> list[dict[str, Any]]:
    prefix = f"generated/clusters/{cluster}/"
    out: list[dict[str, Any]] = []
    for path, body in sorted(files.items()):
        if path.startswith(prefix):
            out += [d for d in yaml.safe_load_all(body) if d]
    return out


def readiness_docs(files: dict[str, bytes], cluster: str) -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all(files[f"generated/clusters/{cluster}/{BUNDLE}"]))
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs), "one object of each kind"
    return by_kind


def daemonset(files: dict[str, bytes], cluster: str) -> dict[str, Any]:
    return readiness_docs(files, cluster)["DaemonSet"]


# ------------------------------------------------------------------ where it is rendered


def test_rendered_on_every_aws_cluster_with_gpu_pools_only(
    plan: Plan, files: dict[str, bytes]
) -> None:
    clouds = set()
    for cp in plan.clusters.values():
        clouds.add(cp.provider.name)
        path = f"generated/clusters/{cp.name}/{BUNDLE}"
        # (the mesh's istio-remote-reader ClusterRole is not GPU readiness's)
        kinds = [
            d["kind"]
            for d in cluster_docs(files, cp.name)
            if d.get("metadata", {}).get("name") != "istio-remote-reader"
        ]
        if cp.provider.name == "aws" and cp.cluster.node_pools:
            assert sorted(readiness_docs(files, cp.name)) == sorted(KINDS)
            listed = yaml.safe_load(
                files[f"generated/clusters/{cp.name}/infrastructure/node-pools/kustomization.yaml"]
            )
            assert "gpu-readiness.yaml" in listed["resources"]
        else:
            # GKE advertises GPUs through its own device plugin flow: nothing to lift.
            assert path not in files
            assert "DaemonSet" not in kinds and "ClusterRole" not in kinds
    assert {"aws", "gcp"} <= clouds, "the shipped catalog should exercise both clouds"


def test_nothing_for_an_aws_cluster_without_gpu_pools(plan: Plan) -> None:
    cp = aws_gpu_clusters(plan)[0]
    bare = dataclasses.replace(cp, cluster=dataclasses.replace(cp.cluster, node_pools=()))
    assert list(gpureadiness.outputs(cp))
    assert list(gpureadiness.outputs(bare)) == []


# ------------------------------------------------------------------ scheduling


def _matches(term: dict[str, Any], labels: dict[str, str]) -> bool:
    for expr in term["matchExpressions"]:
        key, op = expr["key"], expr["operator"]
        if op == "Exists" and key not in labels:
            return False
        if op == "In" and labels.get(key) not in expr["values"]:
            return False
        if op not in ("Exists", "In"):
            raise AssertionError(f"operator {op} not modelled by this test")
    return True


def test_daemonset_tolerates_exactly_the_nodepool_taints(
    plan: Plan, files: dict[str, bytes]
) -> None:
    for cp in aws_gpu_clusters(plan):
        pools = [d for d in cluster_docs(files, cp.name) if d["kind"] == "NodePool"]
        assert len(pools) == len(cp.cluster.node_pools)
        taints = set()
        for np in pools:
            spec = np["spec"]["template"]["spec"]
            taints |= {(t["key"], t["effect"]) for t in spec["taints"] + spec["startupTaints"]}
        pod = daemonset(files, cp.name)["spec"]["template"]["spec"]
        tolerated = {(t["key"], t["effect"]) for t in pod["tolerations"]}
        assert tolerated == taints
        assert all(t["operator"] == "Exists" for t in pod["tolerations"])


def test_daemonset_lands_on_every_gpu_pool_and_nowhere_else(
    plan: Plan, files: dict[str, bytes]
) -> None:
    for cp in aws_gpu_clusters(plan):
        pools = [d for d in cluster_docs(files, cp.name) if d["kind"] == "NodePool"]
        pod = daemonset(files, cp.name)["spec"]["template"]["spec"]
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"
        ]
        for np in pools:
            node_labels = np["spec"]["template"]["metadata"]["labels"]
            assert any(_matches(t, node_labels) for t in terms), np["metadata"]["name"]
        # A system node (Karpenter's own, or a managed node group) has none of them.
        system_node = {"kubernetes.io/os": "linux", "eks.amazonaws.com/nodegroup": "system"}
        assert not any(_matches(t, system_node) for t in terms)


def test_script_is_told_the_taint_the_nodepools_set(plan: Plan, files: dict[str, bytes]) -> None:
    for cp in aws_gpu_clusters(plan):
        pools = [d for d in cluster_docs(files, cp.name) if d["kind"] == "NodePool"]
        startup = {
            (t["key"], t["effect"])
            for np in pools
            for t in np["spec"]["template"]["spec"]["startupTaints"]
        }
        env = {e["name"]: e for e in container(daemonset(files, cp.name))["env"]}
        assert startup == {(env["TAINT_KEY"]["value"], env["TAINT_EFFECT"]["value"])}
        assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


# ------------------------------------------------------------------ RBAC and pod security


def test_rbac_grants_only_get_and_patch_on_nodes(plan: Plan, files: dict[str, bytes]) -> None:
    for cp in aws_gpu_clusters(plan):
        docs = readiness_docs(files, cp.name)
        role, binding, sa = docs["ClusterRole"], docs["ClusterRoleBinding"], docs["ServiceAccount"]
        assert role["rules"] == [
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]}
        ]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role["metadata"]["name"],
        }
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": sa["metadata"]["name"],
                "namespace": sa["metadata"]["namespace"],
            }
        ]
        pod = docs["DaemonSet"]["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == sa["metadata"]["name"]
        # No other binding in the cluster hands this account anything more.
        subject = binding["subjects"][0]
        naming = [
            d["metadata"]["name"]
            for d in cluster_docs(files, cp.name)
            if d["kind"] in ("RoleBinding", "ClusterRoleBinding") and subject in d["subjects"]
        ]
        assert naming == [binding["metadata"]["name"]]


def container(ds: dict[str, Any]) -> dict[str, Any]:
    (only,) = ds["spec"]["template"]["spec"]["containers"]
    return only


def test_pod_meets_the_restricted_pod_security_level(plan: Plan, files: dict[str, bytes]) -> None:
    for cp in aws_gpu_clusters(plan):
        docs = readiness_docs(files, cp.name)
        ns, ds = docs["Namespace"], docs["DaemonSet"]
        assert ds["metadata"]["namespace"] == ns["metadata"]["name"] == "llmgen-system"
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        pod = ds["spec"]["template"]["spec"]
        c = container(ds)
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] >= 10000
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["securityContext"]["runAsNonRoot"] is True
        # restricted admits only these volume types; no host namespaces or ports
        assert all(set(v) - {"name"} <= {"emptyDir", "projected", "configMap", "secret"}
                   for v in pod.get("volumes", []))  # fmt: skip
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
        assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"]
        # Pinned image with a shell; registry.k8s.io/kubectl has none.
        image = c["image"]
        assert ":" in image and not image.endswith(":latest")
        assert c["command"][:2] == ["/bin/sh", "-c"]
        # kubectl's cache goes to the writable emptyDir, not the read-only root
        env = {e["name"]: e.get("value") for e in c["env"]}
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert env["HOME"] in mounts


# ------------------------------------------------------------------ strict schemas and kustomize


def test_documents_validate_strictly_and_kustomize_builds(
    plan: Plan, files: dict[str, bytes], crd_schemas: Path, tmp_path: Path
) -> None:
    cp = aws_gpu_clusters(plan)[0]
    body = files[f"generated/clusters/{cp.name}/{BUNDLE}"].decode()
    docs = [(BUNDLE, 1, d) for d in yaml.safe_load_all(body)]
    problems = verify_documents(docs, crd_schemas)
    assert not [p for p in problems if p.is_error], problems
    if REAL_KUBECTL is None:
        pytest.skip("kubectl is not installed: kustomize build not run")
    (tmp_path / "gpu-readiness.yaml").write_text(body)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources:\n  - gpu-readiness.yaml\n"
    )
    built = subprocess.run(
        [REAL_KUBECTL, "kustomize", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    assert sorted(d["kind"] for d in yaml.safe_load_all(built.stdout)) == sorted(KINDS)


def test_schema_validation_is_strict(crd_schemas: Path) -> None:
    """The check above can fail: an unknown DaemonSet field is an error."""
    bad = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "x", "namespace": "llmgen-system"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i:1", "tolerate": []}]},
            },
        },
    }
    assert [p for p in verify_documents([("x.yaml", 1, bad)], crd_schemas) if p.is_error]


# ------------------------------------------------------------------ the script, run for real

STARTUP = {"key": "llmgen.io/gpu-initializing", "value": "true", "effect": "NoSchedule"}
GPU = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
# Same key, other effect: must survive (the script removes key AND effect).
DECOY = {"key": "llmgen.io/gpu-initializing", "value": "true", "effect": "NoExecute"}
OTHER = {"key": "example.com/maintenance", "effect": "PreferNoSchedule"}
# What Karpenter may add while the script works (a concurrent change).
DISRUPTED = {"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}

SHIM = r"""#!{python}
# Fake kubectl: serves one Node from a file; real kubectl evaluates and patches it.
import json, os, subprocess, sys
d = os.environ["SHIM_DIR"]
state, log = os.path.join(d, "node.json"), os.path.join(d, "calls.jsonl")
ctl = json.load(open(os.path.join(d, "control.json")))
node = json.load(open(state))
calls = [json.loads(line) for line in open(log)] if os.path.exists(log) else []
argv = sys.argv[1:]
fail = None
if argv[:2] == ["get", "node"] and "allocatable" in " ".join(argv):
    served = sum(1 for c in calls if "allocatable" in " ".join(c["argv"]))
    value = ctl["allocatable"][min(served, len(ctl["allocatable"]) - 1)]
    if value == "error":
        fail = "Unable to connect to the server: dial tcp 10.100.0.1:443: i/o timeout"
    else:
        gpus = {{}} if value is None else {{"nvidia.com/gpu": value}}
        node["status"]["allocatable"] = {{"cpu": "8", **gpus}}
patches = sum(1 for c in calls if c["argv"][:1] == ["patch"])
if argv[:1] == ["patch"] and ctl["race"] and patches == 0:
    # Another controller adds a taint between the script's read and its patch.
    node["spec"]["taints"].insert(0, ctl["race"])
json.dump(node, open(state, "w"))
with open(log, "a") as f:
    gpus = node["status"].get("allocatable", {{}}).get("nvidia.com/gpu")
    f.write(json.dumps({{"argv": argv, "allocatable": gpus}}) + "\n")
if fail:
    sys.exit(fail)
if len(argv) > 2 and argv[2] != node["metadata"]["name"]:
    sys.exit('Error from server (NotFound): nodes "%s" not found' % argv[2])


def local(*args):
    cmd = [ctl["real"], "patch", "--local", "-f", state, *args]
    return subprocess.run(cmd, capture_output=True, text=True)


if argv[:2] == ["get", "node"] and len(argv) == 5 and argv[3] == "-o":
    out = local("--type=merge", "-p", "{{}}", "-o", argv[4])
    sys.stdout.write(out.stdout)
elif argv[:2] == ["patch", "node"] and len(argv) == 6 and argv[3:5] == ["--type=json", "-p"]:
    out = local("--type=json", "-p", argv[5], "-o", "json")
    if out.returncode == 0:
        open(state, "w").write(out.stdout)
        print("node/%s patched" % argv[2])
else:
    sys.exit("fake kubectl: unexpected arguments %r" % (argv,))
sys.stderr.write(out.stderr)
sys.exit(out.returncode)
"""

#: Poll sleeps the fake `sleep` allows before it stops a script that never gets GPUs.
MAX_POLLS = 40
# The poll sleeps return at once; the idle sleep (3600 s) stands in for the
# kubelet stopping the pod, so the run ends through the script's TERM trap.
FAKE_SLEEP = f"""#!/bin/sh
echo "$1" >> "$SHIM_DIR/sleeps"
if [ "$1" = 3600 ] || [ "$(wc -l < "$SHIM_DIR/sleeps")" -ge {MAX_POLLS} ]; then
  kill -TERM "$PPID"
fi
"""


def run_script(
    files: dict[str, bytes],
    cluster: str,
    tmp_path: Path,
    shell: str,
    taints: list[dict[str, str]],
    allocatable: list[str | None],
    race: dict[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]], dict[str, Any], list[str]]:
    ds = daemonset(files, cluster)
    c = container(ds)
    script = c["command"][2]
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    d = tmp_path / "shim"
    (d / "bin").mkdir(parents=True)
    kubectl = d / "bin" / "kubectl"
    kubectl.write_text(SHIM.format(python=sys.executable))
    sleep = d / "bin" / "sleep"
    sleep.write_text(FAKE_SLEEP)
    for exe in (kubectl, sleep):
        exe.chmod(0o755)
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "ip-10-0-7-9.ec2.internal"},
        "spec": {"taints": taints},
        "status": {},
    }
    (d / "node.json").write_text(json.dumps(node))
    control = {"real": REAL_KUBECTL, "allocatable": allocatable, "race": race}
    (d / "control.json").write_text(json.dumps(control))
    (d / "home").mkdir()
    run_env = {
        **env,
        "NODE_NAME": node["metadata"]["name"],
        "SHIM_DIR": str(d),
        "PATH": f"{d / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(d / "home"),
    }
    argv = ["busybox", "sh", "-c", script] if shell == "busybox" else [shell, "-c", script]
    # The timeout only stops a broken script from hanging the suite.
    proc = subprocess.run(
        argv, env=run_env, capture_output=True, text=True, timeout=120, check=False
    )
    calls = [json.loads(line) for line in (d / "calls.jsonl").read_text().splitlines()]
    sleeps = (d / "sleeps").read_text().split() if (d / "sleeps").exists() else []
    return proc, calls, json.loads((d / "node.json").read_text()), sleeps


def cluster_for_script(plan: Plan) -> str:
    return aws_gpu_clusters(plan)[0].name


@needs_kubectl
@pytest.mark.parametrize("shell", SHELLS)
def test_script_waits_for_gpus_then_removes_only_the_startup_taint(
    plan: Plan, files: dict[str, bytes], tmp_path: Path, shell: str
) -> None:
    taints = [GPU, DECOY, STARTUP, OTHER]
    # Not yet registered, an API hiccup, registered with none allocatable, then 4.
    proc, calls, node, sleeps = run_script(
        files, cluster_for_script(plan), tmp_path, shell, taints, [None, "error", "0", "0", "4"]
    )
    assert proc.returncode == 0, proc.stderr  # ended by the TERM trap, not by an error
    patches = [c for c in calls if c["argv"][0] == "patch"]
    assert len(patches) == 1
    # Never patched while the node advertised no GPU.
    first_patch = calls.index(patches[0])
    assert [c["allocatable"] for c in calls[:first_patch]] == [None, None, "0", "0", "4", "4"]
    assert sum("allocatable" in " ".join(c["argv"]) for c in calls) == 5
    assert node["spec"]["taints"] == [GPU, DECOY, OTHER]
    # Polled between checks, then idled (no further API calls after the patch).
    assert sleeps == ["5", "5", "5", "5", "3600"]
    assert calls[-1] is patches[0]
    assert "removed llmgen.io/gpu-initializing:NoSchedule" in proc.stdout


@needs_kubectl
@pytest.mark.parametrize("shell", SHELLS)
def test_script_never_untaints_a_node_without_gpus(
    plan: Plan, files: dict[str, bytes], tmp_path: Path, shell: str
) -> None:
    """With allocatable stuck at 0 the loop keeps polling (until the fake sleep stops it)."""
    proc, calls, node, sleeps = run_script(
        files, cluster_for_script(plan), tmp_path, shell, [GPU, STARTUP], ["0"]
    )
    assert proc.returncode == 0, proc.stderr
    assert sleeps == ["5"] * MAX_POLLS
    assert len(calls) == MAX_POLLS and all(c["argv"][0] == "get" for c in calls)
    assert node["spec"]["taints"] == [GPU, STARTUP]


@needs_kubectl
@pytest.mark.parametrize("shell", SHELLS)
def test_script_retries_when_the_taint_list_changes_under_it(
    plan: Plan, files: dict[str, bytes], tmp_path: Path, shell: str
) -> None:
    proc, calls, node, sleeps = run_script(
        files, cluster_for_script(plan), tmp_path, shell, [GPU, STARTUP], ["4"], race=DISRUPTED
    )
    assert proc.returncode == 0, proc.stderr
    patches = [c for c in calls if c["argv"][0] == "patch"]
    assert len(patches) == 2  # the first failed its `test` and removed nothing
    assert "/spec/taints/1" in patches[0]["argv"][5]
    assert "/spec/taints/2" in patches[1]["argv"][5]
    assert node["spec"]["taints"] == [DISRUPTED, GPU]
    assert sleeps == ["5", "3600"]


@needs_kubectl
@pytest.mark.parametrize("shell", SHELLS)
def test_script_idles_when_the_taint_is_already_gone(
    plan: Plan, files: dict[str, bytes], tmp_path: Path, shell: str
) -> None:
    """A restarted container on an untainted node patches nothing."""
    proc, calls, node, sleeps = run_script(
        files, cluster_for_script(plan), tmp_path, shell, [GPU, DECOY], ["4"]
    )
    assert proc.returncode == 0, proc.stderr
    assert not [c for c in calls if c["argv"][0] == "patch"]
    assert node["spec"]["taints"] == [GPU, DECOY]
    assert sleeps == ["3600"]
    assert "has no llmgen.io/gpu-initializing:NoSchedule taint" in proc.stdout
