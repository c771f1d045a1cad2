"""CRD validation rules (`x-kubernetes-validations`), evaluated as the API server does.

The API server (k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel,
validation.go) runs every rule of a CRD's structural schema on each value of
the object the rule's schema node describes, with `self` bound to that value,
after defaulting and only when the object passed the OpenAPI schema. This
module does the same offline with cel-expr-python (Google's cel-cpp; regexes
are RE2, as in cel-go), plus the Kubernetes library functions in `cel_library`:

- defaults from the schema are applied before the rules run;
- property names are escaped as apiextensions does (`namespace` is read as
  `__namespace__`, `a-b` as `a__dash__b`), `number` values are doubles;
- a rule that evaluates to false fails with its `message` (or
  `failed rule: <rule>`); a runtime error (`no such key`, an index out of
  range) is a rejection too, as on the server (`<error> evaluating rule`);
- transition rules (those reading `oldSelf`) need the stored object: they are
  skipped and counted;
- a rule that cannot be compiled here (an unknown function) or evaluated (a
  value cel-expr-python cannot take) is counted as not evaluable, with its
  reason, in the summary: never silently passed.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel

from llmgen.catalog.load import PathKey
from llmgen.errors import Diagnostic
from llmgen.verify.cel_library import declarations
from llmgen.verify.manifests import Manifest
from llmgen.verify.schemas import CrdSchemas, crd_folders, crd_schema_file
from llmgen.verify.stats import Family

_OLD_SELF = re.compile(r"\boldSelf\b")
_CEL_RESERVED = frozenset(
    {
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    }
)
_IDENT = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_ESCAPABLE = re.compile(r"[_a-zA-Z0-9./-]+")
MAX_RULE_SHOWN = 160


@functools.cache
def _env() -> Any:
    return cel.NewEnv(variables={"self": cel.Type.DYN}, functions=declarations())


@dataclass(frozen=True, slots=True)
class Rule:
    text: str
    message: str
    program: Any  # compiled, or None
    problem: str  # why it cannot be evaluated; "" when it can
    transition: bool

    @property
    def shown(self) -> str:
        text = " ".join(self.text.split())
        return text if len(text) <= MAX_RULE_SHOWN else text[: MAX_RULE_SHOWN - 3] + "..."


@functools.lru_cache(maxsize=4096)
def compile_rule(text: str, message: str) -> Rule:
    if _OLD_SELF.search(text):
        return Rule(text, message, None, "", True)
    try:
        program = _env().compile(text)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Rule(text, message, None, f"does not compile here: {first}", False)
    return Rule(text, message, program, "", False)


def escape_property(name: str) -> str | None:
    """How a CEL expression names object property `name` (None: it cannot)."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    if _IDENT.fullmatch(name) and "__" not in name:
        return name
    if not _ESCAPABLE.fullmatch(name):
        return None
    return (
        name.replace("__", "__underscores__")
        .replace(".", "__dot__")
        .replace("-", "__dash__")
        .replace("/", "__slash__")
    )


class _Node:
    """One schema node, reduced to what rule evaluation needs."""

    __slots__ = (
        "rules",
        "props",
        "additional",
        "items",
        "defaults",
        "escapes",
        "number",
        "unsupported",
        "convert",
        "walk",
    )

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.props: dict[str, _Node] = {}
        self.additional: _Node | None = None
        self.items: _Node | None = None
        self.defaults: dict[str, Any] = {}
        self.escapes: dict[str, str | None] = {}
        self.number = False
        self.unsupported = ""  # a format cel-expr-python cannot take (date-time, byte)
        self.convert = False  # the value differs from the YAML data as CEL sees it
        self.walk = False  # rules at or below this node


def _build(schema: Any) -> _Node:
    node = _Node()
    if not isinstance(schema, dict):
        return node
    for entry in schema.get("x-kubernetes-validations") or []:
        if isinstance(entry, dict) and isinstance(entry.get("rule"), str):
            node.rules.append(compile_rule(entry["rule"], str(entry.get("message") or "")))
    types = schema.get("type")
    node.number = types == "number" or (isinstance(types, list) and "number" in types)
    if schema.get("type") == "string" and schema.get("format") in ("date-time", "date", "byte"):
        node.unsupported = f'format "{schema["format"]}" values'
    props = schema.get("properties")
    if isinstance(props, dict):
        for name, sub in props.items():
            child = _build(sub)
            if isinstance(sub, dict) and "default" in sub:
                node.defaults[name] = sub["default"]
            escaped = escape_property(name)
            if escaped != name:
                node.escapes[name] = escaped
            if child.walk or child.convert or child.unsupported:
                node.props[name] = child
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        child = _build(extra)
        if child.walk or child.convert or child.unsupported:
            node.additional = child
    if isinstance(schema.get("items"), dict):
        child = _build(schema["items"])
        if child.walk or child.convert or child.unsupported:
            node.items = child
    children = [*node.props.values(), node.additional, node.items]
    node.walk = bool(node.rules) or any(c is not None and c.walk for c in children)
    node.convert = (
        node.number
        or bool(node.defaults)
        or bool(node.escapes)
        or any(c is not None and (c.convert or c.unsupported) for c in children)
    )
    return node


class _Unsupported(Exception):
    pass


def _cel_value(node: _Node, value: Any) -> Any:
    """`value` as the API server hands it to CEL (defaults, escapes, doubles)."""
    if node.unsupported and value is not None:
        raise _Unsupported(node.unsupported)
    if not node.convert:
        return value
    if node.number and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            child = node.props.get(key) or node.additional
            item = _cel_value(child, item) if child is not None else item
            name = node.escapes.get(key, key) if node.props or node.escapes else key
            if name is not None:
                out[name] = item
        for key, default in node.defaults.items():
            if key not in value:
                name = node.escapes.get(key, key)
                child = node.props.get(key)
                if name is not None:
                    out[name] = _cel_value(child, default) if child is not None else default
        return out
    if isinstance(value, list) and node.items is not None:
        return [_cel_value(node.items, item) for item in value]
    return value


class CelRules:
    """The compiled rule trees of every custom kind, built on first use."""

    def __init__(self, crd_schemas: CrdSchemas) -> None:
        self.crd_schemas = crd_folders(crd_schemas)
        self._trees: dict[tuple[str, str], _Node | None] = {}

    def tree(self, api_version: str, kind: str) -> _Node | None:
        key = (api_version, kind)
        if key not in self._trees:
            self._trees[key] = self._load(api_version, kind)
        return self._trees[key]

    def _load(self, api_version: str, kind: str) -> _Node | None:
        # The same file the schema check uses: the first folder that has the kind.
        path = crd_schema_file(self.crd_schemas, api_version, kind)
        if path is None:
            return None
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # the schema check reports a missing or broken schema
        node = _build(schema)
        return node if node.walk else None

    def check(self, m: Manifest, family: Family) -> list[Diagnostic]:
        """Every rule of `m`'s kind on every value it applies to."""
        node = self.tree(m.api_version, m.kind)
        if node is None:
            return []
        out: list[Diagnostic] = []
        _walk(node, m.data, (), m, family, out)
        return out


def _walk(
    node: _Node, value: Any, path: PathKey, m: Manifest, family: Family, out: list[Diagnostic]
) -> None:
    if value is None:
        return
    if node.rules:
        _evaluate(node, value, path, m, family, out)
    if isinstance(value, dict):
        for key, child in node.props.items():
            if not child.walk:
                continue
            item = value.get(key, node.defaults.get(key))
            if item is not None:
                _walk(child, item, (*path, key), m, family, out)
        extra = node.additional
        if extra is not None and extra.walk:
            for key, item in value.items():
                if key not in node.props:
                    _walk(extra, item, (*path, key), m, family, out)
    elif isinstance(value, list) and node.items is not None and node.items.walk:
        for index, item in enumerate(value):
            _walk(node.items, item, (*path, index), m, family, out)


def _evaluate(
    node: _Node, value: Any, path: PathKey, m: Manifest, family: Family, out: list[Diagnostic]
) -> None:
    try:
        data = {"self": _cel_value(node, value)}
    except _Unsupported as exc:
        for rule in node.rules:
            family.cannot(f"{m.api_version} {m.kind}: {rule.shown}: {exc} are not supported")
        return
    for rule in node.rules:
        if rule.transition:
            family.skipped += 1
            continue
        if rule.program is None:
            family.cannot(f"{m.api_version} {m.kind}: {rule.shown}: {rule.problem}")
            continue
        try:
            result = rule.program.eval(data=data)
        except RuntimeError as exc:
            family.cannot(f"{m.api_version} {m.kind}: {rule.shown}: {str(exc).splitlines()[0]}")
            continue
        family.run += 1
        plain = result.value()
        if plain is True:
            continue
        family.failed += 1
        if isinstance(plain, bool):
            message = rule.message or f"failed rule: {rule.shown}"
            out.append(m.diagnostic(path, f"{message} (CRD rule `{rule.shown}`)"))
        else:
            out.append(m.diagnostic(path, f"{plain} evaluating CRD rule `{rule.shown}`"))
