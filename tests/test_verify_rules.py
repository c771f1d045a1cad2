"""`llmgen verify`, per document: CRD validation rules (CEL) and the API server's own checks.

Each case reads a hand-made document from tests/fixtures/verify/checks/ that
breaks one family of rules, runs the real per-document checks (strict
schemas from kubernetes-validate, the shared CRD schemas and their CEL rules
through cel-expr-python) and asserts the exact located messages. The rules
are the CRDs' own: a message here is what the API server would answer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmgen.verify.cel_library import parse_request_uri
from llmgen.verify.document import DocumentChecks, check_document
from llmgen.verify.manifests import Manifest, split_documents
from llmgen.verify.quantity import parse_quantity
from llmgen.verify.schemas import SchemaStore

CHECKS = Path(__file__).parent / "fixtures" / "verify" / "checks"
REL = "tests/fixtures/verify/checks"


def run(name: str, crd_schemas: Path, version: str = "1.33") -> tuple[list[str], DocumentChecks]:
    store = SchemaStore(crd_schemas, version)
    checks = DocumentChecks.for_store(store)
    out = []
    for m in split_documents((CHECKS / name).read_text(), f"{REL}/{name}"):
        assert isinstance(m, Manifest)
        out += check_document(m, store, checks)
    return [str(d) for d in sorted(out)], checks


def test_karpenter_rules_reject_a_nodepool(crd_schemas: Path) -> None:
    found, checks = run("nodepool-bad-requirements.yaml", crd_schemas)
    where = f"{REL}/nodepool-bad-requirements.yaml"
    assert found == [
        f"{where}:15:9: NodePool/gpu: spec.template.spec.requirements: requirements with "
        "operator 'In' must have a value defined (CRD rule `self.all(x, x.operator == 'In' ? "
        "x.values.size() != 0 : true)`)",
        f"{where}:18:16: NodePool/gpu: spec.template.spec.requirements[1].key: label domain "
        '"karpenter.sh" is restricted (CRD rule `self in ["karpenter.sh/capacity-type", '
        '"karpenter.sh/nodepool"] || !self.find("^([^/]+)").endsWith("karpenter.sh")`)',
    ]
    cel = checks.stats["cel"]
    # NodePool's transition rules (oldSelf) are skipped and counted, never passed.
    assert (cel.failed, cel.skipped, cel.unevaluable) == (2, 3, {})


def test_escaped_property_names_reach_the_rule(crd_schemas: Path) -> None:
    """`namespace` is a CEL keyword: the rule reads it as `__namespace__`."""
    found, _ = run("httproute-bad-parents.yaml", crd_schemas)
    assert found == [
        f"{REL}/httproute-bad-parents.yaml:10:5: HTTPRoute/llm/llm: spec.parentRefs: "
        "sectionName or port must be unique when parentRefs includes 2 or more references to "
        "the same parent (CRD rule `self.all(p1, self.exists_one(p2, p1.group == p2.group && "
        "p1.kind == p2.kind && p1.name == p2.name && (((!has(p1.__namespace__) || "
        "p1.__namespace__ == '') && ...`)"
    ]


def test_a_valid_nodepool_passes_every_rule(crd_schemas: Path) -> None:
    text = (CHECKS / "nodepool-bad-requirements.yaml").read_text()
    text = text.replace("values: []", "values: [g6]").replace("karpenter.sh/team", "team")
    store = SchemaStore(crd_schemas)
    checks = DocumentChecks.for_store(store)
    (m,) = [d for d in split_documents(text, "x.yaml") if isinstance(d, Manifest)]
    assert check_document(m, store, checks) == []
    assert checks.stats["cel"].run > 10


WIDGET = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "mode": {"type": "string", "default": "Fast"},
                "size": {"type": "integer"},
                "ratio": {"type": "number"},
                "limits": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "x-kubernetes-validations": [
                # Passes only with the schema default applied first.
                {"rule": "self.mode == 'Fast' || has(self.size)", "message": "size needed"},
                # `number` values are doubles, even when written as 1.
                {"rule": "!has(self.ratio) || self.ratio > 0.5", "message": "ratio too small"},
                # A runtime error is a rejection, as on the API server.
                {"rule": "self.limits.cpu != ''", "message": "cpu limit"},
                {"rule": "self.size == oldSelf.size", "message": "size is immutable"},
                {"rule": "quantity(self.limits.cpu).isLessThan(quantity('1'))", "message": "q"},
            ],
        },
    },
}


@pytest.fixture
def widget_schemas(tmp_path: Path) -> Path:
    folder = tmp_path / "crds" / "example.com"
    folder.mkdir(parents=True)
    (folder / "widget_v1.json").write_text(json.dumps(WIDGET))
    return tmp_path / "crds"


def test_defaults_doubles_errors_transitions_and_unevaluable_rules(widget_schemas: Path) -> None:
    store = SchemaStore(widget_schemas)
    checks = DocumentChecks.for_store(store)
    doc = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"ratio": 1, "limits": {"memory": "1Gi"}},
    }
    found = [str(d) for d in check_document(Manifest("w.yaml", 3, doc), store, checks)]
    assert found == [
        'w.yaml:3:1: Widget/w: spec: NOT_FOUND: Key not found in map : "cpu" evaluating '
        "CRD rule `self.limits.cpu != ''`"
    ]
    cel = checks.stats["cel"]
    assert (cel.run, cel.failed, cel.skipped) == (3, 1, 1)
    assert list(cel.unevaluable) == [
        "example.com/v1 Widget: quantity(self.limits.cpu).isLessThan(quantity('1')): does not "
        "compile here: INVALID_ARGUMENT: ERROR: <input>:1:9: undeclared reference to "
        "'quantity' (in container '')"
    ]
    assert "cel: 3 run, 1 skipped, 1 failed, 1 not evaluable" in checks.stats.lines()


def test_schema_errors_stop_the_rules(crd_schemas: Path) -> None:
    """The API server runs CRD rules only on objects that pass the schema."""
    text = (CHECKS / "nodepool-bad-requirements.yaml").read_text().replace("5m", "[5m]")
    store = SchemaStore(crd_schemas)
    checks = DocumentChecks.for_store(store)
    (m,) = [d for d in split_documents(text, "x.yaml") if isinstance(d, Manifest)]
    found = check_document(m, store, checks)
    assert [d.path for d in found] == ["NodePool/gpu: spec.disruption.consolidateAfter"]
    assert (checks.stats["cel"].run, checks.stats["cel"].skipped) == (0, 1)


def test_the_api_server_checks_of_a_deployment(crd_schemas: Path) -> None:
    found, checks = run("deployment-apiserver.yaml", crd_schemas)
    where = f"{REL}/deployment-apiserver.yaml"
    c = "Deployment/llm/llama: spec.template.spec.containers[0]"
    assert found == [
        f"{where}:18:9: Deployment/llm/llama: spec.template.metadata.labels: selector does not "
        "match template labels (spec.selector)",
        f'{where}:24:21: {c}.ports[0].name: "openai-http-port" is not a valid port name: at '
        "most 15 characters",
        f"{where}:27:30: {c}.ports[1].containerPort: duplicate port 8000/TCP in this container",
        f'{where}:34:21: {c}.readinessProbe.httpGet.port: port "http" is not declared by '
        'container "vllm"; the kubelet cannot run this probe',
        f'{where}:38:23: {c}.resources.requests.memory: "64 Gi" is not a resource quantity',
        f"{where}:39:34: {c}.resources.requests.ephemeral-storage: must be less than or equal "
        "to ephemeral-storage limit of 10Gi",
        f"{where}:40:31: {c}.resources.requests.nvidia.com/gpu: nvidia.com/gpu is not "
        "overcommitable: the request must equal the limit",
        f'{where}:45:21: {c}.volumeMounts[0].name: volumeMount "weights" names no volume of '
        "the pod",
        f"{where}:55:13: Deployment/llm/twins: spec.selector: empty selector is invalid for a "
        "Deployment",
        f"{where}:64:17: Deployment/llm/twins: spec.template.spec.containers[1].name: duplicate "
        'container name "app"',
        f"{where}:69:17: Deployment/llm/twins: spec.template.spec.volumes[1].name: duplicate "
        'volume "tmp"',
    ]
    assert (checks.stats["apiserver"].run, checks.stats["apiserver"].failed) == (2, 2)


def test_env_names_follow_the_cluster_version(crd_schemas: Path) -> None:
    """RelaxedEnvironmentVariableValidation is on from Kubernetes 1.32."""
    found, _ = run("deployment-apiserver.yaml", crd_schemas, "1.31")
    assert (
        f"{REL}/deployment-apiserver.yaml:29:21: Deployment/llm/llama: "
        'spec.template.spec.containers[0].env[0].name: "1_CUDA_VISIBLE" is not a valid '
        "environment variable name in Kubernetes 1.31: letters, digits, '_', '-' and '.', "
        "not starting with a digit"
    ) in found


def test_schemas_follow_the_cluster_version(crd_schemas: Path) -> None:
    """preStop `sleep` is in the API from Kubernetes 1.29: a 1.28 cluster rejects it."""
    text = (CHECKS / "deployment-apiserver.yaml").read_text()
    store = SchemaStore(crd_schemas, "1.33")
    m = [
        d for d in split_documents(text, "generated/clusters/old/x.yaml") if isinstance(d, Manifest)
    ][0]
    data = m.data
    data["spec"]["template"]["metadata"]["labels"]["app"] = "llama"
    container = data["spec"]["template"]["spec"]["containers"][0]
    container["lifecycle"] = {"preStop": {"sleep": {"seconds": 5}}}
    old = DocumentChecks.for_store(store)
    old.versions = {"generated/clusters/old": (1, 28)}
    schema = [d for d in check_document(m, store, old) if "lifecycle" in d.path]
    assert [d.message for d in schema] == ['unknown field "sleep"']
    assert [d for d in check_document(m, store) if "lifecycle" in d.path] == []


def test_the_api_server_checks_of_a_service(crd_schemas: Path) -> None:
    found, _ = run("service-apiserver.yaml", crd_schemas)
    where = f"{REL}/service-apiserver.yaml"
    assert found == [
        f"{where}:12:7: Service/llm/llama: spec.ports[0]: a Service with several ports must "
        "name each",
        f"{where}:14:7: Service/llm/llama: spec.ports[1]: a Service with several ports must "
        "name each",
        f"{where}:14:13: Service/llm/llama: spec.ports[1].port: duplicate port 80/TCP",
        f'{where}:15:19: Service/llm/llama: spec.ports[1].targetPort: "Http_Port" is not a '
        "valid port name: lower-case letters, digits and '-' (not at either end, never '--')",
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", "1/2"), ("64Gi", str(64 * 2**30)), ("1e3", "1000"), ("1.5k", "1500"), ("2", "2")],
)
def test_quantities_parse_as_apimachinery_does(text: str, value: str) -> None:
    assert str(parse_quantity(text)) == value


@pytest.mark.parametrize("text", ["64 Gi", "1GB", "", "1.2.3", "Gi"])
def test_quantities_the_api_server_refuses(text: str) -> None:
    assert parse_quantity(text) is None


@pytest.mark.parametrize(
    ("raw", "scheme"),
    [("https://a.example/x", "https"), ("oci://ghcr.io/x", "oci"), ("/abs/path", "")],
)
def test_request_uris_parse_like_go(raw: str, scheme: str) -> None:
    parsed = parse_request_uri(raw)
    assert parsed is not None and parsed[0] == scheme


@pytest.mark.parametrize("raw", ["relative/path", ":x", "http://a b", "http://h:port/"])
def test_request_uris_go_refuses(raw: str) -> None:
    assert parse_request_uri(raw) is None
