"""The scalar/block emitters: whatever the value, it reads back as itself."""

from __future__ import annotations

import math

import pytest
import yaml
import yaml_rs
from hypothesis import given, settings
from hypothesis import strategies as st

from llmgen.render.yamltext import block, scalar

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    # Lone surrogates cannot come out of a UTF-8 catalog file.
    st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
)


def _both_readers(text: str) -> list[object]:
    # PyYAML reads YAML 1.1 (as go-yaml in kubectl and Flux does); yaml_rs reads 1.2.
    return [yaml.load(text, Loader=yaml.CSafeLoader), yaml_rs.loads(text)]


@settings(max_examples=400, deadline=None)
@given(scalars)
def test_scalar_reads_back_as_itself_in_yaml_1_1_and_1_2(value: object) -> None:
    text = f"key: {scalar(value)}\nnext: 1\n"
    assert "\n" not in scalar(value)
    for loaded in _both_readers(text):
        assert isinstance(loaded, dict)
        assert list(loaded) == ["key", "next"]
        got = loaded["key"]
        if isinstance(value, float):
            assert isinstance(got, float) and math.isclose(got, value, rel_tol=0, abs_tol=0)
        else:
            assert got == value and type(got) is type(value)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        scalars,
        lambda c: (
            st.lists(c, max_size=3)
            | st.dictionaries(
                st.text(alphabet=st.characters(blacklist_categories=("Cs",))), c, max_size=3
            )
        ),
        max_leaves=12,
    )
)
def test_block_reads_back_as_itself(value: object) -> None:
    text = "root:" + block(value, 2) + "\nafter: 1\n"
    for loaded in _both_readers(text):
        assert isinstance(loaded, dict)
        assert list(loaded) == ["root", "after"]
        assert loaded["root"] == value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("llama-3", "llama-3"),
        ("32Gi", "32Gi"),
        ("--max-model-len", "--max-model-len"),
        ("../../overlays/prod", "../../overlays/prod"),
        ("yes", '"yes"'),
        ("on", '"on"'),
        ("1.33", '"1.33"'),
        ("0x1F", '"0x1F"'),
        ("a\n---\nkind: Secret", '"a\\n---\\nkind: Secret"'),
        ("{{ x }}", '"{{ x }}"'),
        ("!!python/object:os.system", '"!!python/object:os.system"'),
        ("# comment", '"# comment"'),
    ],
)
def test_scalar_is_plain_only_when_safe(value: str, text: str) -> None:
    assert scalar(value) == text


def test_scalar_refuses_collections() -> None:
    with pytest.raises(TypeError, match="block"):
        scalar({"a": 1})


@pytest.mark.parametrize(
    "text",
    [
        "set -e\ncd /x\n",
        "a\n\nb",
        "---\nkind: Secret\n",
        "# not a comment\n- not an item\nkey: not a key\n",
        "...\n",
        "x\n  indented\n",
        "trailing space \nnext\n",
        " leading space\nx\n",
        "two\n\n",
        "tab\there\n",
    ],
)
def test_multiline_text_reads_back_whole(text: str) -> None:
    doc = "outer:\n  script:" + block({"inner": text}, 4)[len("\n    inner:") :] + "\n  after: 1\n"
    listed = "outer:" + block([text, "x"], 2) + "\nafter: 1\n"
    for loaded in _both_readers(doc):
        assert loaded == {"outer": {"script": text, "after": 1}}
    for loaded in _both_readers(listed):
        assert loaded == {"outer": [text, "x"], "after": 1}


def test_scripts_render_as_literal_blocks() -> None:
    assert block({"run": "set -e\necho hi\n"}, 0) == "\nrun: |\n  set -e\n  echo hi"
    assert block(["a\nb"], 2) == "\n  - |-\n    a\n    b"


# ---------------------------------------------------------------- long keys (issue 17)

_long_keys = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=990, max_size=1300),
    # Two-byte characters, escaped to six ASCII characters each by the emitter.
    st.text(alphabet="éßжλ€", min_size=150, max_size=700),
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_long_keys, scalars | st.lists(scalars, max_size=2), min_size=1, max_size=2))
def test_keys_beyond_the_implicit_key_limit_read_back(value: dict[str, object]) -> None:
    """YAML caps implicit keys at 1024 characters; longer keys are written as `? key`."""
    for text in (
        "root:" + block(value, 2) + "\nafter: 1\n",
        "root:" + block([value], 2) + "\nafter: 1\n",
    ):
        for loaded in [*_both_readers(text), yaml.load(text, Loader=yaml.SafeLoader)]:
            assert isinstance(loaded, dict)
            assert list(loaded) == ["root", "after"]
            got = loaded["root"]
            assert (got if isinstance(got, dict) else got[0]) == value


def test_a_long_key_is_explicit_and_a_short_one_is_not() -> None:
    assert block({"k" * 1000: 1}, 2) == "\n  " + "k" * 1000 + ": 1"
    assert block({"k" * 1001: 1}, 2) == "\n  ? " + "k" * 1001 + "\n  : 1"
    assert block({"é" * 167: "v"}, 2) == '\n  ? "' + "\\u00e9" * 167 + '"\n  : v'


def test_a_catalog_key_never_gets_near_the_limit(scratch_repo: object) -> None:
    """Keys that reach the output come from maps the schemas bound (label keys: 316
    ASCII characters), so the catalog line refuses a long one before rendering."""
    from pathlib import Path

    from typer.testing import CliRunner

    from llmgen.cli.main import app

    root = Path(str(scratch_repo))
    model = root / "catalog/models/bge-m3.yaml"
    key = "a" * 400  # over the schema's 316, under YAML's own 1024
    model.write_text(
        model.read_text().replace("  name: bge-m3\n", f"  name: bge-m3\n  labels:\n    {key}: x\n")
    )
    result = CliRunner().invoke(app, ["validate", "--root", str(root)])
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == (
        f"catalog/models/bge-m3.yaml:8:5: metadata.labels.{key}: "
        "key is 400 characters; at most 316 are allowed"
    )


@pytest.mark.parametrize("text", ["\x1b\nx", "a\nb\x1b", "a\n\x7f", "x\n\x85"])
def test_control_characters_never_enter_a_literal_block(text: str) -> None:
    # A literal block holds printable characters only; a line ending in ESC
    # (found by the fresh-random property run) must fall back to a quoted scalar.
    out = "root:" + block({"k": text}, 2) + "\n"
    assert "|" not in out
    for loaded in [*_both_readers(out), yaml.load(out, Loader=yaml.SafeLoader)]:
        assert loaded == {"root": {"k": text}}
