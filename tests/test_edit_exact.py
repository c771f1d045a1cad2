"""Edits are exact: YAML 1.1 strings stay strings, anchors are not edited through,
document markers and untouched comments survive, ConfigMap values keep their text.

The catalog loader is PyYAML (YAML 1.1: `no` is false, `1:30` is 90); ruamel
writes YAML 1.2, where both are strings and need no quotes. A verb that wrote
`no` plain changed what the loader read.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmgen.catalog.load import load_text
from llmgen.errors import CatalogError
from llmgen.lifecycle.edit import edit_text
from llmgen.render import pipeline

AMBIGUOUS = ["no", "on", "yes", "off", "y", "1:30", "12:30:00", "0755", "1.10", "~", "null", "1e3"]


@pytest.mark.parametrize("value", AMBIGUOUS)
def test_a_string_written_by_an_edit_stays_a_string_for_the_loader(value: str) -> None:
    text = "apiVersion: x\nkind: Model\nspec:\n  a: 1 # note\n  b: old\n"

    def mutate(d: dict) -> None:  # type: ignore[type-arg]
        d["spec"]["b"] = value
        d["spec"]["c"] = value

    out = edit_text(text, mutate, "f.yaml")
    loaded = load_text(out, "f.yaml").data["spec"]
    assert loaded["b"] == value and loaded["c"] == value, out
    assert "a: 1 # note\n" in out


def test_untouched_values_keep_their_spelling() -> None:
    # An existing plain `no` means false to the loader; an unrelated edit must not quote it.
    text = "spec:\n  enabled: no\n  b: old\n"
    out = edit_text(text, lambda d: d["spec"].__setitem__("b", "new"), "f.yaml")
    assert out == "spec:\n  enabled: no\n  b: new\n"


def test_an_edit_through_a_shared_anchor_is_refused_at_the_anchor() -> None:
    text = (
        "spec:\n"
        "  models:\n"
        "    - name: x\n"
        "      replicas: &r {min: 1, max: 2}\n"
        "    - name: y\n"
        "      replicas: *r\n"
    )

    def mutate(d: dict) -> None:  # type: ignore[type-arg]
        d["spec"]["models"][0]["replicas"]["max"] = 5

    with pytest.raises(CatalogError) as caught:
        edit_text(text, mutate, "catalog/environments/dev.yaml")
    (diag,) = caught.value.diagnostics
    assert str(diag).startswith("catalog/environments/dev.yaml:4:17:")
    assert "anchor" in diag.message and "&r" in diag.message


def test_an_edit_beside_a_shared_anchor_is_fine() -> None:
    text = "a: &r {min: 1}\nb: *r\nc: 1\n"
    out = edit_text(text, lambda d: d.__setitem__("c", 2), "f.yaml")
    assert out == "a: &r {min: 1}\nb: *r\nc: 2\n"


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: 2   # keep\n# between\nc: 3\n...\n",
        "a: 1\nc: 3\n...\n# after the end\n",
        "# head\n---\na: 1\nc: 3\n",
        "%YAML 1.1\n---\na: 1\nc: 3  # last\n...\n",
    ],
)
def test_document_markers_and_comments_survive(text: str) -> None:
    out = edit_text(text, lambda d: d.__setitem__("c", 4), "f.yaml")
    assert out == text.replace("c: 3", "c: 4")


# ------------------------------------------------------------ ConfigMap text


def test_configmap_values_keep_their_catalog_text(scratch_repo: Path) -> None:
    path = scratch_repo / "catalog/environments/dev.yaml"
    text = path.read_text().replace(
        "\nspec:\n",
        "\nspec:\n  config:\n    MODE: off\n    UMASK: 0755\n    VERSION: 1.10\n"
        "    WINDOW: 12:30:00\n    RATE: 0.5\n    DEBUG: true\n",
        1,
    )
    path.write_text(text)
    files = pipeline.check(scratch_repo).files
    (cm,) = [
        body
        for name, body in files.items()
        if "/dev-aws-use2/" in name and b"name: llmgen-environment\n" in body
    ][:1]
    docs = [d for d in yaml.safe_load_all(cm) if d and d.get("kind") == "ConfigMap"]
    data = next(d["data"] for d in docs if d["metadata"]["name"] == "llmgen-environment")
    assert data == {
        "MODE": "off",
        "UMASK": "0755",
        "VERSION": "1.10",
        "WINDOW": "12:30:00",
        "RATE": "0.5",
        "DEBUG": "true",
    }


def test_a_yaml11_value_where_a_string_is_expected_suggests_quotes(scratch_repo: Path) -> None:
    from llmgen.catalog.validate import validate

    path = scratch_repo / "catalog/environments/dev.yaml"
    path.write_text(path.read_text().replace("policy: failover", "policy: no", 1))
    messages = [d.message for d in validate(scratch_repo).errors]
    assert any("'no'" in m and "quotes" in m for m in messages), messages


def test_a_new_file_quotes_what_yaml11_would_misread() -> None:
    from ruamel.yaml.comments import CommentedMap

    from llmgen.lifecycle.edit import render_new

    data = CommentedMap(spec=CommentedMap(team="no", window="1:30", n=3))
    loaded = load_text(render_new(data, ["header"]), "f.yaml").data
    assert loaded["spec"] == {"team": "no", "window": "1:30", "n": 3}
