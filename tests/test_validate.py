"""validate.py: the shipped catalog is clean; every bad input gives exact, located messages."""

from __future__ import annotations

import copy
import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from llmgen.catalog.load import load_file
from llmgen.catalog.validate import KIND_SCHEMAS, ValidationResult, schema_validator, validate
from llmgen.errors import Severity
from llmgen.plan.check import validate_with_plan
from llmgen.resources import schemas_dir, templates_dir

REPO = Path(__file__).resolve().parents[1]
CASES = REPO / "tests" / "cases" / "invalid"
# The shipped prod environment's maximum replicas exceed its budget on
# purpose (it shows the budget cap); that warning is the catalog's baseline.
SHIPPED = None


def lines(result: ValidationResult) -> list[str]:
    return [str(d) for d in result.diagnostics]


def new_lines(result: ValidationResult) -> list[str]:
    """Diagnostics beyond the shipped catalog's own (its budget warning)."""
    return [line for line in lines(result) if line not in _shipped()]


def _shipped() -> frozenset[str]:
    global SHIPPED
    if SHIPPED is None:
        SHIPPED = frozenset(lines(validate(REPO)))
    return SHIPPED


def edit(root: Path, rel: str, old: str, new: str) -> None:
    """Replace one exact piece of a catalog file (it must occur exactly once)."""
    path = root / rel
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {rel}"
    path.write_text(text.replace(old, new))


# ------------------------------------------------------------ shipped catalog


def test_shipped_catalog_has_no_errors() -> None:
    result, _ = validate_with_plan(REPO)
    assert result.ok
    assert result.errors == []
    # The one thing prod's catalog asks for and does not get: the budget caps the 70B.
    assert [(d.location.file, d.path) for d in result.warnings] == [
        ("catalog/environments/prod.yaml", "spec.budget.monthlyUSD"),
        ("catalog/environments/prod.yaml", "spec.models[1].replicas.max"),
    ]
    assert "llmgen caps maxReplicas to llama-3-3-70b-instruct 8→7" in result.warnings[0].message
    assert "capped 8→7 by the budget of $540,000/month" in result.warnings[1].message
    assert result.catalog is not None
    assert sorted(result.catalog.models) == [
        "bge-m3",
        "llama-3-1-405b-instruct",
        "llama-3-1-8b-instruct",
        "llama-3-3-70b-instruct",
        "mixtral-8x7b-instruct",
        "qwen2-5-32b-instruct-awq",
    ]
    assert len(result.documents) == 18


def test_warnings_alone_keep_the_result_ok() -> None:
    result, _ = validate_with_plan(REPO)
    assert [d.severity for d in result.warnings] == [Severity.WARNING] * 2
    assert result.ok


# ------------------------------------------------------- negative file cases


def _case_ids() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if p.is_dir())


@pytest.mark.parametrize("case", _case_ids())
def test_invalid_case(case: str, scratch_repo: Path) -> None:
    """Each case's files are laid over the shipped catalog; exactly `expected.txt` is new."""
    shutil.copytree(CASES / case / "catalog", scratch_repo / "catalog", dirs_exist_ok=True)
    result = validate(scratch_repo)
    expected = (CASES / case / "expected.txt").read_text().splitlines()
    assert expected, "a case must expect at least one diagnostic"
    assert new_lines(result) == expected
    assert not result.ok


def test_every_case_has_an_expectation() -> None:
    for case in _case_ids():
        assert (CASES / case / "expected.txt").is_file(), case
        assert (CASES / case / "catalog").is_dir(), case


# ------------------------------------------------------ document-level checks


def test_duplicate_names_are_reported_at_the_second_document(scratch_repo: Path) -> None:
    src = scratch_repo / "catalog" / "models" / "bge-m3.yaml"
    shutil.copy(src, src.with_name("zz-copy.yaml"))
    result = validate(scratch_repo)
    assert new_lines(result) == [
        "catalog/models/zz-copy.yaml:6:9: metadata.name: duplicate Model name 'bge-m3'; "
        "already defined at catalog/models/bge-m3.yaml:6:9",
    ]


def test_a_second_platform_is_an_error(scratch_repo: Path) -> None:
    src = scratch_repo / "catalog" / "platform.yaml"
    text = src.read_text().replace("name: platform", "name: platform-two")
    (scratch_repo / "catalog" / "platform-two.yaml").write_text(text)
    result = validate(scratch_repo)
    assert new_lines(result) == [
        "catalog/platform.yaml:5:7: kind: a catalog has one Platform; "
        "another is defined in catalog/platform-two.yaml",
    ]


def test_a_missing_platform_is_an_error(scratch_repo: Path) -> None:
    (scratch_repo / "catalog" / "platform.yaml").unlink()
    assert new_lines(validate(scratch_repo)) == [
        "catalog: no Platform document; add catalog/platform.yaml",
    ]


def test_no_catalog_folder(tmp_path: Path) -> None:
    result = validate(tmp_path)
    assert lines(result) == [f"catalog: no catalog/ folder under {tmp_path}"]
    assert result.catalog is None
    assert not result.ok


def test_references_to_a_broken_document_are_not_reported_twice(scratch_repo: Path) -> None:
    """A model whose file fails its schema is still 'present' for the environments."""
    edit(scratch_repo, "catalog/models/bge-m3.yaml", "gpuCount: 1", 'gpuCount: "1"')
    edit(scratch_repo, "catalog/clusters/dev-aws-use2.yaml", "  nodePools:", "  nodePool:")
    result = validate(scratch_repo)
    assert new_lines(result) == [
        "catalog/clusters/dev-aws-use2.yaml:7:3: spec: missing required key 'nodePools'",
        "catalog/clusters/dev-aws-use2.yaml:14:3: spec.nodePool: unknown key 'nodePool'; "
        "did you mean 'nodePools'?",
        "catalog/models/bge-m3.yaml:25:15: spec.resources.gpuCount: expected an integer, "
        "got string '1'",
    ]


def test_references_to_a_file_that_failed_to_load_are_not_reported(scratch_repo: Path) -> None:
    path = scratch_repo / "catalog" / "models" / "bge-m3.yaml"
    path.write_text(path.read_text() + "  owner: {}\n")  # a duplicate key
    result = validate(scratch_repo)
    assert new_lines(result) == [
        "catalog/models/bge-m3.yaml:42:3: spec.owner: duplicate key 'owner' "
        "(first defined at line 39)"
    ]


# ------------------------------------------------------- schema translation


@pytest.mark.parametrize(
    ("rel", "old", "new", "expected"),
    [
        pytest.param(
            "catalog/environments/dev.yaml",
            "  requirePinned: false\n",
            "  requirePinned: false\n  config:\n    log-level: debug\n    OK_FLAG: true\n",
            "catalog/environments/dev.yaml:12:5: spec.config.log-level: key 'log-level' must be "
            "an environment variable name such as LOG_LEVEL",
            id="property-names",
        ),
        pytest.param(
            "catalog/environments/dev.yaml",
            "clusters: [dev-aws-use2]",
            "clusters: [dev-aws-use2, dev-aws-use2]",
            "catalog/environments/dev.yaml:8:28: spec.clusters[1]: string 'dev-aws-use2' is "
            "listed more than once",
            id="unique-items",
        ),
        pytest.param(
            "catalog/environments/dev.yaml",
            "clusters: [dev-aws-use2]",
            "clusters: []",
            "catalog/environments/dev.yaml:8:13: spec.clusters: must not be empty",
            id="min-items",
        ),
        pytest.param(
            "catalog/models/bge-m3.yaml",
            "parametersB: 0.57",
            "parametersB: 0",
            "catalog/models/bge-m3.yaml:12:16: spec.parametersB: must be greater than 0, got 0",
            id="exclusive-minimum",
        ),
        pytest.param(
            "catalog/models/bge-m3.yaml",
            "minReplicas: 1",
            "minReplicas: -1",
            "catalog/models/bge-m3.yaml:29:18: spec.scaling.minReplicas: must be at least 0, "
            "got -1",
            id="minimum",
        ),
        pytest.param(
            "catalog/models/llama-3-1-8b-instruct.yaml",
            "kvCacheUsage: 0.85",
            "kvCacheUsage: 1.85",
            "catalog/models/llama-3-1-8b-instruct.yaml:34:21: spec.scaling.targets.kvCacheUsage: "
            "must be at most 1, got 1.85",
            id="maximum",
        ),
        pytest.param(
            "catalog/models/bge-m3.yaml",
            "  task: embed",
            "  task: embedding",
            "catalog/models/bge-m3.yaml:8:9: spec.task: expected one of 'generate', 'embed'; "
            "got string 'embedding'; did you mean 'embed'?",
            id="enum",
        ),
        pytest.param(
            "catalog/models/bge-m3.yaml",
            "revision: 5617a9f61b028005a4858fdac845db406aefb181",
            'revision: "main\\n"',
            "catalog/models/bge-m3.yaml:11:15: spec.source.revision: 'main\\n' must be a git "
            "revision (commit, tag or branch)",
            id="pattern-end-is-the-end",
        ),
        pytest.param(
            "catalog/models/bge-m3.yaml",
            "  task: embed",
            "  task:",
            "catalog/models/bge-m3.yaml:8:8: spec.task: expected one of 'generate', 'embed'; "
            "got an empty value (null)",
            id="null",
        ),
        pytest.param(
            "catalog/platform.yaml",
            "version: 2.18.1",
            "version: 2.18",
            "catalog/platform.yaml:34:16: spec.addons.keda.version: expected a string, "
            "got number 2.18 (put it in quotes)",
            id="number-for-string",
        ),
        pytest.param(
            "catalog/gpus.yaml",
            "g6.xlarge: {gpus: 1,",
            "g6.xlarge: {gpus: 0,",
            "catalog/gpus.yaml:17:29: spec.gpus.L4.aws.instanceTypes.g6.xlarge.gpus: must be at "
            "least 1, got 0",
            id="nested-map",
        ),
        pytest.param(
            "catalog/clusters/dev-aws-use2.yaml",
            "  # vpcName: how the AWS Load Balancer Controller finds the cluster's VPC.\n"
            '  aws: {accountID: "777788889999", vpcName: dev-aws-use2}\n',
            "",
            "catalog/clusters/dev-aws-use2.yaml:7:3: spec: missing required key 'aws' "
            "(required when cloud is 'aws')",
            id="if-then-required",
        ),
        pytest.param(
            "catalog/clusters/dev-aws-use2.yaml",
            "      capacityType: spot\n      minNodes: 0\n      maxNodes: 4",
            "      capacityType: spot\n      machineType: g2-standard-8\n      minNodes: 0\n"
            "      maxNodes: 4",
            "catalog/clusters/dev-aws-use2.yaml:20:7: spec.nodePools[0].machineType: is not "
            "allowed when cloud is 'aws'",
            id="if-then-forbidden",
        ),
    ],
)
def test_schema_errors_read_well(
    scratch_repo: Path, rel: str, old: str, new: str, expected: str
) -> None:
    edit(scratch_repo, rel, old, new)
    result = validate(scratch_repo)
    assert new_lines(result) == [expected]


def test_every_message_is_one_line(scratch_repo: Path) -> None:
    shutil.copytree(CASES / "injection" / "catalog", scratch_repo / "catalog", dirs_exist_ok=True)
    for line in lines(validate(scratch_repo)):
        assert "\n" not in line


# ------------------------------------------------------------------ schemas


def _objects(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield where, node
        for key, value in node.items():
            yield from _objects(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _objects(value, f"{where}/{i}")


@pytest.mark.parametrize("kind", sorted(KIND_SCHEMAS))
def test_schemas_are_strict_and_documented(kind: str) -> None:
    schema = json.loads((REPO / "schemas" / KIND_SCHEMAS[kind]).read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["kind"]["const"] == kind
    for where, obj in _objects(schema):
        # Maps (keys chosen by the user) constrain their values with a schema
        # instead of `false`; every other object is closed.
        assert "additionalProperties" in obj, where
        if "properties" in obj:
            assert obj["additionalProperties"] is False, where
            for name, prop in obj["properties"].items():
                if isinstance(prop, dict) and "not" not in prop:
                    assert "description" in prop, f"{where}/{name}"


@pytest.mark.parametrize("kind", sorted(KIND_SCHEMAS))
def test_schema_examples_validate(kind: str) -> None:
    """Every `examples` entry is valid against its own subschema (editors offer them)."""
    schema = json.loads((REPO / "schemas" / KIND_SCHEMAS[kind]).read_text())

    def walk(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if "examples" in node:
                yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    checked = 0
    for sub in walk(schema):
        if sub is schema:
            continue
        validator = Draft202012Validator({k: v for k, v in sub.items() if k != "examples"})
        for example in sub["examples"]:
            assert not list(validator.iter_errors(example)), (sub.get("description"), example)
            checked += 1
    assert checked > 5


def test_shipped_files_name_their_schema() -> None:
    for path in sorted((REPO / "catalog").rglob("*.yaml")):
        doc = load_file(path, REPO)
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        target = (path.parent / first.split("=", 1)[1]).resolve()
        assert target == (REPO / "schemas" / KIND_SCHEMAS[doc.kind]).resolve(), path


def test_resources_prefer_the_repository_folders(tmp_path: Path) -> None:
    assert schemas_dir(REPO) == REPO / "schemas"
    assert templates_dir(REPO) == REPO / "templates"
    # A folder without its own schemas/ falls back to the packaged or source copy.
    fallback = schemas_dir(tmp_path)
    assert (fallback / "model.schema.json").is_file()


# ------------------------------------------------------------------ fuzzing


def _mutations() -> st.SearchStrategy[list[tuple[str, Any]]]:
    values = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 10**12),
        st.floats(allow_nan=False),
        st.text(max_size=12),
        st.sampled_from(["main\n", "x\n", "Z", "ab/cd", "v1.2.3", "2.18"]),
        st.just([]),
        st.just({}),
        st.just({"x": 1}),
    )
    return st.lists(st.tuples(st.sampled_from(["set", "drop", "rename"]), values), max_size=4)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*prefix, i))
    return found


def _mutate(data: Any, ops: list[tuple[str, Any]], rng: random.Random) -> None:
    for op, value in ops:
        paths = _paths(data)
        if not paths:
            return
        path = rng.choice(paths)
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        if op == "set":
            # A fresh copy: st.just() hands out one object, which set twice
            # could end up containing itself.
            parent[last] = copy.deepcopy(value)
        elif op == "drop" and isinstance(parent, dict):
            del parent[last]
        elif op == "rename" and isinstance(parent, dict):
            parent[str(last) + "x"] = parent.pop(last)


_SHIPPED = {
    p.relative_to(REPO).as_posix(): load_file(p, REPO).data
    for p in sorted((REPO / "catalog").rglob("*.yaml"))
}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(_SHIPPED)), _mutations(), st.randoms(use_true_random=False))
def test_fast_and_full_validators_agree(rel: str, ops: list[tuple[str, Any]], rng: Any) -> None:
    """The Rust pre-check and jsonschema accept exactly the same documents."""
    data = json.loads(json.dumps(_SHIPPED[rel]))
    kind = data["kind"]
    schema = json.loads((REPO / "schemas" / KIND_SCHEMAS[kind]).read_text())
    _mutate(data, ops, rng)
    fast = jsonschema_rs.validator_for(schema).is_valid(data)
    full = not list(schema_validator(kind, REPO / "schemas").iter_errors(data))
    assert fast == full


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scratch copy of the catalog for the fuzz tests; each example restores its file."""
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(REPO / "catalog", root / "catalog")
    shutil.copytree(REPO / "schemas", root / "schemas")
    return root


def _validate_with(root: Path, rel: str, content: bytes) -> ValidationResult:
    path = root / rel
    original = path.read_bytes()
    path.write_bytes(content)
    try:
        return validate(root)
    finally:
        path.write_bytes(original)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from(sorted(_SHIPPED)),
    st.lists(st.tuples(st.integers(0, 4000), st.text(max_size=6)), min_size=1, max_size=4),
)
def test_validate_survives_a_fuzzed_catalog_file(
    fuzz_root: Path, rel: str, edits: list[tuple[int, str]]
) -> None:
    """Whatever a file's text turns into, validate returns diagnostics; it never raises."""
    text = (REPO / rel).read_text()
    for at, insert in edits:
        at = at % (len(text) + 1)
        text = text[:at] + insert + text[at + len(insert) :]
    result = _validate_with(fuzz_root, rel, text.encode("utf-8", "surrogateescape"))
    for diagnostic in result.diagnostics:
        assert diagnostic.location.file.startswith("catalog")


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(sorted(_SHIPPED)), _mutations(), st.randoms(use_true_random=False))
def test_validate_survives_a_mutated_document(
    fuzz_root: Path, rel: str, ops: list[tuple[str, Any]], rng: Any
) -> None:
    """Structural mutations reach the typed catalog and the rules; nothing raises."""
    data = json.loads(json.dumps(_SHIPPED[rel]))
    _mutate(data, ops, rng)
    result = _validate_with(fuzz_root, rel, yaml.safe_dump(data, allow_unicode=True).encode())
    assert result.catalog is not None
