"""Exact percentiles over recorded latencies, and the coordinated-omission estimate for a closed loop.

Pure functions over lists of seconds. Percentiles interpolate linearly between order statistics (the
same rule as numpy's default), so p50 of [1, 2] is 1.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

# A long tail: p95 at least this many times the mean (DESIGN §1: cache thrash or memory jitter).
LONG_TAIL_RATIO = 3.0
# Weighted samples kept at most when reconstructing calls a closed loop never sent.
_MAX_SYNTHETIC = 200_000


def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    if not sorted_values:
        return None
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class LatencySummary:
    count: int
    mean_s: float | None
    p50_s: float | None
    p90_s: float | None
    p95_s: float | None
    p99_s: float | None
    max_s: float | None
    p95_over_mean: float | None  # >= 3 reads as a long tail

    @classmethod
    def of(cls, values: Sequence[float]) -> LatencySummary:
        ordered = sorted(values)
        if not ordered:
            return cls(0, None, None, None, None, None, None, None)
        mean = sum(ordered) / len(ordered)
        p95 = quantile(ordered, 0.95)
        return cls(
            count=len(ordered),
            mean_s=mean,
            p50_s=quantile(ordered, 0.50),
            p90_s=quantile(ordered, 0.90),
            p95_s=p95,
            p99_s=quantile(ordered, 0.99),
            max_s=ordered[-1],
            p95_over_mean=(p95 / mean) if mean > 0 and p95 is not None else None,
        )

    @property
    def long_tail(self) -> bool | None:
        return None if self.p95_over_mean is None else self.p95_over_mean >= LONG_TAIL_RATIO

    def to_dict(self) -> dict:
        return {**asdict(self), "long_tail": self.long_tail}


@dataclass(frozen=True, slots=True)
class LagSummary:
    """Open loop: actual send time minus intended send time (the generator's own lateness)."""

    p50_s: float | None
    p99_s: float | None
    max_s: float | None
    late_over_10ms: int  # sends more than 10 ms behind schedule

    @classmethod
    def of(cls, lags: Sequence[float]) -> LagSummary:
        ordered = sorted(lags)
        return cls(
            p50_s=quantile(ordered, 0.50),
            p99_s=quantile(ordered, 0.99),
            max_s=ordered[-1] if ordered else None,
            late_over_10ms=sum(1 for lag in ordered if lag > 0.010),
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class OmissionEstimate:
    """How much a closed loop hides (HdrHistogram's `recordValueWithExpectedInterval` correction).

    A worker blocked on a slow answer does not send the calls it would have sent meanwhile, so the
    stall is recorded once instead of once per call that would have waited. We take a worker's usual
    pace as the median service time E; an answer of L seconds hid floor(L/E) - 1 sends, which would
    have waited L - E, L - 2E, ... seconds. `corrected` adds those as latencies.
    """

    expected_interval_s: float | None
    delayed_sends: int  # calls the workers would have sent at their usual pace while blocked
    slow_calls: int  # answers slower than 2 x the median: each held a worker back
    corrected: LatencySummary

    def to_dict(self) -> dict:
        return {
            "expected_interval_s": self.expected_interval_s,
            "delayed_sends": self.delayed_sends,
            "slow_calls": self.slow_calls,
            "corrected": self.corrected.to_dict(),
        }


def omission_estimate(service_times_s: Sequence[float]) -> OmissionEstimate:
    ordered = sorted(service_times_s)
    interval = quantile(ordered, 0.5)
    if not ordered or interval is None or interval <= 0:
        return OmissionEstimate(interval, 0, 0, LatencySummary.of(ordered))
    hidden = [(value, math.floor(value / interval) - 1) for value in ordered if value >= 2 * interval]
    total_hidden = sum(m for _, m in hidden)
    # Too many to list one by one: keep every `stride`-th with weight `stride` (bounded memory).
    stride = max(1, math.ceil(total_hidden / _MAX_SYNTHETIC))
    weighted: list[tuple[float, int]] = [(value, 1) for value in ordered]
    for value, m in hidden:
        weighted.extend((value - k * interval, stride) for k in range(1, m + 1, stride))
    return OmissionEstimate(
        expected_interval_s=interval,
        delayed_sends=total_hidden,
        slow_calls=len(hidden),
        corrected=_weighted_summary(weighted),
    )


def _weighted_summary(weighted: list[tuple[float, int]]) -> LatencySummary:
    weighted.sort()
    total = sum(w for _, w in weighted)
    mean = sum(v * w for v, w in weighted) / total

    def at(q: float) -> float:
        need = q * total
        running = 0
        for value, weight in weighted:
            running += weight
            if running >= need:
                return value
        return weighted[-1][0]

    p95 = at(0.95)
    return LatencySummary(
        count=total,
        mean_s=mean,
        p50_s=at(0.50),
        p90_s=at(0.90),
        p95_s=p95,
        p99_s=at(0.99),
        max_s=weighted[-1][0],
        p95_over_mean=p95 / mean if mean > 0 else None,
    )
