"""Turn stage results into text, JSON, Markdown or GitHub annotations.

Stages return data; this module is the only one that decides how it reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from llmgen.errors import Diagnostic, Severity

FORMATS = ("text", "json", "github")


def _escape_github(value: str, prop: bool = False) -> str:
    # The workflow-command escaping GitHub documents for messages/properties.
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def diagnostics(items: Iterable[Diagnostic], fmt: str = "text") -> str:
    """Render diagnostics, sorted by place, in `fmt`."""
    diags = sorted(items)
    if fmt == "json":
        return json.dumps(
            [
                {
                    "file": d.location.file,
                    "line": d.location.line,
                    "column": d.location.col,
                    "path": d.path,
                    "severity": d.severity.value,
                    "message": d.message,
                }
                for d in diags
            ],
            indent=2,
        )
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
