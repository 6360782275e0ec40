"""Streaming a bundle's /metrics file: memory stays flat however many dumps it holds.

`read_bundle` keeps every dump's text (a 10,000-dump bundle is ~540 MB of text, and the diagnosis then
parses all of it at once). The window math needs far less: the first and the last dump (counters and
histograms are before/after deltas) and, for gauges, a running max and mean. `stream_dumps` reads the
file line by line and yields one dump at a time; `fold_window` parses each, keeps the bounded state and
lets the parsed dump go. The same typed-boundary checks as read_bundle apply: a marker time that is not
a finite number, a dump that is not an exposition, and unreadable lines are counted, never fatal.

Pure over its input apart from reading the one file; the call site (diagnose/derive) is the lead's:
see `WindowFold` for what it hands over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from diagnose.bundle import layout
from diagnose.bundle.values import MAX_DUMP_BYTES, BadValue, Problems, t_unix
from diagnose.metrics.exposition import ParsedDump, exposition_problem, parse_dump
from diagnose.readings import MetricsDump

_MARKER = layout.CAPTURE_MARKER


def stream_dumps(
    path: Path, default_t_unix: float = 0.0, problems: Problems | None = None
) -> Iterator[MetricsDump]:
    """The dumps of a metrics file in file order, one at a time (one dump's text in memory at most).

    A dump whose `### capture t_unix=` time is not a finite number is skipped and counted in `problems`.
    A file with no marker is one dump taken at `default_t_unix`.
    """
    problems = problems if problems is not None else Problems(path.name)
    lines: list[str] = []
    size = 0  # characters of the dump being read; past MAX_DUMP_BYTES its lines are no longer kept
    when: float | None = default_t_unix
    number = 0
    seen_marker = False

    def flush() -> MetricsDump | None:
        nonlocal size
        text = "".join(lines)
        lines.clear()
        too_big, size = size > MAX_DUMP_BYTES, 0
        if too_big:
            problems.add(f"dump {max(number, 1)}", "far past any vLLM /metrics in size; that dump is skipped")
            return None
        if when is None or (not seen_marker and not text.strip()):
            return None
        return MetricsDump(t_unix=when, text=text)

    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        for line in handle:
            if line.startswith(_MARKER):
                if seen_marker:
                    dump = flush()
                    if dump is not None:
                        yield dump
                lines.clear()  # text before the first marker belongs to no dump (as in split_dumps)
                size = 0
                seen_marker = True
                number += 1
                stamp = line[len(_MARKER) :].split(None, 1)[0] if line[len(_MARKER) :].strip() else ""
                try:
                    when = t_unix(stamp, "capture time")
                except BadValue as bad:
                    problems.add(f"dump {number}", f"{bad}; that dump is skipped")
                    when = None
                else:
                    if when is None:
                        problems.add(f"dump {number}", "the capture marker has no time; that dump is skipped")
                continue
            size += len(line)
            if size <= MAX_DUMP_BYTES:
                lines.append(line)
    dump = flush()
    if dump is not None:
        yield dump


@dataclass
class RunningGauge:
    """Max and mean of one gauge reading over the dumps that had it."""

    max: float = float("-inf")
    total: float = 0.0
    count: int = 0

    def add(self, value: float) -> None:
        self.max = max(self.max, value)
        self.total += value
        self.count += 1

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass
class WindowFold:
    """What the window math needs from any number of dumps, in bounded memory.

    `first` and `last` are the earliest and latest dumps by capture time (the counters' before/after),
    whatever the file order; `gauges` holds a running max/mean per key that `gauge_readings` returned.
    """

    first: ParsedDump | None = None
    last: ParsedDump | None = None
    dumps: int = 0  # dumps used (exposition, finite time)
    skipped: int = 0  # dumps left out (not an exposition)
    distinct_times: int = 0  # 0, 1 or 2: "2" means at least two (a window exists)
    unreadable_lines: int = 0
    first_unreadable: str | None = None
    gauges: dict[str, RunningGauge] = field(default_factory=dict)
    problems: Problems = field(default_factory=lambda: Problems("metrics dumps"))


def fold_window(
    dumps: Iterable[MetricsDump],
    gauge_readings: Callable[[ParsedDump], dict[str, float | None]] | None = None,
) -> WindowFold:
    """Parses each dump once, keeps first/last and running gauges, drops the rest."""
    fold = WindowFold()
    first_t: float | None = None
    for n, dump in enumerate(dumps, start=1):
        parsed = parse_dump(dump)
        verdict = exposition_problem(parsed)
        if verdict is not None:
            fold.skipped += 1
            fold.problems.add(f"dump {n}", f"{verdict}; that dump is skipped")
            continue
        fold.dumps += 1
        if parsed.unreadable_lines:
            fold.unreadable_lines += parsed.unreadable_lines
            fold.first_unreadable = fold.first_unreadable or f"dump {n}, {parsed.first_unreadable}"
        if fold.first is None or parsed.t_unix < fold.first.t_unix:
            fold.first = parsed
        if fold.last is None or parsed.t_unix >= fold.last.t_unix:
            fold.last = parsed
        if first_t is None:
            first_t, fold.distinct_times = parsed.t_unix, 1
        elif parsed.t_unix != first_t:
            fold.distinct_times = 2
        if gauge_readings is not None:
            for key, value in gauge_readings(parsed).items():
                if value is not None:
                    fold.gauges.setdefault(key, RunningGauge()).add(value)
    return fold
