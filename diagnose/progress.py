"""How a slow step shows what it is doing: the lab's venv install, model build and vLLM start-up, the
load's lead-in and drain around a `check --stress` window. Every wait over ~2 s goes through here.

A step reporter is anything with `step(text)`. `terminal_progress()` gives a live rich line with a spinner,
the current step and the elapsed time on a terminal, and plain lines elsewhere (CI logs, pipes, pytest),
because a live display written to a file is unreadable. Plain lines are throttled: a vLLM start-up changes
its step every second (the last log line), and a line a second is ~90 lines of noise per start.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol, TextIO

# A long bundle's reading says how far it is every this many /metrics dumps (a lab dump parses in ~1.3 ms:
# a step about every 0.3 s; the reporter throttles what it shows).
PROGRESS_EVERY_DUMPS = 250

# Plain progress lines at most this often (a start-up of ~80 s gives ~8 lines, not ~80).
LINE_EVERY_S = 10.0


class StepReporter(Protocol):
    def step(self, text: str) -> None: ...


class NullProgress:
    """Says nothing; for library callers and tests that do not want output."""

    def step(self, text: str) -> None:
        pass


class LineProgress:
    """Plain lines with the seconds since start: for logs, where a spinner would be noise.

    The first step prints at once; after that at most one line per `every_s`, showing the latest step.
    A step held back is printed when its interval is over (a timer, so one long step such as a pip install
    still shows), or by `flush()` (terminal_progress calls it at the end), so the last word ("vLLM healthy
    after 71 s") is never lost.
    """

    def __init__(
        self,
        out: TextIO | None = None,
        prefix: str = "lab",
        every_s: float = LINE_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        after_s: float = 0.0,
    ) -> None:
        self._out = out
        self._prefix = prefix
        self._every_s = every_s
        # Nothing is said before this many seconds: work that ends sooner leaves no line at all (a fleet
        # diagnosis takes 0.2 s or 30 s, and only the second one wants saying).
        self._after_s = after_s
        self._clock = clock
        self._t0 = clock()
        self._printed_at: float | None = None
        self._last = ""
        self._pending: tuple[float, str] | None = None
        self._lock = threading.Lock()  # step() runs in the caller's thread, the timer in its own
        self._timer: threading.Timer | None = None

    def step(self, text: str) -> None:
        with self._lock:
            if text == self._last:
                return
            self._last = text
            now = self._clock()
            if self._printed_at is None and now - self._t0 < self._after_s:
                wait_s: float | None = self._after_s - (now - self._t0)
            elif self._printed_at is not None and now - self._printed_at < self._every_s:
                wait_s = self._every_s - (now - self._printed_at)
            else:
                wait_s = None
            if wait_s is not None:
                self._pending = (now, text)
                if self._timer is None:
                    self._timer = threading.Timer(wait_s, self._interval_over)
                    self._timer.daemon = True
                    self._timer.start()
                return
            self._cancel_timer()
            self._print(now, text)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _interval_over(self) -> None:
        """The timer's end: the step held back is still going on now, so it is said with the time now."""
        with self._lock:
            self._timer = None
            if self._pending is not None:
                self._print(self._clock(), self._pending[1])

    def flush(self) -> None:
        """The end of the work: the last step held back is said (with its own time), unless the work
        ended before `after_s`."""
        with self._lock:
            self._cancel_timer()
            if self._printed_at is None and self._clock() - self._t0 < self._after_s:
                self._pending = None  # done before anything was worth saying
            if self._pending is not None:
                self._print(*self._pending)

    @contextmanager
    def held(self) -> Iterator[None]:
        """No line is printed meanwhile (see `held_still`)."""
        with self._lock:
            yield

    def _print(self, now: float, text: str) -> None:
        self._pending = None
        self._printed_at = now
        out = self._out or sys.stderr
        print(f"[{self._prefix} {now - self._t0:6.1f}s] {text}", file=out, flush=True)


class _RichStepProgress:
    def __init__(self, progress: object, task_id: object) -> None:
        self._progress = progress
        self._task_id = task_id

    def step(self, text: str) -> None:
        self._progress.update(self._task_id, description=text)  # type: ignore[attr-defined]

    @contextmanager
    def held(self) -> Iterator[None]:
        """The live display stopped meanwhile (its refresh thread joined), then started again."""
        self._progress.stop()  # type: ignore[attr-defined]
        try:
            yield
        finally:
            self._progress.start()  # type: ignore[attr-defined]


@contextmanager
def held_still(progress: StepReporter | None) -> Iterator[None]:
    """No thread of the reporter writes meanwhile (rich's refresh, LineProgress' timer): for a fork. A
    thread that holds stderr's lock when the process forks leaves it held in the child, which then hangs
    when it flushes stderr at exit (CPython issues 84579 and 91776), and the parent joining it with it."""
    hold = getattr(progress, "held", None)
    if hold is None:
        yield
        return
    with hold():
        yield


@contextmanager
def terminal_progress(
    out: TextIO | None = None, prefix: str = "lab", *, after_s: float = 0.0
) -> Iterator[StepReporter]:
    """A live spinner + current step + elapsed time on a terminal; plain step lines otherwise. With
    `after_s`, the spinner goes away when the work is done (transient), and plain lines start only
    after that many seconds."""
    stream = out or sys.stderr
    if not stream.isatty():
        lines = LineProgress(stream, prefix, after_s=after_s)
        try:
            yield lines
        finally:
            lines.flush()
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
        transient=after_s > 0,
        expand=True,
    ) as progress:
        task_id = progress.add_task("starting", total=None)
        yield _RichStepProgress(progress, task_id)
