"""`llmgen status` through the real Kubernetes client against a local fake API server.

The server (http.server on 127.0.0.1, one thread) answers the list calls
status makes with objects shaped like a real API server's: Flux
Kustomizations and HelmReleases with Ready conditions, apps/v1 Deployments
with status, KEDA ScaledObjects. Each "cluster" is a path prefix on it, and a
real kubeconfig file points each catalog kubeContext at its prefix.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from llmgen.cli.app import app
from llmgen.gitops.status import status
from llmgen.render.concerns.flux import layer_name
from llmgen.render.types import INFRA_LAYERS

TOKEN = "test-token-123"
DEV, STAGING_AWS, STAGING_GCP = "dev-aws-use2", "staging-aws-use1", "staging-gcp-usc1"
FLUX_KS = "/apis/kustomize.toolkit.fluxcd.io/v1/kustomizations"
FLUX_HR = "/apis/helm.toolkit.fluxcd.io/v2/helmreleases"
DEPLOYMENTS = "/apis/apps/v1/deployments"
SCALEDOBJECTS = "/apis/keda.sh/v1alpha1/scaledobjects"
LLMGEN = {"app.kubernetes.io/managed-by": "llmgen"}


class FakeApi(BaseHTTPRequestHandler):
    """Serves `routes[(cluster, path)]`; 404 with a Status body otherwise."""

    routes: dict[tuple[str, str], Any] = {}
    seen: list[dict[str, Any]] = []

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        cluster, _, rest = url.path.lstrip("/").partition("/")
        self.seen.append(
            {
                "cluster": cluster,
                "path": "/" + rest,
                "query": parse_qs(url.query),
                "auth": self.headers.get("Authorization"),
            }
        )
        body = self.routes.get((cluster, "/" + rest))
        code = 200
        if body is None:
            code = 404
            body = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "NotFound",
                "code": 404,
                "message": "the server could not find it",
            }
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep the test output clean


def _ready(ok: bool, reason: str, message: str) -> list[dict[str, str]]:
    return [
        {
            "type": "Ready",
            "status": "True" if ok else "False",
            "reason": reason,
            "message": message,
            "lastTransitionTime": "2025-01-01T00:00:00Z",
        }
    ]


def kustomization(name: str, revision: str, ok: bool = True, managed: bool = True) -> Any:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {
            "name": name,
            "namespace": "flux-system",
            "labels": LLMGEN if managed else {},
        },
        "spec": {
            "interval": "10m",
            "path": f"./generated/clusters/x/{name}",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "llmgen"},
        },
        "status": {
            "conditions": _ready(
                ok,
                "ReconciliationSucceeded" if ok else "HealthCheckFailed",
                f"Applied revision: {revision}"
                if ok
                else "timeout waiting for Deployment/llm-bge-m3/bge-m3",
            ),
            "lastAppliedRevision": revision,
            "observedGeneration": 1,
        },
    }


def helmrelease(name: str, ok: bool = True) -> Any:
    return {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": "flux-system", "labels": LLMGEN},
        "spec": {"interval": "1h", "chart": {"spec": {"chart": name}}},
        "status": {
            "conditions": _ready(
                ok,
                "InstallSucceeded" if ok else "InstallFailed",
                "Helm install succeeded"
                if ok
                else "Helm install failed: context deadline exceeded",
            ),
        },
    }


def deployment(model: str, ready: int, replicas: int, name: str | None = None) -> Any:
    labels = {**LLMGEN, "app.kubernetes.io/name": model, "llmgen.io/model": model}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name or model,
            "namespace": f"llm-{model}",
            "labels": labels,
            "generation": 3,
            "uid": f"uid-{model}",
        },
        "spec": {
            "selector": {"matchLabels": {"llmgen.io/model": model}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.10.1"}]},
            },
        },
        "status": {"replicas": replicas, "readyReplicas": ready, "observedGeneration": 3},
    }


def scaledobject(model: str, lo: int, hi: int) -> Any:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": model, "namespace": f"llm-{model}", "labels": LLMGEN},
        "spec": {
            "scaleTargetRef": {"name": model},
            "minReplicaCount": lo,
            "maxReplicaCount": hi,
            "triggers": [],
        },
    }


def lst(kind: str, api: str, items: list[Any]) -> Any:
    return {"apiVersion": api, "kind": kind, "metadata": {"resourceVersion": "42"}, "items": items}


@pytest.fixture
def api_server() -> Iterator[str]:
    FakeApi.routes, FakeApi.seen = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture
def repo(scratch_repo: Path) -> tuple[Path, str, str]:
    """The shipped catalog in git with two commits; returns (root, HEAD~1, HEAD)."""
    root = scratch_repo
    _git(root, "init", "-q", "-b", "main")
    _git(root, "-c", "user.name=T", "-c", "user.email=t@e", "add", ".")
    _git(root, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-q", "-m", "one")
    (root / "README.md").write_text("x\n")
    _git(root, "add", "README.md")
    _git(root, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-q", "-m", "two")
    return root, _git(root, "rev-parse", "HEAD~1"), _git(root, "rev-parse", "HEAD")


def _context(root: Path, cluster: str) -> str:
    return str(
        yaml.safe_load((root / f"catalog/clusters/{cluster}.yaml").read_text())["spec"][
            "kubeContext"
        ]
    )


def write_kubeconfig(path: Path, servers: dict[str, str]) -> Path:
    """A real kubeconfig: one cluster, user and context per kubeContext."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "current-context": next(iter(servers)),
        "clusters": [
            {"name": f"c{i}", "cluster": {"server": url}} for i, url in enumerate(servers.values())
        ],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [
            {"name": ctx, "context": {"cluster": f"c{i}", "user": "u"}}
            for i, ctx in enumerate(servers)
        ],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def serve_dev_healthy(head: str) -> None:
    rev = f"main@sha1:{head}"
    FakeApi.routes[(DEV, FLUX_KS)] = lst(
        "KustomizationList",
        "kustomize.toolkit.fluxcd.io/v1",
        [
            kustomization("flux-system", rev, managed=False),
            *(
                kustomization(n, rev)
                for n in (
                    *(layer_name(layer) for layer in INFRA_LAYERS),
                    "model-bge-m3",
                    "model-llama-3-1-8b-instruct",
                    "model-qwen2-5-32b-instruct-awq",
                )
            ),
        ],
    )
    FakeApi.routes[(DEV, FLUX_HR)] = lst(
        "HelmReleaseList", "helm.toolkit.fluxcd.io/v2", [helmrelease("keda"), helmrelease("istiod")]
    )
    FakeApi.routes[(DEV, DEPLOYMENTS)] = lst(
        "DeploymentList",
        "apps/v1",
        [
            deployment("bge-m3", 1, 1),
            deployment("llama-3-1-8b-instruct", 2, 2),
            deployment("qwen2-5-32b-instruct-awq", 0, 0),  # min 0: scaled to zero is healthy
        ],
    )
    FakeApi.routes[(DEV, SCALEDOBJECTS)] = lst(
        "ScaledObjectList",
        "keda.sh/v1alpha1",
        [
            scaledobject("bge-m3", 1, 1),
            scaledobject("llama-3-1-8b-instruct", 1, 2),
            scaledobject("qwen2-5-32b-instruct-awq", 0, 1),
        ],
    )


def serve_staging_broken(previous: str) -> None:
    rev = f"main@sha1:{previous}"
    FakeApi.routes[(STAGING_AWS, FLUX_KS)] = lst(
        "KustomizationList",
        "kustomize.toolkit.fluxcd.io/v1",
        [
            kustomization("infrastructure-controllers", rev),
            kustomization("model-bge-m3", rev, ok=False),
            kustomization("model-llama-3-1-8b-instruct", rev),
        ],
    )
    FakeApi.routes[(STAGING_AWS, FLUX_HR)] = lst(
        "HelmReleaseList", "helm.toolkit.fluxcd.io/v2", [helmrelease("keda", ok=False)]
    )
    FakeApi.routes[(STAGING_AWS, DEPLOYMENTS)] = lst(
        "DeploymentList",
        "apps/v1",
        [
            deployment("bge-m3", 0, 1),  # min 1, nothing ready: degraded
            deployment("llama-3-1-8b-instruct", 1, 1),
            deployment("llama-3-1-8b-instruct", 1, 1, name="llama-3-1-8b-instruct-canary"),
        ],
    )  # mixtral has no Deployment: missing
    FakeApi.routes[(STAGING_AWS, SCALEDOBJECTS)] = lst(
        "ScaledObjectList",
        "keda.sh/v1alpha1",
        [
            scaledobject("bge-m3", 1, 1),
            scaledobject("llama-3-1-8b-instruct", 1, 2),
        ],
    )  # no KEDA CRD answer would be a 404; here it is installed


def test_healthy_broken_and_unreachable_clusters(
    repo: tuple[Path, str, str], api_server: str, tmp_path: Path
) -> None:
    root, previous, head = repo
    serve_dev_healthy(head)
    serve_staging_broken(previous)
    kubeconfig = write_kubeconfig(
        tmp_path / "kubeconfig",
        {
            _context(root, DEV): f"{api_server}/{DEV}",
            _context(root, STAGING_AWS): f"{api_server}/{STAGING_AWS}",
            _context(root, STAGING_GCP): f"http://127.0.0.1:{_closed_port()}",
        },
    )

    report = status(root, clusters=[DEV, STAGING_AWS, STAGING_GCP], kubeconfig=kubeconfig)
    by = {c.cluster: c for c in report.clusters}
    assert report.head == head and not report.ok

    dev = by[DEV]
    assert dev.ok and dev.state == "ready"
    assert (dev.revision, dev.revision_state) == (head, "current")
    assert {m.model: m.state for m in dev.models} == {
        "bge-m3": "ready",
        "llama-3-1-8b-instruct": "ready",
        "qwen2-5-32b-instruct-awq": "scaled to zero",
    }
    llama = next(m for m in dev.models if m.model == "llama-3-1-8b-instruct")
    assert (llama.ready_replicas, llama.min_replicas, llama.max_replicas) == (2, 1, 2)
    assert llama.scaled_object == "llama-3-1-8b-instruct"

    staging = by[STAGING_AWS]
    assert staging.reachable and not staging.ok and staging.state == "not ready"
    assert staging.revision_state == "behind 1 commit"
    keda = next(f for f in staging.flux if f.kind == "HelmRelease")
    assert (keda.ready, keda.reason) == (False, "InstallFailed")
    assert "context deadline exceeded" in keda.message
    states = {(m.model, m.deployment): m.state for m in staging.models}
    assert states[("bge-m3", "bge-m3")] == "degraded"
    assert states[("mixtral-8x7b-instruct", "mixtral-8x7b-instruct")] == "missing"
    # The canary has no ScaledObject of its own: the plan's bounds stand in.
    assert states[("llama-3-1-8b-instruct", "llama-3-1-8b-instruct-canary")] == "ready"

    # A layer llmgen renders but the cluster never created is not ready, not silently absent.
    configs = next(f for f in staging.flux if f.name == "infrastructure-configs")
    assert (configs.ready, configs.reason) == (False, "NotFound")

    gcp = by[STAGING_GCP]
    assert not gcp.reachable and gcp.state == "unreachable"
    assert gcp.error is not None and "Connection refused" in gcp.error

    # Through the real client: bearer token sent, managed objects selected by label.
    assert {r["auth"] for r in FakeApi.seen} == {f"Bearer {TOKEN}"}
    dep_calls = [r for r in FakeApi.seen if r["path"] == DEPLOYMENTS]
    assert dep_calls and all(
        r["query"]["labelSelector"] == ["app.kubernetes.io/managed-by=llmgen"] for r in dep_calls
    )


def test_cli_table_json_and_exit_codes(
    repo: tuple[Path, str, str], api_server: str, tmp_path: Path
) -> None:
    root, previous, head = repo
    serve_dev_healthy(head)
    serve_staging_broken(previous)
    kubeconfig = write_kubeconfig(
        tmp_path / "kubeconfig",
        {
            _context(root, DEV): f"{api_server}/{DEV}",
            _context(root, STAGING_AWS): f"{api_server}/{STAGING_AWS}",
        },
    )
    runner = CliRunner()
    base = ["status", "--root", str(root), "--kubeconfig", str(kubeconfig)]
    ok = runner.invoke(app, [*base, "--cluster", DEV])
    assert ok.exit_code == 0, ok.output
    assert f"{DEV} (dev, context {_context(root, DEV)}): ready" in ok.output
    assert f"HEAD {head[:12]}: current" in ok.output

    bad = runner.invoke(app, [*base, "--cluster", STAGING_AWS, "--format", "json"])
    assert bad.exit_code == 1
    data = json.loads(bad.output)
    (cluster,) = data["clusters"]
    assert data["ok"] is False and cluster["state"] == "not ready" and cluster["reachable"]
    assert cluster["revision_state"] == "behind 1 commit"
    assert {m["deployment"]: m["state"] for m in cluster["models"]}["bge-m3"] == "degraded"
    # Each model is reported with its own Flux Kustomization (issue 14).
    by_model = {m["deployment"]: m for m in cluster["models"]}
    assert by_model["bge-m3"]["kustomization"] == "model-bge-m3"
    assert by_model["bge-m3"]["kustomization_state"] == "not ready"
    assert by_model["llama-3-1-8b-instruct"]["kustomization_state"] == "ready"
    mixtral = by_model["mixtral-8x7b-instruct"]
    assert mixtral["kustomization_state"] == "not ready"
    assert mixtral["kustomization_detail"].startswith("NotFound: llmgen renders this layer")
    assert {"kind": "HelmRelease", "name": "keda", "reason": "InstallFailed"}.items() <= next(
        f for f in cluster["flux"] if f["kind"] == "HelmRelease"
    ).items()

    # A context missing from the kubeconfig is that cluster's problem, reported.
    missing = runner.invoke(app, [*base, "--env", "staging"])
    assert missing.exit_code == 1
    assert (
        f"{STAGING_GCP} (staging, context {_context(root, STAGING_GCP)}): unreachable"
        in missing.output
    )
    assert f"kubeconfig: no context '{_context(root, STAGING_GCP)}'" in missing.output


def test_cluster_without_flux_is_not_ready(
    repo: tuple[Path, str, str], api_server: str, tmp_path: Path
) -> None:
    root, _previous, head = repo
    FakeApi.routes[(DEV, DEPLOYMENTS)] = lst("DeploymentList", "apps/v1", [])
    kubeconfig = write_kubeconfig(
        tmp_path / "kubeconfig", {_context(root, DEV): f"{api_server}/{DEV}"}
    )
    report = status(root, clusters=[DEV], kubeconfig=kubeconfig)
    (dev,) = report.clusters
    assert dev.reachable and not dev.ok and dev.revision_state == "unknown"
    assert {(f.kind, f.reason) for f in dev.flux} == {
        ("Kustomization", "NotInstalled"),
        ("HelmRelease", "NotInstalled"),
    }
    assert {m.state for m in dev.models} == {"missing"}


def test_stopped_environment_shows_stopped(
    repo: tuple[Path, str, str], api_server: str, tmp_path: Path
) -> None:
    root, _previous, head = repo
    env = root / "catalog/environments/dev.yaml"
    env.write_text(env.read_text().replace("spec:\n", "spec:\n  suspended: true\n", 1))
    serve_dev_healthy(head)
    FakeApi.routes[(DEV, DEPLOYMENTS)] = lst(
        "DeploymentList",
        "apps/v1",
        [
            deployment("bge-m3", 0, 0),
            deployment("llama-3-1-8b-instruct", 0, 0),
        ],
    )  # qwen's Deployment is gone entirely: still stopped, not missing
    kubeconfig = write_kubeconfig(
        tmp_path / "kubeconfig", {_context(root, DEV): f"{api_server}/{DEV}"}
    )
    report = status(root, envs=["dev"], kubeconfig=kubeconfig)
    (dev,) = report.clusters
    assert dev.stopped and dev.state == "stopped" and report.ok
    assert {m.state for m in dev.models} == {"stopped"}


def test_sync_cluster_reports_its_weights_sync_jobs(
    repo: tuple[Path, str, str], api_server: str, tmp_path: Path
) -> None:
    """prod-gcp-usc1 runs the GCP mirror's sync Jobs: status reads them and their pods."""
    from llmgen.gitops.syncstatus import JOB_NAME_LABEL
    from llmgen.render.concerns import weightsync

    root, _previous, head = repo
    sync = "prod-gcp-usc1"
    layers = ("controllers", "configs", "mesh-identity")
    names_ = [f"infrastructure-{x}" for x in layers] + ["models", "weights"]
    ks = [kustomization(n, f"main@sha1:{head}") for n in names_]
    FakeApi.routes[(sync, FLUX_KS)] = lst("KustomizationList", "kustomize.toolkit.fluxcd.io/v1", ks)
    FakeApi.routes[(sync, FLUX_HR)] = lst("HelmReleaseList", "helm.toolkit.fluxcd.io/v2", [])
    FakeApi.routes[(sync, DEPLOYMENTS)] = lst("DeploymentList", "apps/v1", [])
    FakeApi.routes[(sync, SCALEDOBJECTS)] = lst("ScaledObjectList", "keda.sh/v1alpha1", [])
    from llmgen.plan.build import build_plan
    from llmgen.render.pipeline import checked_catalog

    items = [i for i in build_plan(checked_catalog(root)[0]).clusters[sync].mirror_items]
    names = [weightsync.job_name(i) for i in items]
    done = {"type": "Complete", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}
    jobs = [
        {"apiVersion": "batch/v1", "kind": "Job",
         "metadata": {"name": n, "namespace": "llmgen-weights"},
         "status": {"succeeded": 1, "conditions": [done]} if i else {"active": 1, "failed": 1}}
        for i, n in enumerate(names)
    ]  # fmt: skip
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{names[0]}-abcde", "namespace": "llmgen-weights",
                     "labels": {JOB_NAME_LABEL: names[0]},
                     "creationTimestamp": "2025-01-01T00:00:00Z"},
        "status": {"initContainerStatuses": [
            {"name": "download", "ready": False, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"terminated": {"exitCode": 0, "startedAt": "2025-01-01T00:00:00Z",
                                      "finishedAt": "2025-01-01T00:10:00Z"}}},
            {"name": "manifest", "ready": False, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"running": {"startedAt": "2025-01-01T00:10:00Z"}}},
        ]},
    }  # fmt: skip
    base = "/apis/batch/v1/namespaces/llmgen-weights/jobs"
    FakeApi.routes[(sync, base)] = lst("JobList", "batch/v1", jobs)
    FakeApi.routes[(sync, "/api/v1/namespaces/llmgen-weights/pods")] = lst("PodList", "v1", [pod])
    kubeconfig = write_kubeconfig(
        tmp_path / "kubeconfig", {_context(root, sync): f"{api_server}/{sync}"}
    )
    report = status(root, clusters=[sync], kubeconfig=kubeconfig)
    (c,) = report.clusters
    assert c.reachable, c.error
    got = {w.job: (w.state, w.step, w.failed_pods) for w in c.weights}
    assert got[names[0]] == ("running", "manifest", 1)
    assert all(got[n] == ("complete", "", 0) for n in names[1:])
    assert not any(f.name == "weights" and f.reason == "NotFound" for f in c.flux)
    asked = [s for s in FakeApi.seen if s["path"] == base]
    assert asked and asked[0]["query"]["labelSelector"] == [
        "app.kubernetes.io/component=weights-sync"
    ]
    result = CliRunner().invoke(
        app, ["status", "--root", str(root), "--cluster", sync, "--kubeconfig", str(kubeconfig)]
    )
    assert f"llmgen-weights/{names[0]}" in result.output and "sync running" in result.output


def test_a_multi_node_model_is_listed_as_its_leaderworkerset(
    repo: tuple[Path, str, str], api_server: str, tmp_path: Path
) -> None:
    """A multi-node model runs as a LeaderWorkerSet (render/concerns/group.py), so its
    row names that kind, as do the JSON and a missing set's detail; Deployments stay
    Deployments. The typed Deployment list leaves its items' kind unset (the client's
    V1DeploymentList), so the kind cannot come from the items alone."""
    root, _, _ = repo
    prod, lws_model = "prod-aws-use1", "llama-3-1-405b-instruct"
    ns = f"llm-{lws_model}"
    lws = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": lws_model, "namespace": ns,
                     "labels": {**LLMGEN, "llmgen.io/model": lws_model}},
        "status": {"readyReplicas": 1, "replicas": 1},
    }  # fmt: skip
    bge = deployment("bge-m3", 1, 1)
    bge["kind"] = None  # as the typed list serialises it
    FakeApi.routes[(prod, DEPLOYMENTS)] = lst("DeploymentList", "apps/v1", [bge])
    FakeApi.routes[(prod, "/apis/leaderworkerset.x-k8s.io/v1/leaderworkersets")] = lst(
        "LeaderWorkerSetList", "leaderworkerset.x-k8s.io/v1", [lws]
    )
    # prod may be its cloud's weights-sync cluster: no sync Jobs running.
    FakeApi.routes[(prod, "/apis/batch/v1/namespaces/llmgen-weights/jobs")] = lst(
        "JobList", "batch/v1", []
    )
    FakeApi.routes[(prod, "/api/v1/namespaces/llmgen-weights/pods")] = lst("PodList", "v1", [])
    kubeconfig = write_kubeconfig(
        tmp_path / "kubeconfig", {_context(root, prod): f"{api_server}/{prod}"}
    )
    base = ["status", "--root", str(root), "--cluster", prod, "--kubeconfig", str(kubeconfig)]
    runner = CliRunner()
    table = runner.invoke(app, base).output
    # Each row's kind cell beside the first line of its name cell (rich folds long names).
    rows = re.findall(r"│ (\w+) +│ (\S+)", table)
    assert [k for k, name in rows if f"{ns}/{lws_model}".startswith(name)] == ["LeaderWorkerSet"], (
        table
    )
    assert ("Deployment", "llm-bge-m3/bge-m3") in rows, table
    models = json.loads(runner.invoke(app, [*base, "--format", "json"]).output)["clusters"][0][
        "models"
    ]
    kinds = {m["model"]: m["kind"] for m in models}
    assert kinds[lws_model] == "LeaderWorkerSet" and kinds["bge-m3"] == "Deployment"

    FakeApi.routes[(prod, "/apis/leaderworkerset.x-k8s.io/v1/leaderworkersets")] = lst(
        "LeaderWorkerSetList", "leaderworkerset.x-k8s.io/v1", []
    )
    gone = runner.invoke(app, base).output
    assert re.search(r"│ LeaderWorkerSet │ llm-llama-3-1-40.*│ missing +│ no LeaderWorkerSet", gone)
