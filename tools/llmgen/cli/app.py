"""The `llmgen` command line: parse options, call the library, print, exit.

Exit codes: 0 ok, 1 the user's input is wrong, 2 usage, 3 a bug (traceback
only with --debug), 130 interrupted. `handled` is the one place that maps
exceptions to them.
"""

from __future__ import annotations

import functools
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from llmgen import __version__
from llmgen.cli import report
from llmgen.errors import CatalogError, Diagnostic, LlmgenError

app = typer.Typer(
    name="llmgen",
    help="Render GitOps manifests for LLM inference on EKS and GKE from a YAML catalog.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click errors: CI logs and terminals of any width read them whole.
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])
_state = {"debug": False}

RootOpt = Annotated[
    Path | None,
    typer.Option("--root", help="Repository root (default: found from the current directory)."),
]
EnvOpt = Annotated[
    list[str] | None, typer.Option("--env", help="Only this environment (repeatable).")
]
ClusterOpt = Annotated[
    list[str] | None, typer.Option("--cluster", help="Only this cluster (repeatable).")
]


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


def finish(diagnostics: list[Diagnostic], fmt: str, ok: bool, summary: str) -> NoReturn:
    """Print a check's diagnostics in `fmt`, its summary (text only), and exit 0 or 1."""
    echo(report.diagnostics(diagnostics, fmt))
    if fmt == "text":
        echo(summary, err=not ok)
    raise typer.Exit(0 if ok else 1)


def handled(fn: F) -> F:
    """Map every exception to llmgen's exit codes, in one place."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        fmt = kwargs.get("fmt", "text")
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.BadParameter, typer.Abort):
            raise
        except CatalogError as exc:
            text_fmt = fmt if fmt in report.FORMATS else "text"
            echo(report.diagnostics(exc.diagnostics, text_fmt))
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


@app.callback()
def _main(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks for internal errors.")
    ] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    _state["debug"] = debug or bool(os.environ.get("LLMGEN_DEBUG"))
    if version:
        echo(f"llmgen {__version__}")
        raise typer.Exit(0)
