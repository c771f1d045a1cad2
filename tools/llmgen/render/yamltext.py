"""Emit YAML text that no value can escape from.

These are the only two ways a catalog value reaches rendered output:
`scalar()` emits exactly one YAML scalar on one line, and `block()` emits a
nested mapping or sequence whose keys and scalars all go through `scalar()`.
A string that could be read back as anything but itself (a number, a bool, a
comment, a flow collection, a second document, a tag) is JSON-quoted with
every non-ASCII character escaped, which YAML reads as a double-quoted scalar
that can hold no line break. Plain strings are kept plain where that is safe
(`name: llama-3`, `memory: 32Gi`), so the output reads like hand-written YAML.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

# Safe as plain scalars: start with a letter, '_', '/', a relative path
# (`./x`, `../x`) or a flag's dashes (`--port`), then no YAML indicator
# characters (no ':', '#', ',', brackets, quotes, spaces).
_PLAIN = re.compile(r"(?:[A-Za-z_/]|--?[A-Za-z]|\.\.?/)[A-Za-z0-9_./+=-]*\Z")
# Quantities and durations such as 32Gi, 500m, 1h30m: start with a digit and
# end in a unit. Excludes hex/octal/binary prefixes and exponents below.
_UNIT = re.compile(r"[0-9]+(\.[0-9]+)?[A-Za-z][A-Za-z0-9]*\Z")
_NUMBERISH = re.compile(r"0[xXoObB]|[0-9.]+[eE][-+]?[0-9]*\Z")
# Words YAML 1.1 (go-yaml, used by kubectl and Flux) reads as bool or null.
_RESERVED = frozenset(["y", "yes", "n", "no", "true", "false", "on", "off", "null"])


# Rendering repeats the same strings (names, label values, keys) thousands of
# times; remembering their scalar form makes the hot path a dict lookup.
_STR_CACHE: dict[str, str] = {}
_STR_CACHE_MAX = 200_000


#: Longest key text written as an implicit `key: value` (YAML 1.1 and 1.2 cap
#: implicit keys at 1024 characters; the text is ASCII, so characters are bytes).
MAX_IMPLICIT_KEY = 1000


def scalar(value: Any) -> str:
    """One YAML scalar for `value`, on one line."""
    if type(value) is str:
        hit = _STR_CACHE.get(value)
        if hit is None:
            hit = _string(value)
            if len(_STR_CACHE) >= _STR_CACHE_MAX:
                _STR_CACHE.clear()
            _STR_CACHE[value] = hit
        return hit
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot render non-finite number {value!r}")
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        if e and "." not in mantissa:
            # YAML 1.1 (go-yaml) reads a float only with a dot: 1e-05 -> 1.0e-05
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"not a scalar: {type(value).__name__}; use the 'block' filter")


def _string(value: str) -> str:
    if value.lower() not in _RESERVED and (
        _PLAIN.match(value) or (_UNIT.match(value) and not _NUMBERISH.match(value))
    ):
        return value
    return _double_quoted(value)


_SURROGATE_ESCAPE = re.compile(r"\\ud[89a-f][0-9a-f]{2}")


def _double_quoted(value: str) -> str:
    """A YAML double-quoted scalar holding only printable ASCII."""
    text = json.dumps(value, ensure_ascii=True)
    if not _SURROGATE_ESCAPE.search(text):
        return text
    # JSON writes characters beyond U+FFFF as surrogate pairs, which YAML
    # rejects; YAML has its own 8-digit escape for them.
    out = []
    for ch in value:
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            raise ValueError("cannot render a lone surrogate code point")
        out.append(f"\\U{code:08x}" if code > 0xFFFF else json.dumps(ch, ensure_ascii=True)[1:-1])
    return '"' + "".join(out) + '"'


def block(value: Any, indent: int) -> str:
    """`value` as block YAML, each line prefixed by a newline and `indent` spaces.

    Meant to follow a key in a template: `labels:{{ labels | block(4) }}`.
    Empty collections become ` {}` / ` []`; a scalar becomes ` <scalar>`.
    """
    if type(value) is dict or isinstance(value, Mapping):
        if not value:
            return " {}"
        pad = "\n" + " " * indent
        parts = []
        for key, item in value.items():
            text = scalar(str(key))
            if len(text) > MAX_IMPLICIT_KEY:
                # YAML allows an implicit key of at most 1024 characters; PyYAML,
                # libyaml and go-yaml refuse a longer one. `? key` has no limit.
                text = f"? {text}{pad}"
            if type(item) is str and "\n" not in item:
                parts.append(f"{pad}{text}: {scalar(item)}")
            else:
                parts.append(f"{pad}{text}:{_nested(item, indent + 2)}")
        return "".join(parts)
    if type(value) in (list, tuple) or (isinstance(value, Sequence) and not isinstance(value, str)):
        if not value:
            return " []"
        pad = "\n" + " " * indent
        parts = []
        for item in value:
            if type(item) is str:
                parts.append(f"{pad}-{_text(item, indent + 2)}")
            elif isinstance(item, Mapping) and item:
                inner = block(item, indent + 2)
                # "\n<indent+2>key: ..." -> "\n<indent>- key: ..."
                parts.append(pad + "- " + inner[indent + 3 :])
            elif isinstance(item, Sequence) and not isinstance(item, str) and item:
                parts.append(pad + "-" + block(item, indent + 2))
            else:
                parts.append(f"{pad}- {_inline(item)}")
        return "".join(parts)
    return " " + scalar(value)


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[]"
    return scalar(value)


def _nested(value: Any, indent: int) -> str:
    if isinstance(value, Mapping | list | tuple):
        return block(value, indent)
    if type(value) is str:
        return _text(value, indent)
    return " " + scalar(value)


# Lines a literal block may hold: printable, no tab, no trailing blank, and no
# character that YAML 1.1 readers take for a line break (NEL, LS, PS).
_LITERAL_LINE = re.compile(
    r"(?:[^\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]*[^\s\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff])?\Z"
)


def _text(value: str, indent: int) -> str:
    """A string after a key or dash: a literal block for multi-line text
    (a script reads as a script), else one scalar.

    Every line of a literal block is indented past its key, so no line can
    end the block early; anything that would need an indentation indicator
    or keep-chomping falls back to a double-quoted scalar.
    """
    if "\n" not in value:
        return " " + scalar(value)
    body = value[:-1] if value.endswith("\n") else value
    lines = body.split("\n")
    if (
        body.endswith("\n")
        or not lines[0]
        or lines[0][0] == " "
        or not all(_LITERAL_LINE.match(line) for line in lines)
    ):
        return " " + scalar(value)
    pad = " " * indent
    chomp = "|" if value.endswith("\n") else "|-"
    return " " + chomp + "".join(f"\n{pad}{line}" if line else "\n" for line in lines)
