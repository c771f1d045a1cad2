"""Weights sync (layer `weights`): fill each cloud's mirror from the hub, once per revision.

For every (model, revision) some environment reads from a cloud's mirror
(`plan.mirror.items_of`), the cloud's designated sync cluster
(`weightsMirror.<cloud>.syncCluster`) runs one Job, named by model and
revision, in namespace `llmgen-weights`:

1. `download` (the model's own vLLM image, which ships huggingface_hub):
   `snapshot_download` of the repository at the revision into a volume;
2. `manifest` (same image): `sha256sum` of every file, sorted by path, into
   `llmgen-manifest.sha256`; where the catalog pins `weights.sha256` the
   manifest must hash to it, or the Job fails before anything is uploaded;
3. `upload` (the cloud's CLI image, `CloudProvider.mirror_upload`): each file
   the manifest lists, encrypted with the catalog's KMS key and tagged with
   its SHA-256 as object metadata; a file already there with that tag is
   skipped, one with another tag is never overwritten; the manifest goes
   last, so its presence means the prefix is complete. Model pods wait for
   it (`weights.wait_container`) and never copy a half-written prefix.

Each model's Jobs (with their service accounts, hub-token ExternalSecrets,
staging volumes and "slow" alerts) sit in `weights/<model>/`, its own Flux
Kustomization after the `weights` layer (namespace, policy, shared alerts),
so no Flux path grows with the catalog.

Resumable: the staging volume is a PersistentVolumeClaim named like the
Job, so a retried pod continues the hub download where it stopped (hub
downloads into a local dir skip finished files) and the upload skips what is
already in the bucket. The Job's pod template is immutable and its name
carries the revision: a new revision is a new Job, a synced one never runs
again. No `ttlSecondsAfterFinished`: Flux would re-create a deleted Job.

Why no Flux dependency from models on this layer: kstatus (which Flux's
`wait` uses) reports a started Job as Current ("Job in progress",
kubernetes-sigs/cli-utils pkg/kstatus/status/core.go `jobConditions`), so a
dependency would release the models while the copy is still running; the
pods' wait on the manifest is what orders them. A failed Job does make this
layer's Kustomization not Ready, which `llmgen status` and the alerts show.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgen.catalog import names
from llmgen.catalog import secret_backends as sb
from llmgen.catalog.rules_weights import HF_TOKEN_ENV
from llmgen.clouds.aws_mirror import SYNC_ROLE_PREFIX
from llmgen.render.concerns import mirror_aws, mirror_gcp, weights
from llmgen.render.concerns.monitoring import alert_rule, runbook_base
from llmgen.render.concerns.security import HTTPS_ANYWHERE, KUBE_DNS, restricted_container
from llmgen.render.types import Output, file_name, weights_layer

if TYPE_CHECKING:
    from llmgen.catalog.model import WeightsMirror
    from llmgen.plan.build import ClusterPlan
    from llmgen.plan.mirror import MirrorItem

LAYER = "weights"
NAMESPACE = names.WEIGHTS_NAMESPACE
COMPONENT = "weights-sync"
STAGING = "/staging"
#: Non-root IDs outside the range of host users (checkov CKV_K8S_40 asks >= 10000).
RUN_AS = 10001
#: Retries of the whole pod (download resumes from the volume, upload skips done files).
BACKOFF_LIMIT = 6
#: A hard stop: a copy still running after a day is stuck, not slow.
ACTIVE_DEADLINE_SECONDS = 86400
#: Conservative end-to-end rate (hub download, hash, upload): the "slow" alert's clock.
EXPECTED_MIB_PER_SECOND = 50

#: The download step; the repository, revision and skipped patterns come
#: from the environment, so no catalog value is pasted into code.
DOWNLOAD_SCRIPT = (
    "import os\n"
    "from huggingface_hub import snapshot_download\n"
    "snapshot_download(repo_id=os.environ['HF_REPO'], revision=os.environ['HF_REVISION'],\n"
    "                  local_dir=os.environ['WEIGHTS_DIR'], max_workers=8,\n"
    "                  ignore_patterns=os.environ['HF_IGNORE'].split(','))\n"
)
#: Files vLLM never loads: Meta's original PyTorch checkpoints (`original/`
#: doubles a Llama repository) and other frameworks' formats.
IGNORE_PATTERNS = ("original/*", "*.pth", "*.pt", "*.msgpack", "*.h5", "*.onnx", "onnx/*")
#: The manifest: every file but the manifest and the hub client's `.cache/`,
#: `sha256sum` lines sorted bytewise by path (column 67 on: 64 hex digits and
#: two spaces come first), hashed four files at a time. This is the contract
#: `weights.sha256` pins and the pods' verify-weights checks.
MANIFEST_SCRIPT = r"""cd "$WEIGHTS_DIR"
tmp="${TMPDIR:-/tmp}"
out="$tmp/$WEIGHTS_MANIFEST"
find . -path ./.cache -prune -o -type f ! -name "$WEIGHTS_MANIFEST" -printf '%P\n' > "$tmp/files"
xargs -r -d '\n' -n 4 -P 4 sha256sum -- < "$tmp/files" | LC_ALL=C sort -k 1.67 > "$out"
# sh has no pipefail: a file that failed to hash is a missing line.
if [ "$(wc -l < "$out")" -ne "$(wc -l < "$tmp/files")" ]; then
  echo "hashed $(wc -l < "$out") of $(wc -l < "$tmp/files") files" >&2
  exit 1
fi
mv "$out" "$WEIGHTS_MANIFEST"
echo "manifest sha256: $(sha256sum < "$WEIGHTS_MANIFEST" | cut -d' ' -f1)"
if [ -n "${WEIGHTS_SHA256:-}" ]; then
  echo "$WEIGHTS_SHA256  $WEIGHTS_MANIFEST" | sha256sum -c -
fi
"""
RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "1", "memory": "2Gi"},
    "limits": {"cpu": "4", "memory": "4Gi"},
}
# Deliberate checkov findings, with the reason a reviewer needs.
CHECKOV_SKIPS = (
    "CKV_K8S_35=huggingface_hub reads HF_TOKEN from the environment only; the value "
    "comes from an ExternalSecret-managed Secret",
    "CKV_K8S_43=The model's image is digest-pinned where the environment requires it; "
    "the cloud CLI image is pinned by version like the pods' fetch-weights",
)


#: Per cloud: the bucket, key grant and per-revision identities as cloud resources.
STORES = {"aws": mirror_aws.outputs, "gcp": mirror_gcp.outputs}


def job_name(item: MirrorItem) -> str:
    """`<model>-<revision[:8]>`, shortened with a stable hash past 63 characters."""
    rev = "".join(c for c in item.revision.lower() if c.isalnum())[:8] or "rev"
    name = f"{item.model.name}-{rev}"
    if len(name) <= names.MAX_NAME:
        return name
    digest = hashlib.sha256(item.uri.encode()).hexdigest()[:8]
    return f"{name[: names.MAX_NAME - 9].rstrip('-')}-{digest}"


def identity_id(item: MirrorItem) -> str:
    """The per-revision cloud identity: `wsync-<12 hex of the URI>` fits every cloud's limits."""
    return SYNC_ROLE_PREFIX + hashlib.sha256(item.uri.encode()).hexdigest()[:12]


def staging_gib(item: MirrorItem) -> int:
    """The staging volume: the weights, the hub client's partial files, and 25 % headroom."""
    return max(1, math.ceil(item.gib * 1.25))


def slow_after_seconds(item: MirrorItem) -> int:
    """When a running sync counts as stuck: three times the expected time, at least an hour."""
    expected = item.gib * 1024 / EXPECTED_MIB_PER_SECOND
    return max(3600, math.ceil(expected * 3 / 60) * 60)


def applies(cp: ClusterPlan) -> bool:
    """Only each cloud's sync cluster renders this layer (plan attaches the items there)."""
    return bool(cp.mirror_items)


def synced(cp: ClusterPlan) -> list[MirrorItem]:
    """The items a Job fills: commits only (a branch moves; validate warns about those)."""
    return [i for i in cp.mirror_items if i.commit]


def _labels(cp: ClusterPlan, item: MirrorItem | None = None) -> dict[str, str]:
    labels = {**cp.labels, "app.kubernetes.io/component": COMPONENT}
    if item is not None:
        labels |= {
            "app.kubernetes.io/name": job_name(item),
            "llmgen.io/model": item.model.name,
            "llmgen.io/team": item.model.team,
            "llmgen.io/cost-center": item.model.cost_center,
        }
    return labels


def hf_token_secret(cp: ClusterPlan, item: MirrorItem) -> dict[str, Any] | None:
    """The ExternalSecret of the model's hub token in the sync namespace (None: no token)."""
    env = cp.environment
    secret = next((s for s in item.model.secrets if s.env == HF_TOKEN_ENV), None)
    if secret is None or env is None:
        return None
    backend = sb.backend_for(secret, env, cp.cluster.cloud)
    if backend is None or sb.secret_problem(secret, env, cp.cluster):
        return None  # validate reports it at the sync cluster (rules_weights)
    ref = sb.remote_ref(secret, env, backend)
    return {
        "name": f"{job_name(item)}-hf-token"[: names.MAX_NAME],
        "namespace": NAMESPACE,
        "labels": _labels(cp, item),
        "refresh_interval": sb.refresh_interval(secret, env),
        "store": sb.store_name(backend),
        "store_kind": "ClusterSecretStore",
        "deletion_policy": "Retain",
        "secret_key": secret.key,
        "remote_key": ref.key,
        "remote_property": ref.property,
    }


def job_context(cp: ClusterPlan, item: MirrorItem, mirror: WeightsMirror) -> dict[str, Any]:
    """Everything the Job says, decided here; the template holds only its shape."""
    name = job_name(item)
    weights_dir = f"{STAGING}/weights"
    security = restricted_container(RUN_AS)
    mounts = [{"name": "staging", "mountPath": STAGING}, {"name": "tmp", "mountPath": "/tmp"}]
    common = [
        {"name": "WEIGHTS_DIR", "value": weights_dir},
        {"name": "WEIGHTS_MANIFEST", "value": weights.MANIFEST},
        {"name": "HOME", "value": "/tmp"},
    ]
    token = hf_token_secret(cp, item)
    download_env: list[dict[str, Any]] = [
        *common,
        {"name": "HF_REPO", "value": item.model.repo},
        {"name": "HF_REVISION", "value": item.revision},
        # The hub client's cache and lock files live on the volume, so a retry resumes.
        {"name": "HF_HOME", "value": f"{STAGING}/hf-home"},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
        {"name": "HF_IGNORE", "value": ",".join(IGNORE_PATTERNS)},
    ]
    if token is not None:
        download_env.append(
            {
                "name": HF_TOKEN_ENV,
                "valueFrom": {"secretKeyRef": {"name": token["name"], "key": token["secret_key"]}},
            }
        )
    manifest_env = list(common)
    if item.sha256:
        manifest_env.append({"name": "WEIGHTS_SHA256", "value": item.sha256})
    upload = cp.provider.mirror_upload(item.uri, mirror.kms_key)
    upload_env = [*common, *({"name": k, "value": v} for k, v in sorted(upload.env.items()))]

    def container(name_: str, image: str, command: list[str], env: list[Any]) -> dict[str, Any]:
        return {
            "name": name_,
            "image": image,
            "imagePullPolicy": weights.pull_policy(image),
            "command": command,
            "env": env,
            "resources": RESOURCES,
            "securityContext": security,
            "volumeMounts": mounts,
        }

    return {
        "name": name,
        "namespace": NAMESPACE,
        "labels": _labels(cp, item),
        "annotations": {
            "llmgen.io/weights-uri": item.uri,
            "llmgen.io/weights-sha256": item.sha256 or "unpinned",
            "llmgen.io/weights-gib": f"{item.gib:.1f}",
            **{f"checkov.io/skip{i}": why for i, why in enumerate(CHECKOV_SKIPS, 1)},
        },
        "service_account": name,
        "backoff_limit": BACKOFF_LIMIT,
        "active_deadline_seconds": ACTIVE_DEADLINE_SECONDS,
        "run_as": RUN_AS,
        "init_containers": [
            container(
                "download",
                item.model.image,
                ["python3", "-c", DOWNLOAD_SCRIPT],
                download_env,
            ),
            container(
                "manifest", item.model.image, ["/bin/sh", "-ec", MANIFEST_SCRIPT], manifest_env
            ),
        ],
        "containers": [
            container(
                "upload", weights.fetch_image(cp) or upload.image, list(upload.command), upload_env
            )
        ],
        "claim": name,
    }


def alert_groups(cp: ClusterPlan) -> list[dict[str, Any]]:
    """Sync failures and stuck syncs, from kube-state-metrics' Job series.

    kube_job_failed{condition="true"} is the Job's Failed condition (backoff
    limit or deadline reached); kube_job_status_failed counts failed pods, so
    it fires on the first retry; kube_job_status_start_time gives the age of a
    Job that has not completed (kube-state-metrics internal/store/job.go).
    """
    base = runbook_base(cp.platform)
    sel = f'namespace="{NAMESPACE}"'
    done = f'unless on (namespace, job_name) (kube_job_complete{{{sel}, condition="true"}} == 1)'
    rules = [
        alert_rule(
            base,
            "LlmgenWeightsSyncFailed",
            f'kube_job_failed{{{sel}, condition="true"}} == 1',
            "0m",
            "critical",
            "Weights sync {{ $labels.job_name }} failed",
            "The mirror sync Job gave up (backoff limit or deadline). Models of this revision "
            "wait for their mirror and do not start.",
        ),
        alert_rule(
            base,
            "LlmgenWeightsSyncRetrying",
            f"sum by (namespace, job_name) (kube_job_status_failed{{{sel}}}) > 0 {done}",
            "0m",
            "warning",
            "Weights sync {{ $labels.job_name }} is retrying",
            "A pod of the mirror sync Job failed; the Job retries and resumes.",
        ),
    ]
    return [{"name": "llmgen-weights-sync", "rules": rules}]


def slow_groups(cp: ClusterPlan, items: list[MirrorItem]) -> list[dict[str, Any]]:
    """One model's "still running past its expected time" alerts, one per revision
    (in the model's own folder, so the shared rule does not grow with the catalog)."""
    base = runbook_base(cp.platform)
    sel = f'namespace="{NAMESPACE}"'
    done = f'unless on (namespace, job_name) (kube_job_complete{{{sel}, condition="true"}} == 1)'
    rules = []
    for item in items:
        name = job_name(item)
        limit = slow_after_seconds(item)
        rules.append(
            alert_rule(
                base,
                "LlmgenWeightsSyncSlow",
                f'time() - kube_job_status_start_time{{{sel}, job_name="{name}"}} > {limit} '
                + done,
                "0m",
                "warning",
                f"Weights sync {name} has run for more than {limit // 60} minutes",
                f"{item.uri} is still being written; expected about "
                f"{math.ceil(limit / 3 / 60)} minutes.",
            )
        )
    return [{"name": f"llmgen-weights-sync-{items[0].model.name}", "rules": rules}]


def outputs(cp: ClusterPlan) -> Iterator[Output]:
    if not applies(cp):
        return
    mirror = cp.platform.weights_mirrors[cp.cluster.cloud]
    labels = _labels(cp)
    gcp = cp.cluster.cloud == "gcp"  # Config Connector takes its project from the namespace
    yield Output(
        f"{LAYER}/{file_name('Namespace', NAMESPACE)}",
        "weights/namespace.yaml.j2",
        {
            "name": NAMESPACE,
            "labels": labels,
            "annotations": mirror_gcp.namespace_annotations(cp) if gcp else {},
        },
    )
    # The bucket and each revision's writer identity, as cloud resources.
    store = STORES.get(cp.cluster.cloud)
    if store is not None:
        yield from store(cp, mirror, synced(cp), NAMESPACE, labels, identity_id, job_name)
    yield Output(
        f"{LAYER}/{file_name('NetworkPolicy', NAMESPACE)}",
        "mesh/networkpolicy.yaml.j2",
        {
            "name": NAMESPACE,
            "namespace": NAMESPACE,
            "labels": labels,
            "pod_selector": {},
            "policy_types": ["Ingress", "Egress"],
            # Nothing connects in. Out: DNS, HTTPS to the hub and the object store
            # (no stable IPs, no FQDN rules in core NetworkPolicy), cloud credentials.
            "ingress": [],
            "egress": [
                {
                    "to": [KUBE_DNS],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
                {"to": [HTTPS_ANYWHERE], "ports": [{"protocol": "TCP", "port": 443}]},
                *cp.provider.workload_identity_egress(cp.cluster),
            ],
        },
    )
    yield Output(
        f"{LAYER}/{file_name('PrometheusRule', COMPONENT)}",
        "monitoring/prometheusrule.yaml.j2",
        {
            "name": f"llmgen-{COMPONENT}",
            "namespace": NAMESPACE,
            "labels": labels,
            "groups": alert_groups(cp),
        },
    )
    by_model: dict[str, list[MirrorItem]] = {}
    for item in synced(cp):
        by_model.setdefault(item.model.name, []).append(item)
    for model, items in by_model.items():
        yield Output(
            f"{weights_layer(model)}/{file_name('PrometheusRule', f'{COMPONENT}-{model}')}",
            "monitoring/prometheusrule.yaml.j2",
            {
                "name": f"llmgen-{COMPONENT}-{model}"[: names.MAX_NAME],
                "namespace": NAMESPACE,
                "labels": _labels(cp, items[0]),
                "groups": slow_groups(cp, items),
            },
        )
    for item in synced(cp):
        name = job_name(item)
        folder = weights_layer(item.model.name)
        item_labels = _labels(cp, item)
        yield Output(
            f"{folder}/{file_name('ServiceAccount', name)}",
            "models/serviceaccount.yaml.j2",
            {
                "name": name,
                "namespace": NAMESPACE,
                "labels": item_labels,
                "sa_annotations": cp.provider.mirror_writer_annotations(
                    cp.cluster, identity_id(item)
                ),
            },
        )
        token = hf_token_secret(cp, item)
        if token is not None:
            yield Output(
                f"{folder}/{file_name('ExternalSecret', token['name'])}",
                "secrets/externalsecret.yaml.j2",
                token,
            )
        yield Output(
            f"{folder}/{file_name('PersistentVolumeClaim', name)}",
            "weights/pvc.yaml.j2",
            {
                "name": name,
                "namespace": NAMESPACE,
                "labels": item_labels,
                "size": f"{staging_gib(item)}Gi",
            },
        )
        yield Output(
            f"{folder}/{file_name('Job', name)}",
            "weights/job.yaml.j2",
            job_context(cp, item, mirror),
        )
