"""How a command hands its report over: saved into a bundle folder, and printed as JSON or for a person."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from diagnose.errors import DoctorError
from diagnose.progress import StepReporter

# A bundle whose /metrics file is past this takes seconds to read and diagnose (~1,000 lab dumps: ~2 s per
# pass over them), so it gets a progress line; a smaller one is done before a line would help.
LONG_METRICS_BYTES = 50_000_000


def save_json(folder: str | Path, name: str, doc: dict[str, Any]) -> Path:
    """Writes `doc` as `folder/name` (the folder is created); one-line error if it cannot."""
    path = Path(folder) / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    except OSError as err:
        raise DoctorError(f"cannot write {path}: {err.strerror}", "pass a writable --save DIR") from None
    return path


def emit(doc: dict[str, Any], *, as_json: bool, blocks: Callable[[], Iterable[Any]]) -> None:
    """JSON on stdout for programs, or the rich renderables from `blocks()` for a person."""
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    from rich.console import Console

    console = Console()
    for block in blocks():
        console.print(block)


@contextmanager
def bundle_progress(folder: Path, *, quiet: bool) -> Iterator[StepReporter | None]:
    """A progress line on stderr while a long bundle is read, diagnosed and charted; None for a short
    one, with --quiet or --json (a program reading stdout wants no stderr chatter either)."""
    from diagnose.bundle import layout
    from diagnose.progress import terminal_progress

    metrics = next((folder / n for n in layout.METRICS if (folder / n).is_file()), None)
    if quiet or metrics is None or metrics.stat().st_size < LONG_METRICS_BYTES:
        yield None
        return
    with terminal_progress(prefix="bundle") as progress:
        yield progress
