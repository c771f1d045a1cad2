"""Progress on a terminal: a bar on stderr for long work (render, verify).

Only when stderr is a terminal, `--quiet` was not given and `CI` is not set:
logs, pipes and CI runs stay exactly as they were.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

Callback = Callable[[str, int, int], None]


def wanted(stream: IO[str] | None = None, quiet: bool = False) -> bool:
    """Whether to draw progress on `stream` (default: stderr)."""
    stream = stream if stream is not None else sys.stderr
    if quiet or os.environ.get("CI"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@contextmanager
def bar(description: str, enabled: bool, console: Any | None = None) -> Iterator[Callback | None]:
    """A `progress(stage, done, total)` callback drawing one bar, or None when disabled."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        transient=True,
    ) as shown:
        task = shown.add_task(description, total=None)

        def update(stage: str, done: int, total: int) -> None:
            shown.update(task, description=f"{description}: {stage}", completed=done, total=total)

        yield update
