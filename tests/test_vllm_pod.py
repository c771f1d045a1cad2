"""The vLLM pod on a real cluster (issue 13): identity, drain, rollout deadline, flags, pulls.

Each test reads the rendered shipped catalog and checks what the consuming
program does with the field, running that program where it can be run here
(Python's getpass, the drain script against an HTTP /metrics, GNU xargs).
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmgen.catalog import engines
from llmgen.plan.build import ClusterPlan, Placement, Plan
from llmgen.render.concerns import vllm, weights, workloads

REPO = Path(__file__).resolve().parents[1]


def docs(files: dict[str, bytes], cluster: str) -> list[dict[str, Any]]:
    prefix = f"generated/clusters/{cluster}/"
    return [
        d
        for path, body in sorted(files.items())
        if path.startswith(prefix) and not path.endswith("kustomization.yaml")
        for d in yaml.safe_load_all(body)
        if d
    ]


def deployments(
    plan: Plan, files: dict[str, bytes]
) -> Iterator[tuple[ClusterPlan, Placement, dict[str, Any]]]:
    for cp in plan.clusters.values():
        by_name = {
            d["metadata"]["name"]: d for d in docs(files, cp.name) if d["kind"] == "Deployment"
        }
        for p in cp.placements:
            if not p.model.multi_node:  # a LeaderWorkerSet: tests/test_multinode.py
                yield cp, p, by_name[p.name]


def container(dep: dict[str, Any], name: str = "vllm") -> dict[str, Any]:
    spec = dep["spec"]["template"]["spec"]
    return next(
        c for c in [*spec.get("initContainers", []), *spec["containers"]] if c["name"] == name
    )


def env_of(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}


# ---------------------------------------------------------------- point 2


def test_getuser_works_for_a_uid_without_passwd_entry(plan: Plan, files: dict[str, bytes]) -> None:
    """torch Inductor's `getpass.getuser()` reads LOGNAME/USER before the passwd database.

    The rendered UID (10001) has no entry in the vLLM image, so without them
    the call raises KeyError at import. Python's own getpass runs here with
    exactly the container's environment and must not need pwd.
    """
    for _, _, dep in deployments(plan, files):
        c = container(dep)
        assert c["securityContext"]["runAsUser"] == workloads.RUN_AS
        env = env_of(c)
        code = (
            "import getpass, pwd\n"
            "def boom(uid): raise KeyError(f'getpwuid(): uid not found: {uid}')\n"
            "pwd.getpwuid = boom\n"
            "print(getpass.getuser())\n"
        )
        clean = {k: v for k, v in env.items() if k in ("USER", "LOGNAME")}
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={"PATH": os.environ["PATH"], **clean},
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == vllm.USER
        # Inductor and Triton caches on the writable /tmp emptyDir.
        mounts = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
        for key in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
            assert any(env[key].startswith(m + "/") for m in mounts), key


def test_getuser_fails_without_user_and_logname() -> None:
    """The failure the environment prevents (so the test above can fail)."""
    code = (
        "import getpass, pwd\n"
        "def boom(uid): raise KeyError(f'getpwuid(): uid not found: {uid}')\n"
        "pwd.getpwuid = boom\n"
        "getpass.getuser()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "uid not found" in out.stderr


# ---------------------------------------------------------------- point 5


def test_rollouts_have_the_planned_cold_start(plan: Plan, files: dict[str, bytes]) -> None:
    """progressDeadlineSeconds covers node, image, copy, verify and load (default 600 does not)."""
    for cp, p, dep in deployments(plan, files):
        io = workloads.node_io(cp, p)
        deadline = dep["spec"]["progressDeadlineSeconds"]
        mirrored = bool(cp.provider.weights_uri(p.model))
        assert deadline >= weights.cold_start_seconds(p.model, io, mirrored)
        probe = container(dep)["startupProbe"]
        assert (
            deadline
            > probe["failureThreshold"] * probe["periodSeconds"] + weights.NODE_AND_IMAGE_SECONDS
        )
        assert deadline > 600


def test_termination_waits_for_running_requests(plan: Plan, files: dict[str, bytes]) -> None:
    """vLLM 0.11 aborts running requests on SIGTERM: preStop drains, grace covers the drain."""
    for _, p, dep in deployments(plan, files):
        c = container(dep)
        assert engines.image_version(p.model.image) == (0, 11)
        command = c["lifecycle"]["preStop"]["exec"]["command"]
        bound = int(command[5])
        assert bound == vllm.drain_seconds(p.model)  # the model's longest route timeout
        grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace >= bound + vllm.EXIT_SECONDS
        assert "--shutdown-timeout" not in c["args"]  # 0.11 has no such flag


class _Metrics(http.server.BaseHTTPRequestHandler):
    running: list[float] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        value = self.running.pop(0) if len(self.running) > 1 else self.running[0]
        body = (
            "# HELP vllm:num_requests_running Number of requests running.\n"
            f'vllm:num_requests_running{{engine="0",model_name="m"}} {value}\n'
            'vllm:num_requests_waiting{engine="0",model_name="m"} 0.0\n'
        ).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def metrics_server() -> Iterator[tuple[int, type[_Metrics]]]:
    handler = type("Handler", (_Metrics,), {"running": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


def _drain(port: int, bound: int) -> None:
    """Run the drain; the subprocess timeout only guards against a hang (no timing asserted)."""
    subprocess.run(
        [sys.executable, "-c", vllm.DRAIN_SCRIPT, str(port), "0", str(bound), "0"],
        check=True,
        timeout=120,
    )


def test_drain_script_returns_once_vllm_is_idle(metrics_server: tuple[int, type[_Metrics]]) -> None:
    port, handler = metrics_server
    handler.running = [2.0, 1.0, 0.0]
    _drain(port, bound=30)
    assert handler.running == [0.0]  # it polled until the idle answer


def test_drain_script_gives_up_at_its_bound(metrics_server: tuple[int, type[_Metrics]]) -> None:
    port, handler = metrics_server
    handler.running = [1.0]  # a stream that never ends: only the bound stops the drain
    _drain(port, bound=1)
    assert handler.running == [1.0]


def test_drain_script_returns_when_vllm_is_gone() -> None:
    _drain(1, bound=3600)  # nothing listens on port 1: it returns instead of waiting an hour


# ---------------------------------------------------------------- point 8


def test_vllm_arguments_follow_the_pinned_version(plan: Plan, files: dict[str, bytes]) -> None:
    seen = set()
    for _, p, dep in deployments(plan, files):
        args = container(dep)["args"]
        assert "--task" not in args
        if p.model.task == "embed":
            i = args.index("--runner")
            assert args[i : i + 4] == ["--runner", "pooling", "--convert", "embed"]
            seen.add("embed")
        if p.model.quantization == "awq":
            # L4 is sm89; vLLM's AWQ Marlin kernels need sm80+.
            assert p.gpu.compute_capability == "8.9"
            assert args[args.index("--quantization") + 1] == "awq_marlin"
            seen.add("awq")
        assert int(args[args.index("--max-num-seqs") + 1]) > 0
    assert seen == {"embed", "awq"}


@pytest.mark.parametrize(
    ("quantization", "capability", "expected"),
    [
        ("awq", 89, "awq_marlin"),
        ("gptq", 80, "gptq_marlin"),
        ("awq", 75, "awq"),  # Turing: no Marlin
        ("awq", None, None),  # unknown GPU: let vLLM pick from the checkpoint
        ("fp8", 90, "fp8"),
    ],
)
def test_quantization_argument(
    quantization: str, capability: int | None, expected: str | None
) -> None:
    image = "vllm/vllm-openai:v0.11.0"
    assert engines.quantization_arg(quantization, image, capability) == expected


def test_shutdown_timeout_replaces_the_drain_from_0_18() -> None:
    caps = engines.capabilities("vllm/vllm-openai:v0.18.1@sha256:" + "a" * 64)
    assert caps.shutdown_timeout
    assert not engines.capabilities("vllm/vllm-openai:v0.11.0").shutdown_timeout
    assert engines.image_version("registry.example/vllm@sha256:" + "b" * 64) == engines.BASELINE


# ---------------------------------------------------------------- point 9


def test_digest_pinned_images_are_not_pulled_again(plan: Plan, files: dict[str, bytes]) -> None:
    for _, _, dep in deployments(plan, files):
        spec = dep["spec"]["template"]["spec"]
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            pinned = "@sha256:" in c["image"]
            assert c["imagePullPolicy"] == ("IfNotPresent" if pinned else "Always"), c["name"]


def test_copies_run_with_explicit_parallelism(plan: Plan, files: dict[str, bytes]) -> None:
    clouds = set()
    for cp, _, dep in deployments(plan, files):
        fetch = container(dep, "fetch-weights")
        env = env_of(fetch)
        if cp.provider.name == "gcp":
            # gcloud sizes its pools from the host's cores otherwise (208 on a3-highgpu-8g)
            assert int(env["CLOUDSDK_STORAGE_PROCESS_COUNT"]) <= int(
                fetch["resources"]["limits"]["cpu"]
            )
            assert int(env["CLOUDSDK_STORAGE_THREAD_COUNT"]) > 0
        else:
            assert "preferred_transfer_client crt" in fetch["command"][2]
            assert env["AWS_CONFIG_FILE"].startswith("/tmp/")
        verify = container(dep, "verify-weights")
        assert "xargs" in verify["command"][2] and "-P" in verify["command"][2]
        clouds.add(cp.provider.name)
    assert clouds == {"aws", "gcp"}


def test_dns_egress_reaches_node_local_resolvers(plan: Plan, files: dict[str, bytes]) -> None:
    """NodeLocal DNSCache (169.254.20.10) and GKE Cloud DNS (169.254.169.254) are not pods."""
    want = {"aws": {"169.254.20.10/32"}, "gcp": {"169.254.20.10/32", "169.254.169.254/32"}}
    for cp in plan.clusters.values():
        for d in docs(files, cp.name):
            if d["kind"] != "NetworkPolicy" or d["metadata"]["name"] != "allow-egress":
                continue
            dns = next(
                r for r in d["spec"]["egress"] if {"protocol": "UDP", "port": 53} in r["ports"]
            )
            blocks = {t["ipBlock"]["cidr"] for t in dns["to"] if "ipBlock" in t}
            assert blocks == want[cp.provider.name]


def test_aws_spot_pools_fall_back_to_on_demand(plan: Plan, files: dict[str, bytes]) -> None:
    checked = 0
    for cp in plan.clusters.values():
        if cp.provider.name != "aws":
            continue
        for d in docs(files, cp.name):
            if d["kind"] != "NodePool":
                continue
            reqs = {r["key"]: r["values"] for r in d["spec"]["template"]["spec"]["requirements"]}
            pool = next(p for p in cp.cluster.node_pools if d["metadata"]["name"].endswith(p.name))
            if pool.capacity_type == "spot":
                assert sorted(reqs["karpenter.sh/capacity-type"]) == ["on-demand", "spot"]
                checked += 1
            # every listed type fits some model of the catalog
            assert "g6.xlarge" not in reqs["node.kubernetes.io/instance-type"]
    assert checked
