"""`python -m llmgen` runs the CLI."""

from __future__ import annotations

from llmgen.cli import main

main()
