"""Turn stage results into text, JSON, SARIF, Markdown or GitHub annotations.

Stages return data; this module is the only one that decides how it reads.
Every JSON output of the CLI is one versioned envelope (`envelope`), so a CI
script reads `ok`, `command` and the tool's version the same way for each
command; the command's own data sits beside them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from llmgen import __version__
from llmgen.errors import Diagnostic, Severity

#: Formats of the checking commands (validate, verify, secrets check).
FORMATS = ("text", "json", "github", "sarif")
#: The envelope's schema id; bump it when a key changes meaning or goes away.
REPORT_API = "llmgen.io/report/v1"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _escape_github(value: str, prop: bool = False) -> str:
    # The workflow-command escaping GitHub documents for messages/properties.
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def diagnostic_dicts(items: Iterable[Diagnostic]) -> list[dict[str, Any]]:
    """Diagnostics, sorted by place, as plain JSON objects."""
    return [
        {
            "file": d.location.file,
            "line": d.location.line,
            "column": d.location.col,
            "path": d.path,
            "severity": d.severity.value,
            "message": d.message,
        }
        for d in sorted(items)
    ]


def envelope(command: str, ok: bool, data: Mapping[str, Any] | None = None) -> str:
    """The one JSON shape every command prints with `--format json`."""
    doc: dict[str, Any] = {
        "apiVersion": REPORT_API,
        "tool": "llmgen",
        "version": __version__,
        "command": command,
        "ok": ok,
    }
    for key, value in (data or {}).items():
        if key in doc:
            raise ValueError(f"report key {key!r} is part of the envelope")
        doc[key] = value
    return json.dumps(doc, indent=2)


def sarif(items: Iterable[Diagnostic], command: str) -> str:
    """SARIF 2.1.0 (one run) for code scanning: no per-step annotation cap.

    The rule is the command that found the problem; the catalog path leads the
    message, so the same problem at the same place keeps its alert across runs.
    """
    rule = f"llmgen/{command.replace(' ', '-')}"
    results = []
    for d in sorted(items):
        location: dict[str, Any] = {"artifactLocation": {"uri": d.location.file}}
        if d.location.line:
            location["region"] = {
                "startLine": d.location.line,
                "startColumn": max(d.location.col, 1),
            }
        results.append(
            {
                "ruleId": rule,
                "level": "error" if d.severity is Severity.ERROR else "warning",
                "message": {"text": f"{d.path}: {d.message}" if d.path else d.message},
                "locations": [{"physicalLocation": location}],
            }
        )
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "llmgen",
                        "version": __version__,
                        "rules": [{"id": rule, "name": command}],
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2)


def diagnostics(items: Iterable[Diagnostic], fmt: str = "text", command: str = "") -> str:
    """Render diagnostics, sorted by place, in `fmt` (json: the envelope)."""
    diags = sorted(items)
    if fmt == "json":
        ok = not any(d.severity is Severity.ERROR for d in diags)
        return envelope(command, ok, {"diagnostics": diagnostic_dicts(diags)})
    if fmt == "sarif":
        return sarif(diags, command)
    if fmt == "github":
        lines = []
        for d in diags:
            level = "error" if d.severity is Severity.ERROR else "warning"
            props = [f"file={_escape_github(d.location.file, True)}"]
            if d.location.line:
                props += [f"line={d.location.line}", f"col={d.location.col}"]
            props.append(f"title={_escape_github('llmgen ' + (d.path or 'catalog'), True)}")
            lines.append(f"::{level} {','.join(props)}::{_escape_github(d.message)}")
        return "\n".join(lines)
    return "\n".join(str(d) for d in diags)


def counts(items: Iterable[Diagnostic]) -> tuple[int, int]:
    errors = warnings = 0
    for d in items:
        if d.severity is Severity.ERROR:
            errors += 1
        else:
            warnings += 1
    return errors, warnings


def summary(items: Iterable[Diagnostic]) -> str:
    errors, warnings = counts(items)
    return f"{errors} error(s), {warnings} warning(s)"
