"""The credential guard: nothing that looks like a credential reaches generated/.

llmgen never renders a secret value: ExternalSecrets name where a secret
lives, and the cluster fetches it. `scan` proves it for a rendered tree by
looking for:

- well-known credential formats anywhere in any file (private key blocks,
  AWS access key IDs, GitHub/GitLab/Slack tokens, JWTs);
- Secrets with literal `data`/`stringData` (llmgen renders none);
- credential-named keys (`DB_PASSWORD`, `OPENAI_API_KEY`) with literal values
  in ConfigMap/Secret data or in a container's `env`;
- high-entropy strings in ConfigMap/Secret `data`;
- any of the `seeded` values (what a test wrote into a backend), verbatim or
  base64-encoded.

Findings name the file, line and kind of credential, never the value.
"""

from __future__ import annotations

import base64
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml_rs

from llmgen.errors import Diagnostic, SourceLocation

#: Seeded values shorter than this would match ordinary text by accident.
MIN_SEEDED_LENGTH = 6

# Well-known formats, each matched as a whole token.
_PATTERNS: tuple[tuple[str, str], ...] = (
    ("a private key block", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    ("an AWS access key ID", r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])"),
    (
        "an AWS secret access key",
        r"(?i:aws_?secret_?access_?key)[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])",
    ),
    (
        "a GitHub token",
        r"(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
    ),
    ("a GitLab token", r"(?<![A-Za-z0-9])glpat-[A-Za-z0-9_-]{20,}"),
    ("a Slack token", r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,}"),
    (
        "a Slack webhook URL",
        r"hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+",
    ),
    ("a JWT", r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    # Hugging Face user (`hf_`) and organization (`api_org_`) tokens: 34 letters and digits.
    ("a Hugging Face token", r"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{30,}(?![A-Za-z0-9])"),
    (
        "a Hugging Face organization token",
        r"(?<![A-Za-z0-9_])api_org_[A-Za-z0-9]{30,}(?![A-Za-z0-9])",
    ),
    # OpenAI: project, service-account and admin keys (sk-proj-, sk-svcacct-,
    # sk-admin-) before legacy user keys (sk- and 48 characters).
    (
        "an OpenAI project key",
        r"(?<![A-Za-z0-9_-])sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}",
    ),
    ("an OpenAI API key", r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9]{32,}(?![A-Za-z0-9])"),
    # `scheme://user:password@host`: a user name alone (ssh://git@...) is fine.
    (
        "a URL with a password (user:password@)",
        r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:\[\]]+:[^\s/?#@\[\]]+@",
    ),
)
_COMBINED = re.compile("|".join(f"(?P<p{i}>{rx})" for i, (_, rx) in enumerate(_PATTERNS)))
# A pre-filter: a fragment of every pattern above, factored by first byte so
# that `re` rejects most positions at once. The full expression runs at about
# 5 MB/s, this one at over 100 MB/s; the full one then runs only on the rare
# files this one matches.
_ANCHORS = re.compile(
    rb"[APaeghx](?:RIVATE KEY|KIA|SIA|h[pousr]_|ithub_pat_|lpat-|ox|ooks\.slack\.com|yJ"
    rb"|[wW][sS]_?[sS][eE][cC][rR][eE][tT]|f_|pi_org_)|sk-|://[^\s/@:]+:[^\s/@]+@"
)


def _may_match(content: bytes) -> bool:
    """False only when no pattern can match `content`."""
    return _ANCHORS.search(content) is not None


# A key names a credential when its last word (or last two) does:
# HF_TOKEN, dbPassword, OPENAI_API_KEY, client-secret; not HF_TOKEN_PATH or MAX_TOKENS.
_CREDENTIAL_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "token",
        "apikey",
        "credential",
        "credentials",
        "privatekey",
        "accesskey",
        "secretkey",
    }
)
_CREDENTIAL_PAIRS = frozenset(
    {("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key")}
)
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
# Keys whose hex values are digests, not secrets.
_DIGEST_KEY = re.compile(r"(?i)sha|digest|hash|checksum|revision|commit|etag")
_BASE64ISH_RUN = re.compile(r"[A-Za-z0-9+/=]{20,}")
_HEX_RUN = re.compile(r"\A[0-9a-fA-F]{32,}\Z")
_TOKENISH = re.compile(r"\A[A-Za-z0-9+/=_.-]+\Z")
# A container env entry with a literal value, as the YAML emitter writes it
# (either key first). Each starts with a literal so the scan skips quickly.
_ENV_NAME_FIRST = re.compile(
    r"- name: *(?P<name>[A-Za-z_][A-Za-z0-9_.-]*) *\n[ ]+value: *(?P<value>\S.*)$", re.MULTILINE
)
_ENV_VALUE_FIRST = re.compile(
    r"- value: *(?P<value>\S.*)\n[ ]+name: *(?P<name>[A-Za-z_][A-Za-z0-9_.-]*) *$", re.MULTILINE
)
_KIND_LINE = re.compile(rb"^kind: *(ConfigMap|Secret) *$", re.MULTILINE)
_KIND_TEXT = re.compile(r"^kind: *(ConfigMap|Secret) *$", re.MULTILINE)


def _words(key: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(key)]


def credential_key(key: str) -> bool:
    """True when `key` names a credential (by its last word or two)."""
    words = _words(key)
    if not words:
        return False
    if words[-1] in _CREDENTIAL_WORDS:
        return True
    return len(words) >= 2 and (words[-2], words[-1]) in _CREDENTIAL_PAIRS


def shannon_entropy(text: str) -> float:
    """Bits per character of `text`."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def high_entropy(key: str, value: str) -> bool:
    """True when `value` looks like random key material rather than configuration."""
    if not _TOKENISH.match(value):
        return False  # spaces, ':' or ',' mean prose, URLs or lists
    if _HEX_RUN.match(value):
        return not _DIGEST_KEY.search(key) and shannon_entropy(value) >= 3.0
    for run in _BASE64ISH_RUN.findall(value):
        has_digit = any(c.isdigit() for c in run)
        has_alpha = any(c.isalpha() for c in run)
        # Random text over 62+ symbols nears log2(len) bits/char; identifiers do not.
        if has_digit and has_alpha and shannon_entropy(run) >= 0.85 * math.log2(min(len(run), 64)):
            return True
    return False


_ANCHORS_TEXT = re.compile(_ANCHORS.pattern.decode())


def pattern_reason(value: str) -> str | None:
    """The credential format `value` contains, if any (never the value itself)."""
    if _ANCHORS_TEXT.search(value) is None:
        return None  # the pre-filter: most catalog strings stop here
    m = _COMBINED.search(value)
    if m is None or m.lastgroup is None:
        return None
    return f"looks like {_PATTERNS[int(m.lastgroup[1:])][0]}"


def credential_reason(key: str, value: Any) -> str | None:
    """Why a literal `key: value` setting looks like a credential, or None.

    Used on environment config before rendering, and on ConfigMap data after.
    """
    if isinstance(value, bool) or value is None:
        return None
    text = str(value)
    found = pattern_reason(text)
    if found:
        return f"{key}: value {found}"
    if text and credential_key(key):
        return f"{key}: a credential-named key with a literal value"
    if high_entropy(key, text):
        return f"{key}: value looks like key material (high entropy)"
    return None


# ---------------------------------------------------------------- scanning


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


def _diag(file: str, text: str, offset: int, path: str, message: str) -> Diagnostic:
    line, col = _position(text, offset)
    return Diagnostic(SourceLocation(file, line, col), path, message)


_DOC_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)


def _split(text: str) -> Iterator[tuple[int, str]]:
    """Each YAML document of a (possibly bundled) file with its offset in the file."""
    start = 0
    for m in _DOC_SEPARATOR.finditer(text):
        yield start, text[start : m.start()]
        start = m.end()
    yield start, text[start:]


def _key_offset(text: str, section: str, key: str) -> int:
    """Offset of `key:` inside the `section:` block of one document (0 if not found)."""
    start = text.find(f"\n{section}:")
    if start < 0:
        return 0
    if not key:
        return start + 1
    for candidate in (f" {key}:", f' "{key}":', f" '{key}':"):
        at = text.find(candidate, start)
        if at >= 0:
            return at + 1
    return start + 1


def _document(text: str) -> dict[str, Any] | None:
    try:
        parsed = yaml_rs.loads(text, parse_datetime=False)
    except Exception:  # unparsable output is verify's finding, not the guard's
        return None
    return parsed if isinstance(parsed, dict) else None


def _scan_data(file: str, text: str) -> Iterator[Diagnostic]:
    for base, part in _split(text):
        if not _KIND_TEXT.search(part):
            continue
        doc = _document(part)
        if doc is None:
            continue
        kind = doc.get("kind")
        for section in ("data", "stringData", "binaryData"):
            data = doc.get(section)
            if not isinstance(data, Mapping) or not data:
                continue
            if kind == "Secret":
                yield _diag(
                    file,
                    text,
                    base + _key_offset(part, section, ""),
                    section,
                    "a Secret with literal data; llmgen renders ExternalSecrets, never Secrets",
                )
                continue
            for key, value in data.items():
                reason = credential_reason(str(key), value)
                if reason:
                    yield _diag(
                        file,
                        text,
                        base + _key_offset(part, section, str(key)),
                        f"{section}.{key}",
                        f"{reason}; credentials must come from a secret store",
                    )


def _scan_env(file: str, text: str) -> Iterator[Diagnostic]:
    matches = [*_ENV_NAME_FIRST.finditer(text), *_ENV_VALUE_FIRST.finditer(text)]
    for m in matches:
        name = m.group("name")
        if credential_key(name):
            yield _diag(
                file,
                text,
                m.start(),
                f"env.{name}",
                f"{name}: a credential-named environment variable with a literal value; "
                "use valueFrom.secretKeyRef",
            )


def _seed_needles(seeded: Iterable[str]) -> list[tuple[bytes, str]]:
    needles: list[tuple[bytes, str]] = []
    for i, value in enumerate(seeded):
        if len(value) < MIN_SEEDED_LENGTH:
            raise ValueError(
                f"seeded value #{i} is shorter than {MIN_SEEDED_LENGTH} characters; "
                "it would match ordinary text"
            )
        raw = value.encode()
        needles.append((raw, f"seeded test value #{i}"))
        needles.append((base64.b64encode(raw), f"seeded test value #{i} (base64)"))
    return needles


def scan(files: Mapping[str, bytes], seeded: Iterable[str] = ()) -> list[Diagnostic]:
    """Every place in `files` (path -> content) where a credential may be rendered.

    Returns located diagnostics, sorted; an empty list means the tree is clean.
    Messages never quote the offending value.
    """
    needles = _seed_needles(seeded)
    found: list[Diagnostic] = []
    for file, content in files.items():
        text = content.decode("utf-8", errors="replace")
        for m in _COMBINED.finditer(text) if _may_match(content) else ():
            assert m.lastgroup is not None
            what = _PATTERNS[int(m.lastgroup[1:])][0]
            found.append(
                _diag(
                    file,
                    text,
                    m.start(),
                    "",
                    f"looks like {what}; credentials must never be rendered",
                )
            )
        for needle, label in needles:
            at = content.find(needle)
            if at >= 0:
                offset = len(content[:at].decode("utf-8", errors="replace"))
                found.append(_diag(file, text, offset, "", f"contains {label}"))
        if _KIND_LINE.search(content):
            found.extend(_scan_data(file, text))
        if b"env:" in content:
            found.extend(_scan_env(file, text))
    return sorted(set(found))


def scan_tree(root: Path, seeded: Iterable[str] = ()) -> list[Diagnostic]:
    """`scan` every file under `<root>/generated/` (paths relative to root)."""
    base = root / "generated"
    files = {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file()
    }
    return scan(files, seeded)
