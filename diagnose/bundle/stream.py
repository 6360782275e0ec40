"""A bundle's /metrics file as dumps, one at a time: memory stays flat however many dumps it holds.

A metrics file is dumps separated by `### capture t_unix=<seconds>` lines (a file with no marker is one
dump taken at an unknown time). `scan_dumps` is the one splitter of that format: it reads lines and yields
each dump with where it lies in the file, holding one dump's text at most. `split_dumps` (an in-memory
text) and `FileDumps` (a file) both use it.

`FileDumps` is the index of a file's dumps in capture-time order (time, byte offset, length: ~100 bytes a
dump, where the text is ~50 KB); reading it yields one dump at a time from the file, so the derivation,
which folds dumps one by one (diagnose/derive/dump_fold.py), never holds more than the two or three it
needs. A marker time that is not a finite number, and a dump far past any vLLM /metrics in size, are
counted as problems, never fatal.
"""

from __future__ import annotations

import io
import os
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from diagnose.bundle import layout
from diagnose.bundle.values import BadValue, Problems, t_unix
from diagnose.readings import MetricsDump, TimeOrderedDumps

_MARKER = layout.CAPTURE_MARKER


@dataclass(frozen=True, slots=True)
class DumpSpan:
    """Where one dump lies in its file."""

    t_unix: float
    offset: int  # bytes from the start of the file to the dump's first line (after its marker)
    nbytes: int
    number: int  # its place among the file's markers, from 1 (1 for a file without a marker)


def scan_dumps(
    lines: Iterable[tuple[str, int]],
    default_t_unix: float,
    problems: Problems,
    max_bytes: int | None = None,
) -> Iterator[tuple[DumpSpan, str | None]]:
    """Each dump of a metrics file in file order: its span and its text (None when the dump is past
    `max_bytes`: its lines are not kept). `lines` are (line, its size in bytes), line endings included.

    Text before the first marker belongs to no dump. A dump whose marker time is not a finite number is
    left out and counted in `problems`; without any marker the whole text is one dump at `default_t_unix`.
    """
    kept: list[str] = []
    offset = start = size = 0
    when: float | None = default_t_unix
    number = 0

    def flush() -> tuple[DumpSpan, str | None] | None:
        text = "".join(kept)
        if when is None or (number == 0 and not text.strip()):
            return None
        too_big = max_bytes is not None and size > max_bytes
        return DumpSpan(when, start, size, max(number, 1)), None if too_big else text

    for line, nbytes in lines:
        if line.startswith(_MARKER):
            if number:
                dump = flush()
                if dump is not None:
                    yield dump
            number += 1
            rest = line[len(_MARKER) :]
            stamp = rest.split(None, 1)[0] if rest.strip() else ""
            try:
                when = t_unix(stamp, "capture time")
            except BadValue as bad:
                problems.add(f"dump {number}", f"{bad}; that dump is skipped")
                when = None
            else:
                if when is None:
                    problems.add(f"dump {number}", "the capture marker has no time; that dump is skipped")
            offset += nbytes
            kept.clear()
            start, size = offset, 0
            continue
        offset += nbytes
        size += nbytes
        if max_bytes is None or size <= max_bytes:
            kept.append(line)
        elif kept:
            kept.clear()  # past any vLLM /metrics: the dump is skipped, so what was kept is let go now
    dump = flush()
    if dump is not None:
        yield dump


def text_lines(text: str) -> Iterator[tuple[str, int]]:
    """The lines of an in-memory text, split at "\\n" only (as a file's are), sized in characters."""
    for line in io.StringIO(text, newline="\n"):
        yield line, len(line)


class _FileLines:
    """The lines of a file as text, split at b"\\n", sized in bytes; remembers whether any was not UTF-8."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.first_bad_byte: int | None = None  # offset of the first line that is not UTF-8

    def __iter__(self) -> Iterator[tuple[str, int]]:
        offset = 0
        with self.path.open("rb") as handle:
            for raw in handle:
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    if self.first_bad_byte is None:
                        self.first_bad_byte = offset + err.start
                    line = raw.decode("utf-8", errors="replace")
                yield line, len(raw)
                offset += len(raw)


def split_dumps_checked(text: str, default_t_unix: float = 0.0) -> tuple[list[MetricsDump], Problems]:
    """The dumps of an in-memory metrics text, and the problems met (bad marker times)."""
    problems = Problems("metrics dumps")
    dumps = [
        MetricsDump(span.t_unix, body)
        for span, body in scan_dumps(text_lines(text), default_t_unix, problems)
        if body is not None
    ]
    return dumps, problems


def split_dumps(text: str, default_t_unix: float = 0.0) -> list[MetricsDump]:
    """Splits a metrics text at `### capture t_unix=<float>` lines; no marker means one dump."""
    return split_dumps_checked(text, default_t_unix)[0]


def scan_file(
    path: Path, default_t_unix: float, problems: Problems, max_bytes: int | None
) -> tuple[Iterator[tuple[DumpSpan, str | None]], _FileLines]:
    """`scan_dumps` over a file, and its lines (which say, once read, where the first non-UTF-8 byte was)."""
    lines = _FileLines(path)
    return scan_dumps(lines, default_t_unix, problems, max_bytes), lines


class FileDumps(TimeOrderedDumps):
    """The dumps of one metrics file, by capture time (file order among equal times), read on demand.

    Nothing but the index is held between reads. The file stays open while the index lives (closed when it
    is collected), so a bundle read from a folder that is then removed, as a temporary one is, still reads.
    """

    def __init__(self, path: Path, spans: Sequence[DumpSpan], fd: int | None = None) -> None:
        self.path = path
        self.spans = tuple(sorted(spans, key=lambda s: s.t_unix))
        if fd is None:
            fd = os.open(path, os.O_RDONLY)
            weakref.finalize(self, os.close, fd)
        self._fd = fd

    def __len__(self) -> int:
        return len(self.spans)

    @overload
    def __getitem__(self, index: int) -> MetricsDump: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[MetricsDump]: ...
    def __getitem__(self, index: int | slice) -> MetricsDump | Sequence[MetricsDump]:
        if isinstance(index, slice):
            return [self._read(span) for span in self.spans[index]]
        return self._read(self.spans[index])

    def __iter__(self) -> Iterator[MetricsDump]:
        for span in self.spans:
            yield self._read(span)

    def _read(self, span: DumpSpan) -> MetricsDump:
        # pread: no shared file position, so an index read inside an iteration cannot disturb it.
        raw = os.pread(self._fd, span.nbytes, span.offset)
        return MetricsDump(span.t_unix, raw.decode("utf-8", errors="replace"))

    def __repr__(self) -> str:
        return f"FileDumps({str(self.path)!r}, {len(self.spans)} dumps)"
