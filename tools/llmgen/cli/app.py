"""The `llmgen` command line: parse options, call the library, print, exit.

Exit codes: 0 ok, 1 the user's input is wrong, 2 usage, 3 a bug (traceback
only with --debug), 130 interrupted. `handled` is the one place that maps
exceptions to them.
"""

from __future__ import annotations

import enum
import functools
import os
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from llmgen.cli import report
from llmgen.errors import CatalogError, Diagnostic, LlmgenError

app = typer.Typer(
    name="llmgen",
    help="Render GitOps manifests for LLM inference on EKS and GKE from a YAML catalog.",
    no_args_is_help=True,
    # --install-completion / --show-completion for bash, zsh, fish and PowerShell;
    # --env, --cluster and model names complete from the catalog (complete.py).
    add_completion=True,
    pretty_exceptions_enable=False,
    # Plain click errors: CI logs and terminals of any width read them whole.
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])
_state: dict[str, Any] = {"debug": False, "quiet": False, "command": ""}


class CheckFormat(enum.StrEnum):
    """Output of the checking commands (validate, verify, secrets check)."""

    text = "text"
    json = "json"
    github = "github"
    sarif = "sarif"


class ReportFormat(enum.StrEnum):
    """Output of the commands that change or compare files."""

    text = "text"
    json = "json"


class DiffFormat(enum.StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


class PlanFormat(enum.StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


class StatusFormat(enum.StrEnum):
    table = "table"
    json = "json"


def _complete(kind: str) -> Callable[[typer.Context, str], list[str]]:
    def complete(ctx: typer.Context, incomplete: str) -> list[str]:
        from llmgen.cli.complete import catalog_names

        return [n for n in catalog_names(ctx, kind) if n.startswith(incomplete)]

    return complete


def format_option(kind: type[enum.StrEnum]) -> Any:
    """`--format` as a choice of `kind`: click refuses any other value with exit 2."""
    return typer.Option("--format", case_sensitive=False, help=" | ".join(kind))


RootOpt = Annotated[
    Path | None,
    typer.Option("--root", help="Repository root (default: found from the current directory)."),
]
EnvOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--env",
        help="Only this environment (repeatable).",
        autocompletion=_complete("environments"),
    ),
]
ClusterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--cluster", help="Only this cluster (repeatable).", autocompletion=_complete("clusters")
    ),
]
ENV_COMPLETION = _complete("environments")
CLUSTER_COMPLETION = _complete("clusters")
MODEL_COMPLETION = _complete("models")


def find_root(start: Path | None) -> Path:
    """The repo root: --root, else the nearest ancestor of cwd holding catalog/."""
    if start is not None:
        if not (start / "catalog").is_dir():
            raise typer.BadParameter(f"{start} has no catalog/ folder", param_hint="--root")
        return start.resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "catalog").is_dir():
            return candidate
    raise typer.BadParameter("no catalog/ folder here or above; pass --root", param_hint="--root")


def echo(text: str, err: bool = False) -> None:
    if text:
        typer.echo(text, err=err)


def command_name() -> str:
    """The running subcommand as typed after `llmgen` (e.g. `secrets check`)."""
    return str(_state["command"])


def quiet() -> bool:
    return bool(_state["quiet"])


def emit_json(ok: bool, data: Mapping[str, Any] | None = None) -> None:
    """Print the versioned JSON envelope of the running command."""
    echo(report.envelope(command_name(), ok, data))


def finish(
    diagnostics: list[Diagnostic],
    fmt: str,
    ok: bool,
    summary: str,
    data: Mapping[str, Any] | None = None,
) -> NoReturn:
    """Print a check's diagnostics in `fmt`, its summary (text only), and exit 0 or 1."""
    if fmt == "json":
        emit_json(
            ok,
            {
                "summary": summary,
                **(data or {}),
                "diagnostics": report.diagnostic_dicts(diagnostics),
            },
        )
    else:
        echo(report.diagnostics(diagnostics, fmt, command_name()))
    if fmt == "text":
        echo(summary, err=not ok)
    raise typer.Exit(0 if ok else 1)


def handled(fn: F) -> F:
    """Map every exception to llmgen's exit codes, in one place."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        fmt = str(kwargs.get("fmt") or "text")
        # validate_cmd -> "validate", secrets_check_cmd -> "secrets check"
        _state["command"] = fn.__name__.removesuffix("_cmd").replace("_", " ")
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.BadParameter, typer.Abort):
            raise
        except CatalogError as exc:
            text_fmt = fmt if fmt in report.FORMATS else "text"
            if text_fmt == "json":
                emit_json(
                    False,
                    {
                        "summary": report.summary(exc.diagnostics),
                        "diagnostics": report.diagnostic_dicts(exc.diagnostics),
                    },
                )
            else:
                echo(report.diagnostics(exc.diagnostics, text_fmt, command_name()))
            if text_fmt == "text":
                echo(report.summary(exc.diagnostics), err=True)
            raise typer.Exit(1) from None
        except LlmgenError as exc:
            echo(f"llmgen: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            echo("llmgen: interrupted", err=True)
            raise typer.Exit(130) from None
        except Exception as exc:  # a bug: say so, and show it only when asked
            if _state["debug"]:
                traceback.print_exc()
            else:
                echo(
                    f"llmgen: internal error: {type(exc).__name__}: {exc} "
                    "(this is a bug in llmgen; rerun with --debug for a traceback)",
                    err=True,
                )
            raise typer.Exit(3) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    # Eager: click runs it while parsing, before it asks for a subcommand.
    if not value:
        return
    from llmgen.verify.toolversions import describe

    echo(describe())
    raise typer.Exit(0)


@app.callback()
def _main(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks for internal errors.")
    ] = False,
    quiet_: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress output on the terminal.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_version,
            help="Print llmgen's, kubectl's and kustomize's versions and the schema range; exit.",
        ),
    ] = False,
) -> None:
    _state["debug"] = debug or bool(os.environ.get("LLMGEN_DEBUG"))
    _state["quiet"] = quiet_
