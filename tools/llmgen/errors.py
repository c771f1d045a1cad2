"""Errors and diagnostics: every problem llmgen reports carries a place.

A `Diagnostic` is one located finding (error or warning). Stages collect
diagnostics and return them; only `report.py` turns them into text. The
exception classes exist so that a stage can abort with a batch of diagnostics
(`CatalogError`) and so that the CLI can map failures to exit codes in one
place.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class SourceLocation:
    """A 1-based line and column in a file (relative to the repo root)."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col}"
        return self.file


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One located finding, printed as `file:line:col: path: message`."""

    location: SourceLocation
    path: str
    message: str
    severity: Severity = field(default=Severity.ERROR, compare=False)

    def __str__(self) -> str:
        prefix = f"{self.location}: "
        where = f"{self.path}: " if self.path else ""
        tag = "warning: " if self.severity is Severity.WARNING else ""
        return f"{prefix}{tag}{where}{self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


class LlmgenError(Exception):
    """Base class of every error llmgen raises on purpose."""

    exit_code = 1


class CatalogError(LlmgenError):
    """The user's input is wrong; carries every diagnostic found so far."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics)
        super().__init__(f"{len(self.diagnostics)} problem(s) in the catalog")

    @classmethod
    def single(cls, location: SourceLocation, path: str, message: str) -> CatalogError:
        return cls([Diagnostic(location, path, message)])


class TemplateError(LlmgenError):
    """A template failed to render; names the template and line."""

    def __init__(self, template: str, line: int | None, message: str) -> None:
        self.template = template
        self.line = line
        self.message = message
        where = f"{template}:{line}" if line else template
        super().__init__(f"{where}: {message}")

    # A broken template is llmgen's (or a repo maintainer's) bug, not a
    # catalog mistake, but it is still reported without a traceback.
    exit_code = 1


class RenderSafetyError(LlmgenError):
    """Rendered output changed shape: a value tried to add structure."""

    def __init__(self, output: str, message: str) -> None:
        self.output = output
        self.message = message
        super().__init__(f"{output}: {message}")


class UsageError(LlmgenError):
    """The command line itself is wrong (exit 2)."""

    exit_code = 2


class ToolMissingError(LlmgenError):
    """An external tool that a stage needs is not installed."""

    def __init__(self, tool: str, hint: str) -> None:
        self.tool = tool
        self.hint = hint
        super().__init__(f"{tool} not found: {hint}")
