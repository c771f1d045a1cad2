"""PromQL checks: every query llmgen renders must parse before it ships.

A query that does not parse fails silently where it runs: KEDA logs a scaler
error and falls back, Prometheus refuses the whole rule group. Parsing here
(PyPI `promql-parser`, a port of the Prometheus parser) turns that into a
render-time error that names the query.
"""

from __future__ import annotations

import promql_parser


def check_expr(expr: str) -> str | None:
    """None when `expr` is valid PromQL, else the parser's message."""
    if not expr.strip():
        return "empty PromQL expression"
    try:
        promql_parser.parse(expr)
    except (ValueError, TypeError) as exc:
        return str(exc) or type(exc).__name__
    return None


def require(expr: str, where: str) -> str:
    """`expr` itself when it parses; raise ValueError naming `where` otherwise.

    Concerns call this on every query they build, so a bad query stops the
    render instead of reaching a cluster.
    """
    problem = check_expr(expr)
    if problem is not None:
        raise ValueError(f"{where}: invalid PromQL {expr!r}: {problem}")
    return expr
