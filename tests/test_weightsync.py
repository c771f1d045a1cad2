"""The weights sync layer: what each cloud's sync cluster renders, and how it behaves.

Alerts run through promtool against kube-state-metrics series shaped as
kube-state-metrics v2 exports them (internal/store/job.go). The Flux ordering
test encodes kstatus' Job rule (kubernetes-sigs/cli-utils
pkg/kstatus/status/core.go `jobConditions`: a started Job is Current), which
is why models do not depend on this layer and wait on the manifest instead.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmgen.catalog.names import WEIGHTS_NAMESPACE
from llmgen.gitops.syncstatus import JOB_NAME_LABEL, current_step, sync_statuses
from llmgen.plan.build import Plan
from llmgen.render.concerns import weightsync
from rendered import of_kind, render_repo

REPO = Path(__file__).resolve().parents[1]
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")
Docs = dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def shipped() -> tuple[Plan, Docs]:
    return render_repo(REPO)


def sync_docs(docs: Docs, cluster: str, kind: str) -> list[dict[str, Any]]:
    return [
        d
        for d in docs[cluster]
        if d["kind"] == kind and d["metadata"].get("namespace") == WEIGHTS_NAMESPACE
    ]


def test_only_each_clouds_sync_cluster_renders_the_layer(shipped: tuple[Plan, Docs]) -> None:
    plan, docs = shipped
    with_jobs = {c for c in docs if sync_docs(docs, c, "Job")}
    assert with_jobs == {"prod-aws-use1", "prod-gcp-usc1"}
    for cluster, ks in of_kind(docs, "Kustomization"):
        if ks["apiVersion"].startswith("kustomize.toolkit") and ks["metadata"]["name"] == "weights":
            assert cluster in with_jobs
            assert ks["spec"]["path"] == f"./generated/clusters/{cluster}/weights"
        # kstatus reports a started Job as Current: a dependency on the weights
        # layers would release the models mid-copy, so no model depends on
        # them; each model's sync Jobs (`weights-<model>`, one Flux path per
        # model so none grows with the catalog) wait for the namespace's layer.
        deps = [d["name"] for d in ks.get("spec", {}).get("dependsOn", [])]
        name = ks["metadata"]["name"]
        if name.startswith("weights-"):
            model = name.removeprefix("weights-")
            assert deps == ["infrastructure-controllers", "weights"]
            assert ks["spec"]["path"] == f"./generated/clusters/{cluster}/weights/{model}"
        else:
            assert not any(d == "weights" or d.startswith("weights-") for d in deps), name


def test_each_models_sync_jobs_are_their_own_flux_path(files: dict[str, bytes]) -> None:
    """`weights/<model>/` holds that model's Jobs (every revision) and nothing else;
    the `weights` folder keeps only what does not grow with the catalog."""
    base = "generated/clusters/prod-aws-use1/weights/"
    seen = 0
    for path, body in files.items():
        if not path.startswith(base) or path.endswith("kustomization.yaml"):
            continue
        rest = path[len(base) :]
        docs = [d for d in yaml.safe_load_all(body) if d]
        if "/" in rest:
            model = rest.split("/", 1)[0]
            assert {d["metadata"]["labels"]["llmgen.io/model"] for d in docs} == {model}
            seen += sum(1 for d in docs if d["kind"] == "Job")
        else:
            # once per cluster: the namespace, its policy, the shared alerts and
            # the mirror's bucket with the sync roles' boundary (docs/weights.md)
            assert {d["kind"] for d in docs} <= {
                "Namespace",
                "NetworkPolicy",
                "PrometheusRule",
                "Bucket",
                "Policy",
            }
    assert seen >= 5


def test_one_job_per_revision_each_cloud_needs(shipped: tuple[Plan, Docs]) -> None:
    plan, docs = shipped
    for cluster in ("prod-aws-use1", "prod-gcp-usc1"):
        cp = plan.clusters[cluster]
        jobs = {j["metadata"]["name"]: j for j in sync_docs(docs, cluster, "Job")}
        wanted = {weightsync.job_name(i): i for i in cp.mirror_items if i.commit}
        assert set(jobs) == set(wanted)
        # every revision some environment runs on this cloud, canaries included
        placed = {
            (p.model.name, p.model.revision)
            for ep in plan.environments.values()
            for p in ep.placements
            if p.cluster.cloud == cp.cluster.cloud
        }
        assert placed <= {(i.model.name, i.revision) for i in wanted.values()}
        assert any(i.canary for i in wanted.values())
        for name, job in jobs.items():
            item = wanted[name]
            spec = job["spec"]
            # A finished Job must stay: Flux would re-create a deleted one and copy again.
            assert "ttlSecondsAfterFinished" not in spec
            pod = spec["template"]["spec"]
            assert pod["restartPolicy"] == "Never" and spec["backoffLimit"] >= 1
            steps = [c["name"] for c in pod["initContainers"] + pod["containers"]]
            assert steps == ["download", "manifest", "upload"]
            env = {e["name"]: e for c in pod["initContainers"] for e in c["env"]}
            assert env["HF_REPO"]["value"] == item.model.repo
            assert env["HF_REVISION"]["value"] == item.revision
            if item.sha256:
                assert env["WEIGHTS_SHA256"]["value"] == item.sha256
            if any(s.env == "HF_TOKEN" for s in item.model.secrets):
                token = env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"]
                found = sync_docs(docs, cluster, "ExternalSecret")
                assert token in {s["metadata"]["name"] for s in found}  # a store, never a value
            else:
                assert "HF_TOKEN" not in env
            upload = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
            mirror = cp.platform.weights_mirrors[cp.cluster.cloud]
            assert upload["MIRROR_URI"] == item.uri and upload["MIRROR_KMS_KEY"] == mirror.kms_key
            claim = pod["volumes"][0]["persistentVolumeClaim"]["claimName"]
            assert claim in {
                c["metadata"]["name"] for c in sync_docs(docs, cluster, "PersistentVolumeClaim")
            }


def test_the_sync_namespace_may_read_the_secret_stores(shipped: tuple[Plan, Docs]) -> None:
    _plan, docs = shipped
    for cluster in ("prod-aws-use1", "prod-gcp-usc1"):
        used = {
            s["spec"]["secretStoreRef"]["name"] for s in sync_docs(docs, cluster, "ExternalSecret")
        }
        stores = {
            d["metadata"]["name"]: d for d in docs[cluster] if d["kind"] == "ClusterSecretStore"
        }
        for name in used:
            conditions = stores[name]["spec"]["conditions"]
            assert any(WEIGHTS_NAMESPACE in c.get("namespaces", []) for c in conditions)


def test_each_revision_has_its_own_identity(shipped: tuple[Plan, Docs]) -> None:
    plan, docs = shipped
    for cluster, key in (
        ("prod-aws-use1", "eks.amazonaws.com/role-arn"),
        ("prod-gcp-usc1", "iam.gke.io/gcp-service-account"),
    ):
        ids = [
            sa["metadata"]["annotations"][key] for sa in sync_docs(docs, cluster, "ServiceAccount")
        ]
        assert len(ids) == len(set(ids)) == len(sync_docs(docs, cluster, "Job"))
    aws = plan.clusters["prod-aws-use1"]
    item = aws.mirror_items[0]
    policy = aws.provider.mirror_writer_policy(
        item.bucket, item.prefix, "arn:aws:kms:us-east-1:111122223333:key/k"
    )
    writes = policy["Statement"][0]
    assert writes["Resource"] == f"arn:aws:s3:::{item.bucket}/{item.prefix}*"
    assert not {"s3:DeleteObject", "s3:ListBucket", "s3:PutObjectVersion"} & set(writes["Action"])
    gcp = plan.clusters["prod-gcp-usc1"]
    bindings = gcp.provider.mirror_writer_policy(item.bucket, item.prefix, "")["bindings"]
    assert {b["role"] for b in bindings} == {
        "roles/storage.objectCreator",
        "roles/storage.objectViewer",
    }
    assert all(item.prefix in b["condition"]["expression"] for b in bindings)


# ------------------------------------------------------------------ alerts


def _rules(docs: Docs) -> dict[str, Any]:
    """Every sync alert group of the cluster (the shared rule and each model's)."""
    rules = sync_docs(docs, "prod-aws-use1", "PrometheusRule")
    assert len(rules) > 1
    return {"groups": [g for r in rules for g in r["spec"]["groups"]]}


def _promtool(tmp_path: Path, rules: dict[str, Any], tests: list[dict[str, Any]]) -> str:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests})
    )
    assert PROMTOOL is not None
    check = subprocess.run(
        [PROMTOOL, "check", "rules", "rules.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    out = subprocess.run(
        [PROMTOOL, "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _names(expected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return expected


@needs_promtool
def test_sync_alerts_fire_on_failure_retry_and_a_stuck_copy(
    shipped: tuple[Plan, Docs], tmp_path: Path
) -> None:
    plan, docs = shipped
    rules = _rules(docs)
    by_name = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    item = next(i for i in plan.clusters["prod-aws-use1"].mirror_items if i.model.name == "bge-m3")
    job = weightsync.job_name(item)
    slow = next(
        r for g in rules["groups"] for r in g["rules"]
        if r["alert"] == "LlmgenWeightsSyncSlow" and f'job_name="{job}"' in r["expr"]
    )  # fmt: skip
    limit = weightsync.slow_after_seconds(item)
    sel = f'namespace="{WEIGHTS_NAMESPACE}", job_name="{job}"'
    labels = {"namespace": WEIGHTS_NAMESPACE, "job_name": job}

    def exp(rule: dict[str, Any], **extra: str) -> dict[str, Any]:
        notes = {
            k: v.replace("{{ $labels.job_name }}", job) for k, v in rule["annotations"].items()
        }
        return {"exp_labels": {**rule["labels"], **labels, **extra}, "exp_annotations": notes}

    minutes = limit // 60
    span = minutes + 10
    tests = [
        {   # failed for good: Failed condition true
            "interval": "1m",
            "input_series": [
                {"series": f'kube_job_failed{{{sel}, condition="true"}}', "values": "0 0 1x5"},
                {"series": f'kube_job_status_failed{{{sel}, reason=""}}', "values": "0 1 7x5"},
                {"series": f'kube_job_complete{{{sel}, condition="true"}}', "values": "0x7"},
            ],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "LlmgenWeightsSyncFailed", "exp_alerts": []},
                {"eval_time": "3m", "alertname": "LlmgenWeightsSyncFailed",
                 "exp_alerts": [exp(by_name["LlmgenWeightsSyncFailed"], condition="true")]},
                {"eval_time": "1m", "alertname": "LlmgenWeightsSyncRetrying",
                 "exp_alerts": [exp(by_name["LlmgenWeightsSyncRetrying"])]},
            ],
        },
        {   # a retry that then completes: the retry alert clears
            "interval": "1m",
            "input_series": [
                {"series": f'kube_job_status_failed{{{sel}, reason=""}}', "values": "0 1 1 1"},
                {"series": f'kube_job_complete{{{sel}, condition="true"}}', "values": "0 0 0 1"},
            ],
            "alert_rule_test": [
                {"eval_time": "2m", "alertname": "LlmgenWeightsSyncRetrying",
                 "exp_alerts": [exp(by_name["LlmgenWeightsSyncRetrying"])]},
                {"eval_time": "3m", "alertname": "LlmgenWeightsSyncRetrying", "exp_alerts": []},
            ],
        },
        {   # a copy still running past its size-derived limit
            "interval": "1m",
            "input_series": [
                {"series": f"kube_job_status_start_time{{{sel}}}", "values": f"0x{span}"},
                {"series": f'kube_job_complete{{{sel}, condition="true"}}', "values": f"0x{span}"},
            ],
            "alert_rule_test": [
                {"eval_time": f"{minutes - 5}m", "alertname": "LlmgenWeightsSyncSlow",
                 "exp_alerts": []},
                {"eval_time": f"{minutes + 5}m", "alertname": "LlmgenWeightsSyncSlow",
                 "exp_alerts": [exp(slow)]},
            ],
        },
    ]  # fmt: skip
    _promtool(tmp_path, rules, tests)


def test_alert_runbooks_exist() -> None:
    text = (REPO / "docs" / "runbooks.md").read_text()
    for name in ("LlmgenWeightsSyncFailed", "LlmgenWeightsSyncRetrying", "LlmgenWeightsSyncSlow"):
        assert f"## {name}\n" in text


# ------------------------------------------------------------------ status


def job(name: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": WEIGHTS_NAMESPACE}, "status": status}


def cond(kind: str, reason: str = "", message: str = "") -> list[dict[str, str]]:
    return [{"type": kind, "status": "True", "reason": reason, "message": message}]


def pod(jobname: str, stamp: str, *finished: str, running: str) -> dict[str, Any]:
    done = [{"name": n, "state": {"terminated": {"exitCode": 0}}} for n in finished]
    now = [{"name": running, "state": {"running": {"startedAt": stamp}}}]
    return {
        "metadata": {"labels": {JOB_NAME_LABEL: jobname}, "creationTimestamp": stamp},
        "status": {"initContainerStatuses": done + (now if running != "upload" else []),
                   "containerStatuses": now if running == "upload" else []},
    }  # fmt: skip


def test_status_reads_progress_from_jobs_and_pods(shipped: tuple[Plan, Docs]) -> None:
    plan, _docs = shipped
    items = [i for i in plan.clusters["prod-gcp-usc1"].mirror_items if i.commit][:4]
    names = [weightsync.job_name(i) for i in items]
    jobs = [
        job(names[0], succeeded=1, conditions=cond("Complete")),
        job(names[1], active=1, failed=2),
        job(names[2], failed=7, conditions=cond("Failed", "BackoffLimitExceeded", "limit")),
    ]  # fmt: skip
    pods = [
        pod(names[1], "2026-01-01T00:00:00Z", running="download"),
        pod(names[1], "2026-01-01T01:00:00Z", "download", "manifest", running="upload"),
    ]
    got = {s.job: s for s in sync_statuses(items, jobs, pods)}
    assert (got[names[0]].state, got[names[0]].ok) == ("complete", True)
    assert (got[names[1]].state, got[names[1]].step, got[names[1]].failed_pods) == (
        "running",
        "upload",  # the newest pod's step
        2,
    )
    assert got[names[2]].state == "failed" and not got[names[2]].ok
    assert "BackoffLimitExceeded" in got[names[2]].message
    assert got[names[3]].state == "missing" and not got[names[3]].ok
    assert current_step(pods[0]) == "download"


# ------------------------------------------------------------------ plan


def test_plan_prices_each_clouds_mirror_once_per_revision() -> None:
    import json

    from llmgen.catalog.cost import weights_disk_gib
    from llmgen.cli.planview import plan_command

    data = json.loads(plan_command(REPO, None, "json"))["weights_mirrors"]
    assert [m["cloud"] for m in data] == ["aws", "gcp"]
    aws = data[0]
    assert aws["usd_per_gib_month"] == pytest.approx(0.023 * 1.073741824, abs=1e-5)
    uris = [r["uri"] for r in aws["revisions"]]
    assert len(uris) == len(set(uris))  # prod, staging and dev share one copy
    mixtral = [r for r in aws["revisions"] if r["model"] == "mixtral-8x7b-instruct"]
    assert sorted(r["canary"] for r in mixtral) == [False, True]  # staging's canary revision
    catalog_gib = sum(r["gib"] for r in aws["revisions"])
    assert aws["gib"] == pytest.approx(catalog_gib, abs=0.2)
    assert aws["usd_per_month"] == pytest.approx(aws["gib"] * aws["usd_per_gib_month"], abs=0.05)
    from llmgen.render.pipeline import checked_catalog

    catalog, _ = checked_catalog(REPO)
    llama = catalog.models["llama-3-3-70b-instruct"]
    assert any(r["gib"] == round(weights_disk_gib(llama), 1) for r in aws["revisions"])
    text = plan_command(REPO, ["dev"], "text")
    assert "Weights mirrors" in text and "gcp " not in text.split("Weights mirrors")[1]


def test_checkov_passes_on_the_weights_layer_or_each_finding_is_justified(
    tmp_path: Path,
) -> None:
    import json

    from llmgen.plan.build import build_plan
    from llmgen.render.engine import render_plan
    from llmgen.render.pipeline import checked_catalog

    checkov = shutil.which("checkov")
    if checkov is None:
        pytest.skip("checkov is not installed (pip install checkov)")
    plan = build_plan(checked_catalog(REPO)[0])
    files = render_plan(plan, REPO / "templates", REPO).files
    for cluster in ("prod-aws-use1", "prod-gcp-usc1"):
        prefix = f"generated/clusters/{cluster}/weights/"
        for path, body in files.items():
            if path.startswith(prefix) and not path.endswith("kustomization.yaml"):
                (tmp_path / f"{cluster}-{path.rsplit('/', 1)[1]}").write_bytes(body)
    proc = subprocess.run(
        [checkov, "-d", str(tmp_path), "--framework", "kubernetes", "-o", "json"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin:" + str(Path(checkov).parent), "BC_SKIP_MAPPING": "TRUE"},
        check=False,
    )
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    skipped = {c["check_id"] for r in reports for c in r["results"]["skipped_checks"]}
    assert not failed, [(c["check_id"], c["resource"]) for c in failed]
    assert skipped == {s.split("=", 1)[0] for s in weightsync.CHECKOV_SKIPS}
