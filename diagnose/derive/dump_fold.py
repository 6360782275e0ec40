"""One pass over a window's /metrics dumps: each parsed once, two held at most, whatever their number.

Counters and histograms are read as before/after deltas, so the window math needs the first and the last
dump parsed; gauges are folded as they pass (the scheduler's max and mean: sections/scheduler.py), and
the HTML series fold their per-interval points the same way (derive/series.py). A bundle read from a file
hands its dumps over one at a time (diagnose/bundle/stream.py), so memory stays flat as a bundle grows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from diagnose.metrics.exposition import ParsedDump, parse_dump
from diagnose.progress import PROGRESS_EVERY_DUMPS, StepReporter
from diagnose.readings import MetricsDump, time_ordered

Observer = Callable[[ParsedDump], None]


@dataclass(slots=True)
class DumpFold:
    """What is left of a window's dumps after one pass."""

    first: ParsedDump | None = None  # the earliest by capture time
    last: ParsedDump | None = None  # the latest (file order among equal times)
    times: list[float] = field(default_factory=list)  # every capture time, in order
    engine_metrics: bool = False  # any dump carries vllm: families (not --disable-log-stats)

    @property
    def count(self) -> int:
        return len(self.times)


def fold_dumps(
    dumps: Sequence[MetricsDump],
    *observers: Observer,
    progress: StepReporter | None = None,
    what: str = "reading the /metrics dumps",
) -> DumpFold:
    """Parses each dump once in capture-time order, hands it to every observer, and keeps first/last.
    `progress` hears "what: N of M" every PROGRESS_EVERY_DUMPS dumps (a long bundle takes seconds)."""
    fold = DumpFold()
    total = len(dumps)
    for n, dump in enumerate(time_ordered(dumps), start=1):
        if progress is not None and n % PROGRESS_EVERY_DUMPS == 0:
            progress.step(f"{what}: {n:,} of {total:,}")
        parsed = parse_dump(dump)
        if fold.first is None:
            fold.first = parsed
        fold.last = parsed
        fold.times.append(parsed.t_unix)
        fold.engine_metrics = fold.engine_metrics or has_engine_metrics(parsed)
        for observe in observers:
            observe(parsed)
    return fold


def has_engine_metrics(parsed: ParsedDump) -> bool:
    """Does the dump carry vLLM's engine families (either spelling)?"""
    return any(name.startswith(("vllm:", "vllm_")) for name in parsed.types) or any(
        name.startswith(("vllm:", "vllm_")) for name in parsed.samples
    )
