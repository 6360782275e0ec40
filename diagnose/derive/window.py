"""Before/after arithmetic over a window: counters and histograms are cumulative since vLLM started.

A value that went DOWN means the counter was reset: vLLM restarted inside the window (or a different
API server answered). Everything counted since the restart is then the `after` value itself; that
undercounts what happened before the restart, which is the same choice PromQL's rate() makes.
"""

from __future__ import annotations

from diagnose.metrics import names
from diagnose.metrics.exposition import ParsedDump
from diagnose.metrics.names import Histogram


def counter_delta(before: float | None, after: float | None) -> float | None:
    """Increase of a counter over the window; None when either end is unknown."""
    if before is None or after is None:
        return None
    if after < before:  # reset: vLLM restarted, the counter started again from 0
        return after
    return after - before


def histogram_delta(before: Histogram | None, after: Histogram | None) -> Histogram | None:
    """Observations made inside the window, bucket by bucket; None when either end is unknown.

    Reset-aware: if the total or any bucket went down, or the bucket bounds changed (only a restart with
    other flags changes them), the server restarted and the window holds `after` alone.
    """
    if before is None or after is None:
        return None
    if len(before.buckets) != len(after.buckets) or after.count < before.count:
        return after
    buckets: list[tuple[float, float]] = []
    for (le_b, n_b), (le_a, n_a) in zip(before.buckets, after.buckets, strict=True):
        if le_b != le_a or n_a < n_b:
            return after
        buckets.append((le_a, n_a - n_b))
    return Histogram(buckets=tuple(buckets), count=after.count - before.count, sum=after.sum - before.sum)


def rate(delta: float | None, seconds: float | None) -> float | None:
    """Per-second rate; None when the delta is unknown or the window has no length."""
    if delta is None or seconds is None or seconds <= 0:
        return None
    return delta / seconds


# --- the same arithmetic read straight from two parsed dumps, by concept (diagnose.metrics.names) ----


def delta(before: ParsedDump, after: ParsedDump, concept: str, **match: str) -> float | None:
    """A counter's increase between two dumps; None when either lacks it."""
    return counter_delta(names.value(before, concept, **match), names.value(after, concept, **match))


def label_deltas(before: ParsedDump, after: ParsedDump, concept: str, label: str) -> dict[str, float] | None:
    """A counter's increase per value of `label` (a value new in `after` counts from 0)."""
    b = names.by_label(before, concept, label) or {}
    a = names.by_label(after, concept, label)
    if a is None:
        return None
    out: dict[str, float] = {}
    for key in a:
        d = counter_delta(b.get(key, 0.0), a[key])
        if d is not None:
            out[key] = d
    return out


def hist(before: ParsedDump, after: ParsedDump, concept: str, **match: str) -> Histogram | None:
    """A histogram's observations between two dumps."""
    return histogram_delta(
        names.histogram(before, concept, **match), names.histogram(after, concept, **match)
    )


def ratio(num: float | None, den: float | None) -> float | None:
    """num / den; None when either is unknown or the denominator is not above 0."""
    if num is None or den is None or den <= 0:
        return None
    return num / den
