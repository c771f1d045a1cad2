"""Kubernetes resource quantities (`500m`, `64Gi`, `1e3`), parsed as apimachinery does.

k8s.io/apimachinery/pkg/api/resource/quantity.go: a signed decimal number
followed by a binary-SI suffix (Ki..Ei), a decimal-SI suffix (n, u, m, '',
k, M, G, T, P, E) or a decimal exponent (e3, E-2).
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

_QUANTITY = re.compile(
    r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE]?)"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}


@functools.lru_cache(maxsize=65536)
def parse_quantity(value: str | int | float) -> Fraction | None:
    """The exact value of a quantity, or None if the API server would reject it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(value)
    match = _QUANTITY.fullmatch(value)
    if match is None:
        return None
    number, suffix = Fraction(match.group(1)), match.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * Fraction(10) ** int(suffix[1:])
