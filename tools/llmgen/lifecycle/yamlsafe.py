"""What keeps a ruamel.yaml edit exact for llmgen's loader (used by `edit.py`).

- **YAML 1.1 strings.** The catalog loader is PyYAML, a YAML 1.1 reader:
  `no`, `on`, `off` are booleans, `1:30` and `12:30:00` sexagesimal integers.
  ruamel writes YAML 1.2, where those are plain strings needing no quotes.
  `quote_new_strings` single-quotes every string the edit wrote that the
  loader would read as something else, and `loader_disagrees` checks the
  merged text with the loader itself.
- **Shared anchors.** With `&r` on one entry and `*r` on another, both are
  one node: editing one edits the other. `shared_nodes` finds them before the
  edit and `refuse_shared_edits` refuses an edit that changed one.
- **Document markers.** ruamel drops `%` directives, `---` and `...` and
  what follows them; `split_markers` sets them aside for the edit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml as pyyaml
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import SingleQuotedScalarString

from llmgen.catalog.load import PathKey, load_text
from llmgen.errors import CatalogError, SourceLocation

_RESOLVER = pyyaml.resolver.Resolver()
_STR = "tag:yaml.org,2002:str"
_MISSING = object()
# Directives and a directives-end marker (`---`) before the document, with
# the comments and blank lines around them.
_HEAD = re.compile(r"\A(?:(?:%[^\n]*|[ \t]*(?:#[^\n]*)?)\n)*---[ \t]*(?:#[^\n]*)?\n")
# A document-end marker (`...`) and whatever follows it.
_TAIL = re.compile(r"^\.\.\.[ \t]*(?:#.*)?$", re.MULTILINE)


def split_markers(text: str) -> tuple[str, str, str]:
    """`text` as (head, body, tail): directives/`---` before, `...` and after."""
    head = ""
    if m := _HEAD.match(text):
        head, text = text[: m.end()], text[m.end() :]
    tail = ""
    if m := _TAIL.search(text):
        text, tail = text[: m.start()], text[m.start() :]
    return head, text, tail


def ambiguous(value: str) -> bool:
    """True when a plain `value` would not load as a string in YAML 1.1 (PyYAML)."""
    tag: str = _RESOLVER.resolve(pyyaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return tag != _STR


def _children(node: Any) -> Iterator[tuple[str | int, Any]]:
    if isinstance(node, CommentedMap):
        yield from ((str(k), v) for k, v in node.items())
    elif isinstance(node, CommentedSeq):
        yield from enumerate(node)


def _old(old: Any, key: str | int) -> Any:
    if isinstance(old, dict) and isinstance(key, str):
        return old.get(key, _MISSING)
    if isinstance(old, list) and isinstance(key, int) and key < len(old):
        return old[key]
    return _MISSING


def quote_new_strings(node: Any, old: Any) -> None:
    """Single-quote the plain strings that differ from `old` and YAML 1.1 would misread."""
    for key, value in list(_children(node)):
        before = _old(old, key)
        if type(value) is str and value != before and ambiguous(value):
            if isinstance(node, CommentedMap):
                real = next(k for k in node if str(k) == key)
                node[real] = SingleQuotedScalarString(value)
            else:
                node[key] = SingleQuotedScalarString(value)
        else:
            quote_new_strings(value, before)


def leaves(data: Any, path: PathKey = ()) -> dict[PathKey, Any]:
    """Every scalar of plain data by its path."""
    if isinstance(data, dict):
        out: dict[PathKey, Any] = {}
        for k, v in data.items():
            out.update(leaves(v, (*path, str(k))))
        return out
    if isinstance(data, list):
        out = {}
        for i, v in enumerate(data):
            out.update(leaves(v, (*path, i)))
        return out
    return {path: data}


def loader_disagrees(merged: str, want: Any, before: Any, file: str) -> list[PathKey]:
    """Paths the edit changed where the catalog loader reads `merged` otherwise."""
    got = leaves(load_text(merged, file).data)
    old = leaves(before)
    return [
        path
        for path, value in leaves(want).items()
        if old.get(path, _MISSING) != value and got.get(path, _MISSING) != value
    ]


def shared_nodes(data: Any) -> list[Any]:
    """Collections reached more than once (an anchor and its aliases)."""
    seen: dict[int, Any] = {}
    shared: dict[int, Any] = {}

    def walk(node: Any) -> None:
        if not isinstance(node, CommentedMap | CommentedSeq):
            return
        if id(node) in seen:
            shared[id(node)] = node
            return
        seen[id(node)] = node
        for _, child in _children(node):
            walk(child)

    walk(data)
    return list(shared.values())


def refuse_shared_edits(
    shared: list[tuple[Any, Any]], plain: Any, file: str, line_offset: int
) -> None:
    """CatalogError at the anchor of a shared node whose content the edit changed."""
    for node, snapshot in shared:
        if plain(node) == snapshot:
            continue
        name = node.anchor.value if node.anchor.value else "?"
        line, col = node.lc.line + 1 + line_offset, node.lc.col + 1
        raise CatalogError.single(
            SourceLocation(file, line, col),
            "",
            f"the edit would change the YAML anchor &{name}, which other entries share "
            f"through *{name}: write those entries out in full, then run the command again",
        )
