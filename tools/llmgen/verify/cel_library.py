"""The Kubernetes CEL library functions the CRD rules use, for cel-expr-python.

The API server compiles `x-kubernetes-validations` with cel-go plus the
Kubernetes libraries (k8s.io/apiserver/pkg/cel/library: regex, url, ip, lists,
quantity, ...) and cel-go's strings extension. cel-expr-python (cel-cpp) has
the CEL standard library; what the rules in the CRD schemas call beyond it is
declared here with Python implementations that follow the Go code:

- regex `find` / `findAll` (library/regex.go);
- url `isURL`, `url`, `getScheme`, `getHost`, `getPort`, `getEscapedPath`
  (library/urls.go: `url.ParseRequestURI`);
- ip `isIP` (library/ip.go: `netip.ParseAddr`, no zone, no IPv4-mapped IPv6);
- cel-go strings ext v2 `split`, `substring`, `lowerAscii`, `upperAscii`,
  `trim`, `replace`, `indexOf`, `lastIndexOf`, `charAt`, `join`. cel-cpp's own
  strings extension is not used: at cel-expr-python 0.1.3 its two-argument
  `substring` rejects in-range ends (`'abc'.substring(1, 3)` errors, cel-go
  returns "bc"), which would fail valid objects.

A rule calling anything else fails to compile (cel-cpp type-checks), and the
caller reports it as a rule that could not be evaluated.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Any

from cel_expr_python import cel

_T = cel.Type
# A URL travels as its (validated) string: cel-expr-python 0.1.3 cannot return
# an abstract type from a Python function ("Unimplemented type").
URL_TYPE = _T.STRING
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


class CelFunctionError(ValueError):
    """A library function refused its argument, as cel-go would with an error value."""


@functools.lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _find(s: str, pattern: str) -> str:
    match = _regex(pattern).search(s)
    return match.group(0) if match else ""


def _find_all(s: str, pattern: str) -> list[str]:
    return [m.group(0) for m in _regex(pattern).finditer(s)]


def _find_all_n(s: str, pattern: str, n: int) -> list[str]:
    found = _find_all(s, pattern)
    return found if n < 0 else found[:n]


@functools.lru_cache(maxsize=4096)
def parse_request_uri(raw: str) -> tuple[str, str, str] | None:
    """(scheme, host, path) as Go's `url.ParseRequestURI` reads `raw`, or None if it fails."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw) or raw == "":
        return None
    scheme, rest = "", raw
    colon = raw.find(":")
    if colon == 0:
        return None  # "missing protocol scheme"
    if colon > 0 and _SCHEME.fullmatch(raw[:colon]):
        scheme, rest = raw[:colon].lower(), raw[colon + 1 :]
    elif colon > 0 and not raw[0].isalpha():
        scheme, rest = "", raw
    if "?" in rest:
        rest = rest.split("?", 1)[0]
    if not rest.startswith("/"):
        # An opaque URL ("mailto:x") is accepted with a scheme; without one,
        # a request URI must be absolute.
        return (scheme, "", "") if scheme else None
    host, path = "", rest
    if scheme and rest.startswith("//"):
        authority, slash, tail = rest[2:].partition("/")
        path = slash + tail
        host = authority.rsplit("@", 1)[-1]
        if host.startswith("["):
            if "]" not in host:
                return None
        elif host.count(":") > 1:
            return None
        port = host.rsplit("]", 1)[-1].partition(":")[2] if ":" in host else ""
        if port and not port.isdigit():
            return None
        if any(c in host for c in ' <>"{}|\\^`'):
            return None
    return scheme, host, path


def _is_url(s: str) -> bool:
    return parse_request_uri(s) is not None


def _url(s: str) -> str:
    if parse_request_uri(s) is None:
        raise CelFunctionError(f"URL parse error during conversion from string: {s!r}")
    return s


def _get_scheme(u: str) -> str:
    parsed = parse_request_uri(u)
    return parsed[0] if parsed else ""


def _get_host(u: str) -> str:
    parsed = parse_request_uri(u)
    return parsed[1] if parsed else ""


def _get_path(u: str) -> str:
    parsed = parse_request_uri(u)
    return parsed[2] if parsed else ""


@functools.lru_cache(maxsize=4096)
def _is_ip(s: str) -> bool:
    if "%" in s:
        return False  # zones are rejected
    try:
        addr = ipaddress.ip_address(s)
    except ValueError:
        return False
    return not (isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None)


def _substring(s: str, start: int, end: int | None = None) -> str:
    stop = len(s) if end is None else end
    if start < 0 or stop < start or stop > len(s):
        raise CelFunctionError(f"index out of range: substring({start}, {stop}) of {len(s)}")
    return s[start:stop]


def _split(s: str, sep: str, n: int | None = None) -> list[str]:
    if n == 0:
        return []
    if sep == "":
        parts = list(s)
        return parts if n is None or n < 0 else [*parts[: n - 1], "".join(parts[n - 1 :])]
    return s.split(sep) if n is None or n < 0 else s.split(sep, n - 1)


def _index_of(s: str, sub: str, start: int = 0) -> int:
    if start < 0 or start > len(s):
        raise CelFunctionError(f"index out of range: {start}")
    return s.find(sub, start)


def _char_at(s: str, i: int) -> str:
    if i < 0 or i > len(s):
        raise CelFunctionError(f"index out of range: {i}")
    return s[i : i + 1]


def _ascii(s: str, upper: bool) -> str:
    table = (
        str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        if upper
        else str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
    )
    return s.translate(table)


def _overload(
    name: str,
    result: Any,
    params: Sequence[Any],
    impl: Callable[..., Any],
    *,
    member: bool = True,
) -> Any:
    oid = f"k8s_{name}_{'_'.join(p.name().lower() for p in params)}"
    return cel.Overload(oid, result, list(params), is_member=member, impl=impl)


def declarations() -> list[Any]:
    """The FunctionDecls to hand to `cel.NewEnv(functions=...)`."""
    s, i, b = _T.STRING, _T.INT, _T.BOOL
    ls = _T.List(s)
    table: dict[str, list[Any]] = {
        "find": [_overload("find", s, [s, s], _find)],
        "findAll": [
            _overload("findAll", ls, [s, s], _find_all),
            _overload("findAll", ls, [s, s, i], _find_all_n),
        ],
        "isURL": [_overload("isURL", b, [s], _is_url, member=False)],
        "url": [_overload("url", URL_TYPE, [s], _url, member=False)],
        "getScheme": [_overload("getScheme", s, [URL_TYPE], _get_scheme)],
        "getHost": [_overload("getHost", s, [URL_TYPE], _get_host)],
        "getEscapedPath": [_overload("getEscapedPath", s, [URL_TYPE], _get_path)],
        "isIP": [_overload("isIP", b, [s], _is_ip, member=False)],
        "substring": [
            _overload("substring", s, [s, i], _substring),
            _overload("substring", s, [s, i, i], _substring),
        ],
        "split": [
            _overload("split", ls, [s, s], _split),
            _overload("split", ls, [s, s, i], _split),
        ],
        "indexOf": [
            _overload("indexOf", i, [s, s], _index_of),
            _overload("indexOf", i, [s, s, i], _index_of),
        ],
        "lastIndexOf": [_overload("lastIndexOf", i, [s, s], lambda a, b: a.rfind(b))],
        "charAt": [_overload("charAt", s, [s, i], _char_at)],
        "lowerAscii": [_overload("lowerAscii", s, [s], lambda a: _ascii(a, False))],
        "upperAscii": [_overload("upperAscii", s, [s], lambda a: _ascii(a, True))],
        "trim": [_overload("trim", s, [s], lambda a: a.strip(" \t\n\r\v\f"))],
        "replace": [
            _overload("replace", s, [s, s, s], lambda a, old, new: a.replace(old, new)),
        ],
        "join": [
            _overload("join", s, [ls], lambda items: "".join(items)),
            _overload("join", s, [ls, s], lambda items, sep: sep.join(items)),
        ],
    }
    return [cel.FunctionDecl(name, overloads) for name, overloads in table.items()]
