"""Turn jsonschema errors into located diagnostics people can act on.

jsonschema's own messages name Python reprs and schema internals ("Additional
properties are not allowed ('maxReplica' was unexpected)"). Here each error
becomes `spec.scaling: unknown key 'maxReplica'; did you mean 'maxReplicas'?`,
pointing at the offending key or value. Pattern errors use the schema's
`patternErrorMessage`, the same text editors show through yaml-language-server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from jsonschema.exceptions import ValidationError, best_match

from llmgen.catalog import guard
from llmgen.catalog.hints import suggest
from llmgen.catalog.load import Document, PathKey
from llmgen.errors import Diagnostic

_TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


def describe(value: Any) -> str:
    """A short, YAML-flavoured description of a value for messages."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value:g}"
    if isinstance(value, str):
        return f"string {shown(value)}"
    if value is None:
        return "an empty value (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def shown(value: str) -> str:
    """`value` quoted for a message, shortened; never a credential-looking value."""
    reason = guard.pattern_reason(value)
    if reason:
        return f"<a value that {reason}, not shown>"
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _quote_hint(written: str | None, instance: Any) -> str:
    """Why an unquoted scalar is not text, and the fix (YAML 1.1 reads `no` as false)."""
    plain_forms = {str(instance), str(instance).lower()}
    if isinstance(instance, int | float) and not isinstance(instance, bool):
        plain_forms.add(f"{instance:g}")
    if not written or written in plain_forms:
        return " (put it in quotes)"
    return f" (YAML 1.1 reads {written} as {describe(instance)}: write '{written}' in quotes)"


def _one_of(words: Sequence[str]) -> str:
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _condition(root: dict[str, Any], schema_path: Sequence[str | int]) -> str:
    """' when cloud is 'aws'' if the failing keyword sits under an if/then."""
    node: Any = root
    condition = ""
    for step in schema_path:
        if step == "then" and isinstance(node, dict) and isinstance(node.get("if"), dict):
            consts = [
                f"{key} is {sub['const']!r}"
                for key, sub in node["if"].get("properties", {}).items()
                if isinstance(sub, dict) and "const" in sub
            ]
            if consts:
                condition = " when " + " and ".join(consts)
        if isinstance(node, dict | list):
            try:
                node = node[step]  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                break
    return condition


def _unknown_keys(doc: Document, path: PathKey, error: ValidationError) -> Iterator[Diagnostic]:
    instance = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    known = list(schema.get("properties", {}))
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    for key in instance:
        if key in known or any(p.search(key) for p in patterns):
            continue
        hint = suggest(key, known)
        if hint:
            message = f"unknown key {shown(key)}; did you mean {hint!r}?"
        elif known:
            message = f"unknown key {shown(key)} (expected one of: {', '.join(known)})"
        else:
            message = f"unknown key {shown(key)}"
        yield doc.diagnostic((*path, key), message, key=True)


def _message(error: ValidationError, condition: str, written: str | None = None) -> str:
    kw = error.validator
    value = error.validator_value
    instance = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kw == "type":
        types = [value] if isinstance(value, str) else list(value)
        expected = _one_of([_TYPE_NAMES.get(t, t) for t in types])
        message = f"expected {expected}, got {describe(instance)}"
        number = isinstance(instance, int | float) and not isinstance(instance, bool)
        if "string" in types and (number or isinstance(instance, bool) or instance is None):
            message += _quote_hint(written, instance)
        return message
    if kw == "enum":
        options = ", ".join(repr(v) for v in value)
        hint = suggest(instance, [str(v) for v in value]) if isinstance(instance, str) else None
        quote = ""
        if written and not isinstance(instance, str) and all(isinstance(v, str) for v in value):
            quote = _quote_hint(written, instance)
        return f"expected one of {options}; got {describe(instance)}{quote}" + (
            f"; did you mean {hint!r}?" if hint else ""
        )
    if kw == "const":
        return f"expected {value!r}, got {describe(instance)}"
    if kw == "pattern":
        reason = schema.get("patternErrorMessage") or f"must match the pattern {value}"
        return f"{shown(instance)} {reason}"
    if kw == "minLength":
        return "must not be empty" if value == 1 else f"must be at least {value} characters"
    if kw == "maxLength":
        return f"is {len(instance)} characters; at most {value} are allowed"
    if kw == "minimum":
        return f"must be at least {value}, got {instance}"
    if kw == "maximum":
        return f"must be at most {value}, got {instance}"
    if kw == "exclusiveMinimum":
        return f"must be greater than {value}, got {instance}"
    if kw == "exclusiveMaximum":
        return f"must be less than {value}, got {instance}"
    if kw in ("minItems", "minProperties"):
        return "must not be empty" if value == 1 else f"needs at least {value} entries"
    if kw in ("maxItems", "maxProperties"):
        return f"has more than {value} entries"
    if kw == "not" and value == {}:  # `not: {}` forbids a key (e.g. per cloud)
        return f"is not allowed{condition}"
    message = str(error.message)
    if isinstance(instance, str) and guard.pattern_reason(instance):
        message = message.replace(repr(instance), shown(instance)).replace(instance, "<not shown>")
    return message


def translate(doc: Document, error: ValidationError, root: dict[str, Any]) -> Iterator[Diagnostic]:
    """Located diagnostics for one jsonschema error (usually one)."""
    path: PathKey = tuple(error.absolute_path)
    kw = error.validator
    condition = _condition(root, list(error.absolute_schema_path))
    schema_path = list(error.schema_path)
    if kw == "additionalProperties" and isinstance(error.instance, dict):
        yield from _unknown_keys(doc, path, error)
    elif kw == "required" and isinstance(error.instance, dict):
        for key in error.validator_value:
            if key not in error.instance:
                why = f" (required{condition})" if condition else ""
                yield doc.diagnostic(path, f"missing required key {key!r}{why}")
    elif len(schema_path) >= 2 and schema_path[-2] == "propertyNames":
        # jsonschema reports a bad key at its mapping; point at the key itself.
        key_path = (*path, str(error.instance))
        yield doc.diagnostic(key_path, "key " + _message(error, condition), key=True)
    elif kw == "uniqueItems" and isinstance(error.instance, list):
        seen: list[Any] = []
        for i, item in enumerate(error.instance):
            if item in seen:
                yield doc.diagnostic((*path, i), f"{describe(item)} is listed more than once")
                break
            seen.append(item)
    elif kw in ("anyOf", "oneOf") and isinstance(error.validator_value, list):
        branches = error.validator_value
        if all(isinstance(b, dict) and list(b) == ["required"] for b in branches):
            keys = [k for b in branches for k in b["required"]]
            yield doc.diagnostic(path, f"needs {_one_of([repr(k) for k in keys])}")
        else:
            inner = best_match(error.context or [])
            if inner is None:
                yield doc.diagnostic(path, error.message)
            else:
                yield from translate(doc, inner, root)
    elif kw == "not" and error.validator_value == {}:
        yield doc.diagnostic(path, _message(error, condition), key=True)
    else:
        yield doc.diagnostic(path, _message(error, condition, doc.scalar_text.get(path)))
