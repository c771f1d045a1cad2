"""The weights supply chain against real object-store servers.

- S3: moto's server (a local implementation of the S3 and KMS APIs) stores
  SSE-KMS key IDs and user metadata as S3 does. Where the AWS CLI is on PATH
  (.ci/run installs it in a virtualenv of its own), the sync Job's rendered
  upload and wait scripts run for real against it.
- GCS: gcp-storage-emulator (PyPI), started as a subprocess, serves the JSON
  API google-cloud-storage speaks. It does not implement CMEK: it drops
  `kmsKeyName`, so the GCS test checks that llmgen asks for the object
  metadata that carries the key and reports a missing key; README says so.

The manifest is made by the sync Job's own manifest script (sh, find, xargs,
sort, sha256sum) on files written here, so these tests hold the Job, the
pods' verify step and `llmgen weights check` to one contract.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer
from ruamel.yaml import YAML
from typer.testing import CliRunner

from llmgen.cli.app import app
from llmgen.clouds.aws import MIRROR_UPLOAD_SCRIPT, MIRROR_WAIT_SCRIPT
from llmgen.plan.build import Plan
from llmgen.render.concerns import weights
from llmgen.render.concerns.weightsync import MANIFEST_SCRIPT
from llmgen.weights.check import check_weights, key_matches, parse_manifest
from llmgen.weights.stores import GcsStore, S3Store

BUCKET = "example-llm-weights"
GCS_KEY = "projects/llm-prod-4821/locations/us/keyRings/llm-weights/cryptoKeys/weights"
FILES = {
    "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
    "model-00001-of-00002.safetensors": b"shard one" * 1000,
    "model-00002-of-00002.safetensors": b"shard two" * 1000,
    "tokenizer/tokenizer.json": b'{"version": "1.0"}',
    "a b.txt": b"a name with a space",
}
DEV_MODELS = ("llama-3-1-8b-instruct", "qwen2-5-32b-instruct-awq", "bge-m3")
AWS_CLI = shutil.which("aws")
needs_aws_cli = pytest.mark.skipif(
    AWS_CLI is None, reason="the AWS CLI is not on PATH (.ci/run installs awscli in a venv)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ the manifest


def make_weights(root: Path) -> tuple[Path, str]:
    """A downloaded revision (with the hub client's .cache) and its manifest (the Job's script)."""
    folder = root / "weights"
    for rel, data in FILES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    (folder / ".cache" / "huggingface").mkdir(parents=True)
    (folder / ".cache" / "huggingface" / "x.lock").write_bytes(b"")
    run_manifest(folder, root)
    manifest = (folder / weights.MANIFEST).read_bytes()
    return folder, hashlib.sha256(manifest).hexdigest()


def run_manifest(folder: Path, tmp: Path, pin: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "WEIGHTS_DIR": str(folder),
        "WEIGHTS_MANIFEST": weights.MANIFEST,
        "TMPDIR": str(tmp),
        "WEIGHTS_SHA256": pin,
    }
    return subprocess.run(
        ["/bin/sh", "-ec", MANIFEST_SCRIPT], env=env, capture_output=True, text=True, check=False
    )


def pods_verify(plan: Plan) -> dict[str, Any]:
    """A mirrored, pinned model's verify-weights init container, as the pods get it."""
    for cp in plan.clusters.values():
        for p in cp.placements:
            if not p.model.weights_sha256:
                continue
            inits = weights.init_containers(cp.provider, p.model, {}, "tmp")
            for c in inits:
                if c["name"] == "verify-weights":
                    return c
    raise AssertionError("no pinned model reads from a mirror")


def test_manifest_script_writes_the_contract_the_pods_verify(tmp_path: Path, plan: Plan) -> None:
    folder, digest = make_weights(tmp_path)
    text = (folder / weights.MANIFEST).read_text()
    expected = "".join(
        f"{hashlib.sha256(FILES[p]).hexdigest()}  {p}\n" for p in sorted(FILES, key=str.encode)
    )
    assert text == expected  # every file, sorted by path, no .cache, no manifest
    assert parse_manifest(text) == {p: hashlib.sha256(d).hexdigest() for p, d in FILES.items()}
    # The pods' verify-weights, run as rendered (its command and its whole
    # environment, e.g. VERIFY_PARALLELISM), on this folder and pinned to this
    # manifest, accepts exactly this, and refuses another pin.
    container = pods_verify(plan)
    assert container["command"] == ["/bin/sh", "-ec", weights.VERIFY_SCRIPT]
    verify = {e["name"]: e["value"] for e in container["env"]}
    assert set(verify) >= {"WEIGHTS_DIR", "WEIGHTS_MANIFEST", "WEIGHTS_SHA256"}
    verify |= {"PATH": os.environ["PATH"], "WEIGHTS_DIR": str(folder), "WEIGHTS_SHA256": digest}
    ok = subprocess.run(container["command"], env=verify, capture_output=True, check=False)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        container["command"],
        env={**verify, "WEIGHTS_SHA256": "0" * 64},
        capture_output=True,
        check=False,
    )
    assert bad.returncode != 0


def test_manifest_script_refuses_a_revision_that_is_not_the_pinned_one(tmp_path: Path) -> None:
    folder, digest = make_weights(tmp_path)
    assert run_manifest(folder, tmp_path, pin=digest).returncode == 0
    (folder / "config.json").write_bytes(b"{}")  # the hub served other bytes
    failed = run_manifest(folder, tmp_path, pin=digest)
    assert failed.returncode != 0 and "FAILED" in failed.stdout + failed.stderr


# ------------------------------------------------------------------ S3 (moto)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A versioned bucket and a KMS key on moto; the SDKs point there."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    kms = boto3.client("kms", region_name="us-east-1", endpoint_url=moto_endpoint)
    bucket = f"{BUCKET}-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    key = kms.create_key()["KeyMetadata"]["Arn"]
    other = kms.create_key()["KeyMetadata"]["Arn"]
    return {"s3": s3, "bucket": bucket, "key": key, "other_key": other, "endpoint": moto_endpoint}


def put_s3(aws: dict[str, Any], prefix: str, folder: Path, key: str | None = None) -> None:
    """Upload a revision as the sync Job does (boto3 stand-in where no CLI is needed)."""
    listed = parse_manifest((folder / weights.MANIFEST).read_text())
    manifest = (folder / weights.MANIFEST).read_bytes()
    for rel, digest in [*listed.items(), (weights.MANIFEST, hashlib.sha256(manifest).hexdigest())]:
        aws["s3"].put_object(
            Bucket=aws["bucket"],
            Key=prefix + rel,
            Body=(folder / rel).read_bytes(),
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=key or aws["key"],
            Metadata={"sha256": digest},
        )


def uri_prefix(model: str) -> str:
    """The key prefix of the model's shipped AWS mirror URI."""
    data = YAML().load((Path(__file__).parents[1] / f"catalog/models/{model}.yaml").read_text())
    return str(data["spec"]["weights"]["uris"]["aws"]).split("/", 3)[3]


def point_catalog(root: Path, aws: dict[str, Any], digest: str) -> None:
    """The scratch catalog names the test bucket and key, and pins `digest` everywhere."""
    yaml = YAML()
    path = root / "catalog/platform.yaml"
    data = yaml.load(path.read_text())
    data["spec"]["weightsMirror"]["aws"]["bucket"] = aws["bucket"]
    data["spec"]["weightsMirror"]["aws"]["kmsKey"] = aws["key"]
    with path.open("w") as f:
        yaml.dump(data, f)
    for model in (root / "catalog/models").glob("*.yaml"):
        m = yaml.load(model.read_text())
        m["spec"]["weights"]["sha256"] = digest
        uris = m["spec"]["weights"]["uris"]
        uris["aws"] = uris["aws"].replace(f"s3://{BUCKET}/", f"s3://{aws['bucket']}/")
        with model.open("w") as f:
            yaml.dump(m, f)


def check(root: Path, env: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["weights", "check", "--root", str(root), "--env", env])
    return result.exit_code, result.output


def test_s3_mirror_that_holds_the_pins_passes(
    scratch_repo: Path, aws: dict[str, Any], tmp_path: Path
) -> None:
    folder, digest = make_weights(tmp_path)
    point_catalog(scratch_repo, aws, digest)
    for model in DEV_MODELS:
        put_s3(aws, uri_prefix(model), folder)
    code, out = check(scratch_repo, "dev")
    assert code == 0, out
    assert f"manifest {digest[:12]}, {len(FILES)} files" in out
    assert "3 mirror(s), all hold their pinned weights" in out
    for data in FILES.values():  # names and hashes only, never content
        assert data.decode(errors="replace")[:8] not in out


def test_s3_problems_are_located_at_the_pin(
    scratch_repo: Path, aws: dict[str, Any], tmp_path: Path
) -> None:
    folder, digest = make_weights(tmp_path)
    point_catalog(scratch_repo, aws, digest)
    put_s3(aws, uri_prefix("llama-3-1-8b-instruct"), folder)
    put_s3(aws, uri_prefix("bge-m3"), folder, key=aws["other_key"])
    qwen = uri_prefix("qwen2-5-32b-instruct-awq")
    put_s3(aws, qwen, folder)
    aws["s3"].delete_object(Bucket=aws["bucket"], Key=qwen + "config.json")
    aws["s3"].put_object(
        Bucket=aws["bucket"],
        Key=qwen + "tokenizer/tokenizer.json",
        Body=b"tampered",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=aws["key"],
    )
    code, out = check(scratch_repo, "dev")
    assert code == 1
    bge = f"s3://{aws['bucket']}/{uri_prefix('bge-m3')}"
    assert (
        f"catalog/models/bge-m3.yaml:19:13: spec.weights.sha256: aws mirror {bge}: "
        f"llmgen-manifest.sha256 is encrypted with {aws['other_key']}, not {aws['key']}"
    ) in out
    q = f"s3://{aws['bucket']}/{qwen}"
    assert f"aws mirror {q}: config.json is listed in the manifest but missing" in out
    assert (
        f"aws mirror {q}: tokenizer/tokenizer.json: no sha256 metadata, the manifest lists "
        f"{hashlib.sha256(FILES['tokenizer/tokenizer.json']).hexdigest()}"
    ) in out
    llama = f"s3://{aws['bucket']}/{uri_prefix('llama-3-1-8b-instruct')}"
    assert f"aws llama-3-1-8b-instruct@0e9e39f249a1 {llama}: ok" in out
    assert "llama-3-1-8b-instruct.yaml" not in out
    assert "tampered" not in out


def test_s3_manifest_of_another_revision_is_refused(
    scratch_repo: Path, aws: dict[str, Any], tmp_path: Path
) -> None:
    folder, digest = make_weights(tmp_path)
    point_catalog(scratch_repo, aws, "f" * 64)
    for model in DEV_MODELS:
        put_s3(aws, uri_prefix(model), folder)
    code, out = check(scratch_repo, "dev")
    assert code == 1
    assert f"llmgen-manifest.sha256 has sha256 {digest}, the catalog pins {'f' * 64}" in out


def test_missing_manifest_and_unreachable_store(
    scratch_repo: Path, aws: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _folder, digest = make_weights(tmp_path)
    point_catalog(scratch_repo, aws, digest)
    code, out = check(scratch_repo, "dev")
    assert code == 1 and "llmgen-manifest.sha256 does not exist" in out
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, out = check(scratch_repo, "dev")
    assert code == 1 and "cannot read the mirror" in out and "Traceback" not in out


def cli_env(aws: dict[str, Any], folder: Path, prefix: str, tmp: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": aws["endpoint"],
        "WEIGHTS_DIR": str(folder),
        "WEIGHTS_MANIFEST": weights.MANIFEST,
        "MIRROR_URI": f"s3://{aws['bucket']}/{prefix}",
        "MIRROR_KMS_KEY": aws["key"],
        "POLL_SECONDS": "1",
    }


@needs_aws_cli
def test_rendered_upload_script_mirrors_resumes_and_never_overwrites(
    scratch_repo: Path, aws: dict[str, Any], tmp_path: Path
) -> None:
    """The sync Job's upload and the pods' wait, run by the AWS CLI against moto."""
    folder, digest = make_weights(tmp_path)
    prefix = uri_prefix("bge-m3")
    env = cli_env(aws, folder, prefix, tmp_path)
    wait = ["timeout", "5", "/bin/sh", "-ec", MIRROR_WAIT_SCRIPT]
    assert subprocess.run(wait, env=env, capture_output=True, check=False).returncode == 124

    upload = ["/bin/sh", "-ec", MIRROR_UPLOAD_SCRIPT]
    first = subprocess.run(upload, env=env, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    s3 = aws["s3"]
    for rel in [*FILES, weights.MANIFEST]:
        head = s3.head_object(Bucket=aws["bucket"], Key=prefix + rel)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", aws["key"])
        data = (folder / rel).read_bytes()
        assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert subprocess.run(wait, env=env, capture_output=True, check=False).returncode == 0

    def versions() -> int:
        listed = s3.list_object_versions(Bucket=aws["bucket"], Prefix=prefix)
        return len(listed.get("Versions", []))

    before = versions()
    again = subprocess.run(upload, env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 0 and versions() == before  # resumed: nothing rewritten

    # Another revision's bytes under the same name are never overwritten.
    (folder / "config.json").write_bytes(b'{"other": true}')
    assert run_manifest(folder, tmp_path).returncode == 0
    refused = subprocess.run(upload, env=env, capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "refusing to overwrite" in refused.stderr
    assert versions() == before

    # And llmgen weights check agrees with what the script wrote.
    point_catalog(scratch_repo, aws, digest)
    for model in ("llama-3-1-8b-instruct", "qwen2-5-32b-instruct-awq"):
        put_s3(aws, uri_prefix(model), make_weights(tmp_path / model)[0])
    code, out = check(scratch_repo, "dev")
    assert code == 0, out


# ------------------------------------------------------------------ GCS (emulator)


class RecordingSession(requests.Session):
    """The HTTP session google-cloud-storage uses, recording each request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str]] = []

    def request(self, method: str | bytes, url: str | bytes, *a: Any, **kw: Any) -> Any:
        params = kw.get("params") or {}
        full = str(url) + ("?" + "&".join(f"{k}={v}" for k, v in dict(params).items()))
        self.sent.append((str(method), full))
        return super().request(method, url, *a, **kw)


@pytest.fixture(scope="module")
def gcs_endpoint() -> Iterator[str]:
    pytest.importorskip("gcp_storage_emulator")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
         "--port", str(port), "--in-memory"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(url + "/storage/v1/b?project=test", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_gcs_mirror_names_hashes_and_the_requests_llmgen_makes(
    scratch_repo: Path,
    aws: dict[str, Any],
    gcs_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)
    folder, digest = make_weights(tmp_path)
    point_catalog(scratch_repo, aws, digest)
    session = RecordingSession()
    client = storage.Client(project="test", credentials=AnonymousCredentials(), _http=session)
    bucket = client.bucket(BUCKET)
    if not bucket.exists():
        client.create_bucket(BUCKET)
    staging = ("llama-3-1-8b-instruct", "mixtral-8x7b-instruct", "bge-m3")
    for model in staging:
        put_s3(aws, uri_prefix(model), folder)
        yaml = YAML()
        data = yaml.load((scratch_repo / f"catalog/models/{model}.yaml").read_text())
        prefix = str(data["spec"]["weights"]["uris"]["gcp"]).split("/", 3)[3]
        listed = parse_manifest((folder / weights.MANIFEST).read_text())
        manifest = (folder / weights.MANIFEST).read_bytes()
        pairs = [*listed.items(), (weights.MANIFEST, hashlib.sha256(manifest).hexdigest())]
        for rel, sha in pairs:
            blob = bucket.blob(prefix + rel, kms_key_name=GCS_KEY)
            blob.metadata = {"sha256": sha}
            blob.upload_from_filename(str(folder / rel), if_generation_match=0)
    session.sent.clear()

    report = check_weights(scratch_repo, "staging", {"gcp": GcsStore(client), "aws": S3Store()})
    gcp = [i for i in report.items if i.cloud == "gcp"]
    assert {i.model for i in gcp} == set(staging)
    for item in gcp:
        assert item.manifest == digest and item.files == len(FILES)
        # The emulator drops kmsKeyName (no CMEK), so the key check must fail here,
        # and only it: names and hashes all matched.
        assert item.problems and all(
            p.endswith(f"is encrypted with no KMS key, not {GCS_KEY}") for p in item.problems
        )
    assert all(i.ok for i in report.items if i.cloud == "aws")
    # What llmgen asked for: each object's full metadata (the resource that
    # carries kmsKeyName on real GCS), never a listing; bytes of the manifest only.
    gets = [u for m, u in session.sent if m == "GET"]
    assert gets and not any("fields=" in u for u in gets)
    downloads = [u for u in gets if "alt=media" in u]
    assert downloads and all(weights.MANIFEST in u for u in downloads)
    assert not any(u.rstrip("?").endswith("/o") or "/o?" in u for u in gets)


def test_gcs_key_names_match_without_their_version() -> None:
    assert key_matches(GCS_KEY + "/cryptoKeyVersions/3", GCS_KEY)
    assert not key_matches(GCS_KEY.replace("weights", "other") + "/cryptoKeyVersions/1", GCS_KEY)
    assert not key_matches("", GCS_KEY)


def test_without_a_named_key_encryption_is_reported_unchecked(
    scratch_repo: Path, aws: dict[str, Any], tmp_path: Path
) -> None:
    folder, digest = make_weights(tmp_path)
    point_catalog(scratch_repo, aws, digest)
    for model in DEV_MODELS:
        put_s3(aws, uri_prefix(model), folder, key=aws["other_key"])
    yaml = YAML()
    path = scratch_repo / "catalog/platform.yaml"
    data = yaml.load(path.read_text())
    del data["spec"]["weightsMirror"]["aws"]
    with path.open("w") as f:
        yaml.dump(data, f)
    code, out = check(scratch_repo, "dev")
    assert code == 0, out
    assert "not checked: aws: no platform spec.weightsMirror.aws, encryption unchecked" in out
