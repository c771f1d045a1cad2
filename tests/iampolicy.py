"""A small evaluator of AWS IAM policy documents, for the mirror's policy tests.

No local AWS emulator evaluates Resource and Condition (moto's IAM access
control skips both: moto/iam/access_control.py "TODO add support for the
Resource and Condition parts of IAM policies"), so the tests decide requests
with the rules of the IAM User Guide, implemented here for the operators the
rendered policies use and nothing else (an unknown operator fails loudly):

- "Policy evaluation logic": an explicit Deny in any statement wins; else an
  Allow is needed.
- "IAM JSON policy elements: Resource" / "Action": `*` and `?` wildcards; in
  an ARN `*` also matches `/`.
- "IAM JSON policy elements: Condition operators": operators AND together,
  keys of one operator AND together, values of one key OR together (NOR for
  negated operators). A key absent from the request makes a condition false,
  except that a negated operator (StringNotEquals, ArnNotLike) is then
  true, and `Null` tests presence itself ("true": the key is absent).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    principal_arn: str = "arn:aws:iam::111122223333:role/someone"
    context: Mapping[str, str] = field(default_factory=dict)

    def key(self, name: str) -> str | None:
        if name == "aws:PrincipalArn":
            return self.principal_arn
        return self.context.get(name)


def _list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _like(pattern: str, text: str) -> bool:
    return fnmatch.fnmatchcase(text, pattern)


def _condition(op: str, key: str, wanted: list[str], req: Request) -> bool:
    have = req.key(key)
    if op == "Null":
        return (have is None) == (wanted[0] == "true")
    negated = op in ("StringNotEquals", "ArnNotEquals", "ArnNotLike")
    if have is None:
        return negated
    if op == "StringEquals":
        return have in wanted
    if op == "StringNotEquals":
        return have not in wanted
    if op == "ArnNotEquals":
        return have not in wanted
    if op == "ArnNotLike":
        return not any(_like(w, have) for w in wanted)
    if op == "Bool":
        return have.lower() in [w.lower() for w in wanted]
    raise AssertionError(f"operator {op} is not implemented by this evaluator")


def _principal(statement: Mapping[str, Any], req: Request) -> bool:
    """`*`, or `{"AWS": [...]}` naming the principal or its account's root (the
    whole account, which then delegates to its own IAM). Identity policies have
    no Principal: they apply to whoever holds them."""
    principal = statement.get("Principal")
    if principal is None or principal == "*":
        return True
    account = req.principal_arn.split(":")[4]
    for arn in _list(principal.get("AWS", [])):
        if arn == req.principal_arn or arn == f"arn:aws:iam::{account}:root":
            return True
    return False


def applies(statement: Mapping[str, Any], req: Request) -> bool:
    if not _principal(statement, req):
        return False
    if not any(_like(a, req.action) for a in _list(statement["Action"])):
        return False
    if not any(_like(r, req.resource) for r in _list(statement["Resource"])):
        return False
    for op, keys in (statement.get("Condition") or {}).items():
        for key, values in keys.items():
            if not _condition(op, key, _list(values), req):
                return False
    return True


def decide(policy: Mapping[str, Any], req: Request) -> str:
    """`deny` (an explicit Deny applies), `allow`, or `none` (nothing applies)."""
    effects = {s["Effect"] for s in policy["Statement"] if applies(s, req)}
    if "Deny" in effects:
        return "deny"
    return "allow" if "Allow" in effects else "none"
