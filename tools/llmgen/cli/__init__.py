"""cli: the `llmgen` command line. It only parses: each typer command builds its
options and calls a library function of a lower stage (catalog, plan, render,
verify, gitops, secrets, lifecycle), then prints what that returns through
`report` and exits with llmgen's codes (0 ok, 1 input wrong, 2 usage, 3 bug,
130 interrupted). Nothing below `cli/` imports it.

`app` is the typer application with every command registered; `main` runs it.
"""

from __future__ import annotations

from llmgen.cli.app import app
from llmgen.cli.main import main

__all__ = ["app", "main"]
