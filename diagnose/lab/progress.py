"""How the lab shows what it is doing during its slow steps (venv install, model build, vLLM start-up).

A step reporter is anything with `step(text)`. `terminal_progress()` gives a live rich line with a spinner,
the current step and the elapsed time on a terminal, and one plain line per step elsewhere (CI logs, pipes),
because a live display written to a file is unreadable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TextIO


class StepReporter(Protocol):
    def step(self, text: str) -> None: ...


class NullProgress:
    """Says nothing; for library callers and tests that do not want output."""

    def step(self, text: str) -> None:
        pass


class LineProgress:
    """One line per step with the seconds since start: for logs, where a spinner would be noise."""

    def __init__(self, out: TextIO | None = None, prefix: str = "lab") -> None:
        self._out = out
        self._prefix = prefix
        self._t0 = time.monotonic()
        self._last = ""

    def step(self, text: str) -> None:
        if text == self._last:
            return
        self._last = text
        out = self._out or sys.stderr
        print(f"[{self._prefix} {time.monotonic() - self._t0:6.1f}s] {text}", file=out, flush=True)


class _RichStepProgress:
    def __init__(self, progress: object, task_id: object) -> None:
        self._progress = progress
        self._task_id = task_id

    def step(self, text: str) -> None:
        self._progress.update(self._task_id, description=text)  # type: ignore[attr-defined]


@contextmanager
def terminal_progress(out: TextIO | None = None, prefix: str = "lab") -> Iterator[StepReporter]:
    """A live spinner + current step + elapsed time on a terminal; plain step lines otherwise."""
    stream = out or sys.stderr
    if not stream.isatty():
        yield LineProgress(stream, prefix)
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Column

    console = Console(file=stream)
    # Spinner, name and clock keep their width; the step text takes what is left and is cut with "…",
    # so a long pip or vLLM log line never pushes the elapsed time off a narrow terminal.
    with Progress(
        SpinnerColumn(table_column=Column(no_wrap=True, min_width=1)),
        TextColumn(f"[bold]{prefix}[/bold]", table_column=Column(no_wrap=True, min_width=len(prefix))),
        TimeElapsedColumn(table_column=Column(no_wrap=True, min_width=7)),
        TextColumn("{task.description}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
        console=console,
        transient=False,
        expand=True,
    ) as progress:
        task_id = progress.add_task("starting", total=None)
        yield _RichStepProgress(progress, task_id)
