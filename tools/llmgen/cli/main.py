"""The console entry point: register every command on the app and run it."""

from __future__ import annotations

import sys

from llmgen.cli import commands, lifecycle, simulate  # noqa: F401  (importing registers the commands)
from llmgen.cli.app import app


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
