"""KEDA's `scalingModifiers.formula`: the expr-lang subset, parsed once, run on arrays.

KEDA compiles the formula with expr-lang (github.com/expr-lang/expr) and runs
it over a map from trigger name to that trigger's metric value
(kedacore/keda v2.18.1 `pkg/scaling/modifiers/formula.go`). This module parses
the operators and functions such formulas use (numbers, trigger names,
`+ - * / % **`, comparisons, `&& || !` and their word forms, the ternary
`c ? a : b`, `??`, and `min max abs ceil floor round`), with expr-lang's
precedence, and evaluates them on numpy arrays so that every unit whose
formula has the same shape is computed in one pass.

Constants are lifted out of the tree (`Formula.constants`), so formulas that
differ only in their numbers (each model's targets) share one `shape`.
Anything outside the subset is a `FormulaError` naming the position: the
simulation never guesses what a formula means.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Node = tuple[Any, ...]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|==|!=|<=|>=|&&|\|\||\?\?|[-+*/%^<>!?:(),]))"
)
_FUNCS = {"min", "max", "abs", "ceil", "floor", "round"}
# expr-lang's precedence (github.com/expr-lang/expr `parser/operator/operator.go`):
# higher binds tighter; a unary operator's operand takes binary operators of at
# least its own precedence (so `-2 ** 2` is -4 and `??` binds tightest).
_BINARY = {
    "||": 10, "or": 10, "&&": 15, "and": 15,
    "==": 20, "!=": 20, "<": 20, ">": 20, "<=": 20, ">=": 20,
    "+": 30, "-": 30, "*": 60, "/": 60, "%": 60, "**": 100, "^": 100, "??": 500,
}  # fmt: skip
_UNARY = {"not": 50, "!": 50, "-": 90, "+": 90}
_RIGHT = {"**", "^"}


class FormulaError(ValueError):
    """A formula outside the subset the simulation understands."""


@dataclass(frozen=True)
class Formula:
    """One parsed formula: its shape (numbers replaced) and its numbers."""

    text: str
    tree: Node
    constants: tuple[float, ...]
    names: frozenset[str]

    @property
    def shape(self) -> str:
        return repr(self.tree)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FormulaError(f"unexpected {text[pos : pos + 10]!r} at column {pos + 1}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind), m.start(kind) + 1))
        pos = m.end()
    out.append(("end", "", len(text) + 1))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.consts: list[float] = []
        self.names: set[str] = set()

    def peek(self) -> tuple[str, str, int]:
        return self.toks[self.i]

    def take(self, value: str | None = None) -> tuple[str, str, int]:
        tok = self.toks[self.i]
        if value is not None and tok[1] != value:
            raise FormulaError(f"expected {value!r} at column {tok[2]}, found {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.ternary()
        kind, value, col = self.peek()
        if kind != "end":
            raise FormulaError(f"unexpected {value!r} at column {col}")
        return node

    def ternary(self) -> Node:
        cond = self.binary(0)
        if self.peek()[1] == "?":
            self.take("?")
            yes = self.ternary()
            self.take(":")
            no = self.ternary()
            return ("?", cond, yes, no)
        return cond

    def binary(self, level: int) -> Node:
        left = self.unary()
        while True:
            kind, op, _ = self.peek()
            prec = _BINARY.get(op) if kind in ("op", "name") else None
            if prec is None or prec < level:
                return left
            self.take()
            right = self.binary(prec if op in _RIGHT else prec + 1)
            left = ("bin", {"and": "&&", "or": "||", "^": "**"}.get(op, op), left, right)

    def unary(self) -> Node:
        kind, value, col = self.peek()
        if value in _UNARY and kind in ("op", "name"):
            self.take()
            operand = self.binary(_UNARY[value])
            return ("neg" if value == "-" else "pos" if value == "+" else "not", operand)
        return self.primary()

    def primary(self) -> Node:
        kind, value, col = self.take()
        if kind == "num":
            self.consts.append(float(value))
            return ("num", len(self.consts) - 1)
        if value == "(":
            node = self.ternary()
            self.take(")")
            return node
        if kind == "name":
            if value in ("true", "false"):
                return ("bool", value == "true")
            if self.peek()[1] == "(":
                if value not in _FUNCS:
                    raise FormulaError(f"function {value}() at column {col} is not simulated")
                self.take("(")
                args = [self.ternary()]
                while self.peek()[1] == ",":
                    self.take(",")
                    args.append(self.ternary())
                self.take(")")
                return ("call", value, tuple(args))
            self.names.add(value)
            return ("var", value)
        raise FormulaError(f"unexpected {value or 'end of formula'!r} at column {col}")


def parse(text: str) -> Formula:
    """Parse a `scalingModifiers.formula`."""
    p = _Parser(text)
    tree = p.parse()
    return Formula(text, tree, tuple(p.consts), frozenset(p.names))


_NUMBER = re.compile(r"(?<![A-Za-z0-9_.])(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_SHAPES: dict[str, Formula] = {}


def parse_cached(text: str) -> Formula:
    """`parse`, reusing the tree of a formula that differs only in its numbers.

    The parser lifts numbers in source order, so the numbers found in the text
    are the constants of the cached shape.
    """
    key = _NUMBER.sub("#", text)
    known = _SHAPES.get(key)
    numbers = tuple(float(n) for n in _NUMBER.findall(text))
    if known is None or len(known.constants) != len(numbers):
        known = _SHAPES[key] = parse(text)
        return known
    return Formula(text, known.tree, numbers, known.names)


Value = Array | npt.NDArray[np.bool_]
Evaluator = Callable[[Mapping[str, Array], Array], Value]


def _f(v: Value) -> Array:
    return np.asarray(v, dtype=np.float64)


_BIN: dict[str, Callable[[Value, Value], Value]] = {
    "+": lambda a, b: _f(a) + _f(b),
    "-": lambda a, b: _f(a) - _f(b),
    "*": lambda a, b: _f(a) * _f(b),
    "/": lambda a, b: _f(a) / _f(b),
    "%": lambda a, b: np.fmod(_f(a), _f(b)),
    "**": lambda a, b: _f(a) ** _f(b),
    "==": lambda a, b: _f(a) == _f(b),
    "!=": lambda a, b: _f(a) != _f(b),
    "<": lambda a, b: _f(a) < _f(b),
    ">": lambda a, b: _f(a) > _f(b),
    "<=": lambda a, b: _f(a) <= _f(b),
    ">=": lambda a, b: _f(a) >= _f(b),
    "&&": lambda a, b: np.logical_and(a, b),
    "||": lambda a, b: np.logical_or(a, b),
    "??": lambda a, b: np.where(np.isnan(_f(a)), b, a),
}
_CALL: dict[str, Callable[[list[Value]], Value]] = {
    "min": lambda xs: np.minimum.reduce([_f(x) for x in xs]),
    "max": lambda xs: np.maximum.reduce([_f(x) for x in xs]),
    "abs": lambda xs: np.abs(_f(xs[0])),
    "ceil": lambda xs: np.ceil(_f(xs[0])),
    "floor": lambda xs: np.floor(_f(xs[0])),
    "round": lambda xs: np.round(_f(xs[0])),
}


def compile_tree(tree: Node) -> Evaluator:
    """A function of (trigger values, constants matrix) -> array, for one shape.

    `constants` has one row per constant of the shape and one column per unit.
    """
    tag = tree[0]
    if tag == "num":
        i = tree[1]
        return lambda env, c: c[i]
    if tag == "bool":
        flag = bool(tree[1])
        return lambda env, c: np.full(c.shape[1], flag)
    if tag == "var":
        name = tree[1]
        return lambda env, c: env[name]
    if tag == "neg":
        a = compile_tree(tree[1])
        return lambda env, c: -_f(a(env, c))
    if tag == "pos":
        a = compile_tree(tree[1])
        return a
    if tag == "not":
        a = compile_tree(tree[1])
        return lambda env, c: np.logical_not(a(env, c))
    if tag == "bin":
        op, a, b = _BIN[tree[1]], compile_tree(tree[2]), compile_tree(tree[3])
        return lambda env, c: op(a(env, c), b(env, c))
    if tag == "?":
        cond, yes, no = compile_tree(tree[1]), compile_tree(tree[2]), compile_tree(tree[3])
        return lambda env, c: np.where(cond(env, c), yes(env, c), no(env, c))
    if tag == "call":
        fn = _CALL[tree[1]]
        args = [compile_tree(a) for a in tree[2]]
        return lambda env, c: fn([a(env, c) for a in args])
    raise FormulaError(f"cannot evaluate {tag}")


def evaluate(formula: Formula, env: Mapping[str, float]) -> float:
    """Evaluate one formula on scalar trigger values (tests and small cases)."""
    arrays = {k: np.array([float(v)]) for k, v in env.items()}
    missing = formula.names - set(arrays)
    if missing:
        raise FormulaError(f"no value for {', '.join(sorted(missing))}")
    consts = np.array(formula.constants, dtype=np.float64).reshape(len(formula.constants), 1)
    if not formula.constants:
        consts = np.zeros((0, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(_f(compile_tree(formula.tree)(arrays, consts))[0])
