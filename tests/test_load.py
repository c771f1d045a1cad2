"""load.py: hostile input is refused with a located message, good input keeps positions."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmgen.catalog.load import MAX_FILE_BYTES, load_catalog, load_file, load_text
from llmgen.errors import CatalogError

GOOD = """\
apiVersion: llmgen.io/v1alpha1
kind: Model
metadata:
  name: tiny
spec:
  scaling:
    maxReplicas: 4
  engine:
    extraArgs: [--a, --b]
"""


def problem(text: str) -> str:
    """The one diagnostic load_text raises for `text`, as printed."""
    with pytest.raises(CatalogError) as caught:
        load_text(text, "f.yaml")
    assert len(caught.value.diagnostics) == 1
    return str(caught.value.diagnostics[0])


def test_good_document_keeps_positions_of_values_and_keys() -> None:
    doc = load_text(GOOD, "f.yaml")
    assert doc.kind == "Model"
    assert doc.name == "tiny"
    assert doc.data["spec"]["scaling"]["maxReplicas"] == 4
    assert doc.positions[("spec", "scaling", "maxReplicas")] == (7, 18)
    assert doc.key_positions[("spec", "scaling", "maxReplicas")] == (7, 5)
    assert doc.positions[("spec", "engine", "extraArgs", 1)] == (9, 22)
    assert len(doc.sha256) == 64


def test_locate_falls_back_to_the_nearest_existing_ancestor() -> None:
    doc = load_text(GOOD, "f.yaml")
    assert str(doc.locate(("spec", "scaling", "minReplicas"))) == "f.yaml:7:5"
    assert str(doc.locate(("spec", "scaling", "maxReplicas"), key=True)) == "f.yaml:7:5"
    assert str(doc.locate(("nothing", "here"))) == "f.yaml:1:1"
    diag = doc.diagnostic(("spec", "engine", "extraArgs", 0), "bad")
    assert str(diag) == "f.yaml:9:17: spec.engine.extraArgs[0]: bad"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "a: [1, 2\nb: 3\n",
            "f.yaml:2:2: invalid YAML: did not find expected ',' or ']' "
            "(while parsing a flow sequence)",
            id="broken-yaml",
        ),
        pytest.param(
            "a:\n\tb: 1\n",
            "f.yaml:2:1: tab character in indentation (YAML indents with spaces)",
            id="tab",
        ),
        pytest.param(
            "a:\n  b: 1\n  \tc: 2\n",
            "f.yaml:3:3: tab character in indentation (YAML indents with spaces)",
            id="tab-after-spaces",
        ),
        pytest.param(
            "a: 1\nb: 2\na: 3\n",
            "f.yaml:3:1: a: duplicate key 'a' (first defined at line 1)",
            id="duplicate-key",
        ),
        pytest.param(
            "a:\n  x: 1\n  x: 2\n",
            "f.yaml:3:3: a.x: duplicate key 'x' (first defined at line 2)",
            id="nested-duplicate-key",
        ),
        pytest.param("", "f.yaml:1:1: file is empty; expected one catalog document", id="empty"),
        pytest.param(
            "# only a comment\n",
            "f.yaml:1:1: file is empty; expected one catalog document",
            id="comment-only",
        ),
        pytest.param(
            "a: 1\n---\nb: 2\n",
            "f.yaml:3:1: file holds 2 YAML documents; a catalog file holds exactly one",
            id="two-documents",
        ),
        pytest.param(
            "- a\n- b\n",
            "f.yaml:1:1: expected a mapping with apiVersion, kind, metadata and spec, found list",
            id="not-a-mapping",
        ),
        pytest.param(
            "just text\n",
            "f.yaml:1:1: expected a mapping with apiVersion, kind, metadata and spec, found str",
            id="scalar",
        ),
        pytest.param(
            "a: !!python/object:os.system x\n",
            "f.yaml:1:4: a: explicit YAML tag 'tag:yaml.org,2002:python/object:os.system' "
            "is not allowed in the catalog",
            id="python-tag",
        ),
        pytest.param(
            "a: !custom x\n",
            "f.yaml:1:4: a: explicit YAML tag '!custom' is not allowed in the catalog",
            id="custom-tag",
        ),
        pytest.param(
            "base: &b {x: 1}\nc:\n  <<: *b\n",
            "f.yaml:3:3: c: YAML merge keys ('<<') are not supported in the catalog",
            id="merge-key",
        ),
        pytest.param(
            "? [a, b]\n: c\n", "f.yaml:1:3: mapping keys must be plain strings", id="complex-key"
        ),
        pytest.param(
            "a: \x01\n",
            "f.yaml:1:4: invalid YAML: control characters are not allowed (found #x0001)",
            id="control-character",
        ),
        pytest.param(
            "é: ok\nb: \x07\n",
            "f.yaml:2:4: invalid YAML: control characters are not allowed (found #x0007)",
            id="control-character-after-multibyte",
        ),
        pytest.param(
            "a: \ud800\n",
            "f.yaml:1:4: text holds an unpaired surrogate; it is not valid UTF-8",
            id="surrogate",
        ),
        pytest.param(
            "a: " + "[" * 10_000, "f.yaml:1:67: nesting deeper than 64 levels", id="deep-flow"
        ),
        pytest.param(
            "- " * 10_000 + "x", "f.yaml:1:129: nesting deeper than 64 levels", id="deep-block"
        ),
    ],
)
def test_bad_text_is_refused_with_a_location(text: str, expected: str) -> None:
    assert problem(text) == expected


def test_alias_bomb_is_refused_without_expanding_it() -> None:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    message = problem("\n".join(lines) + "\n")
    assert message.startswith("f.yaml:")
    assert message.endswith(
        "document expands to more than 100000 nodes (aliases that multiply, a 'YAML bomb'?); "
        "refusing to load it"
    )


def test_a_few_aliases_are_fine() -> None:
    doc = load_text("a: &x [1, 2]\nb: *x\n", "f.yaml")
    assert doc.data == {"a": [1, 2], "b": [1, 2]}


def test_tabs_inside_values_are_fine() -> None:
    assert load_text('a: "x\\ty"\nb:\tc\n', "f.yaml").data == {"a": "x\ty", "b": "c"}


def test_dates_stay_strings() -> None:
    assert load_text("since: 2024-05-01\n", "f.yaml").data == {"since": "2024-05-01"}


def test_non_utf8_file_is_refused_at_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "catalog" / "models" / "latin1.yaml"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"apiVersion: llmgen.io/v1alpha1\nmetadata:\n  name: caf\xe9\n")
    with pytest.raises(CatalogError) as caught:
        load_file(path, tmp_path)
    assert [str(d) for d in caught.value.diagnostics] == [
        "catalog/models/latin1.yaml:3:12: file is not valid UTF-8 (byte 0xe9)"
    ]


def test_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "catalog" / "models" / "huge.yaml"
    path.parent.mkdir(parents=True)
    with path.open("wb") as out:
        out.write(b"apiVersion: llmgen.io/v1alpha1\nkind: Model\nnotes: |\n")
        chunk = b"  " + b"x" * 1022 + b"\n"
        for _ in range(50 * 1024):  # 50 MiB
            out.write(chunk)
    assert path.stat().st_size > 50 * 1024 * 1024
    with pytest.raises(CatalogError) as caught:
        load_file(path, tmp_path)
    assert [str(d) for d in caught.value.diagnostics] == [
        "catalog/models/huge.yaml:1:1: file is 52.5 MB; catalog files are limited to "
        f"{MAX_FILE_BYTES // 1024} KiB"
    ]


def test_load_catalog_collects_every_broken_file(tmp_path: Path) -> None:
    models = tmp_path / "catalog" / "models"
    models.mkdir(parents=True)
    (models / "a.yaml").write_text("a: [\n")
    (models / "b.yaml").write_text("")
    (models / "c.yaml").write_text(GOOD)
    (models / "notes.txt").write_text("not yaml, not loaded")
    docs, problems = load_catalog(tmp_path)
    assert [d.file for d in docs] == ["catalog/models/c.yaml"]
    assert [str(p) for p in problems] == [
        "catalog/models/a.yaml:2:1: invalid YAML: did not find expected node content "
        "(while parsing a flow node)",
        "catalog/models/b.yaml:1:1: file is empty; expected one catalog document",
    ]


def test_load_catalog_without_a_catalog_folder(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    assert str(caught.value.diagnostics[0]) == f"catalog: no catalog/ folder under {tmp_path}"


# ------------------------------------------------------------------ fuzzing

# Tokens that exercise the parser's corners: indentation, flow collections,
# anchors, tags, merge keys, directives, block scalars and odd characters.
_TOKENS = [
    *("a", "b", ":", ": ", "-", "- ", "\n", "  ", "\t", "[", "]", "{", "}", ","),
    *("&x", "*x", "!!str", "!t", "<<:", "?", "---\n", "...\n", "%YAML\n", "#"),
    *("'", '"', "|\n", ">\n", "\\", "\x00", "é", "\ud800"),
    *("0x1F", "1e9", ".inf", "~", "null", "true", "2024-01-01"),
]
YAMLISH = st.lists(st.sampled_from(_TOKENS), max_size=60).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=200), YAMLISH))
def test_load_text_only_ever_raises_catalog_error(text: str) -> None:
    try:
        doc = load_text(text, "fuzz.yaml")
    except CatalogError as exc:
        assert exc.diagnostics
        assert all(d.location.file == "fuzz.yaml" for d in exc.diagnostics)
    else:
        assert isinstance(doc.data, dict)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_load_file_only_ever_raises_catalog_error(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "catalog" / "x.yaml"
        path.parent.mkdir()
        path.write_bytes(raw)
        with contextlib.suppress(CatalogError):
            load_file(path, root)
