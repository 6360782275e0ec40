"""How a command hands its report over: saved into a bundle folder, and printed as JSON or for a person."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from diagnose.errors import DoctorError


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
