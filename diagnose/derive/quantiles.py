"""Quantiles and means of Prometheus histograms, with PromQL's `histogram_quantile` semantics.

Same rules as Prometheus' `bucketQuantile` (promql/quantile.go), so our numbers match a Grafana panel
built on the same buckets:
- the total is the +Inf bucket's count; no observations -> None (PromQL: NaN);
- the quantile is interpolated linearly inside the bucket it falls in; the first bucket starts at 0
  when its upper bound is above 0 (else its upper bound is the answer);
- a quantile that falls in the +Inf bucket returns the highest finite bound: the histogram cannot say
  more, so read it as "at least this";
- cumulative counts that go down (a scrape torn between two updates) are made monotonic first.
"""

from __future__ import annotations

import math

from diagnose.metrics.names import Histogram


def histogram_quantile(q: float, h: Histogram) -> float | None:
    """The q-quantile (0 <= q <= 1) of the observations in `h`; None when there are none or the
    buckets cannot carry a quantile (fewer than two buckets, or no +Inf bucket)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {q}")
    buckets = h.buckets
    if len(buckets) < 2 or buckets[-1][0] != math.inf:
        return None
    # Make the cumulative counts monotonic, as PromQL does.
    counts: list[float] = []
    running = 0.0
    for _, n in buckets:
        running = max(running, n)
        counts.append(running)
    total = counts[-1]
    if not total > 0:  # 0, or NaN
        return None
    rank = q * total
    b = next(i for i in range(len(buckets)) if counts[i] >= rank or i == len(buckets) - 1)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    upper = buckets[b][0]
    if b == 0 and upper <= 0:
        return upper
    lower = 0.0 if b == 0 else buckets[b - 1][0]
    below = 0.0 if b == 0 else counts[b - 1]
    in_bucket = counts[b] - below
    if in_bucket <= 0:  # only for q == 0 with an empty first bucket; PromQL would divide 0 by 0
        return lower
    return lower + (upper - lower) * ((rank - below) / in_bucket)


def mean(h: Histogram) -> float | None:
    """Mean observation (`_sum / _count`); None when there are no observations or no sum."""
    if not h.count > 0 or math.isnan(h.sum):
        return None
    return h.sum / h.count


def first_bucket_bound(q: float, h: Histogram) -> float | None:
    """The first bucket's upper bound when the q-quantile falls inside it, else None.

    The one policy for a quantile inside the first bucket, used by the evidence, the stress report and
    every renderer: interpolating inside (0, le] only says "somewhere below le" (vLLM's latency buckets
    start at 0.3 s, so a 1 ms queue would read as a 285 ms p95). Such a quantile is unknown; show it
    as "≤ le" and read the mean, which is exact.
    """
    if not h.buckets or not h.count > 0:
        return None
    first_le, first_count = h.buckets[0]
    if math.isfinite(first_le) and first_count >= q * h.count:
        return first_le
    return None


def resolved_quantile(q: float, h: Histogram | None) -> float | None:
    """The q-quantile, or None when there is no observation or it falls in the first bucket."""
    if h is None or not h.count > 0 or first_bucket_bound(q, h) is not None:
        return None
    return histogram_quantile(q, h)


def first_bucket_bound_of(value: float | None, first_bucket_le: float) -> float | None:
    """`first_bucket_bound` for a quantile computed where the buckets are (PromQL, fleet mode): the bound
    when the quantile fell inside the first bucket, else None.

    The same test as on buckets: a quantile in the first bucket interpolates to at most its bound, one in
    a later bucket to strictly more (it starts at that bucket's lower bound, at least the first bound,
    and its rank is above the buckets below)."""
    if value is None or not math.isfinite(first_bucket_le):
        return None
    return first_bucket_le if value <= first_bucket_le else None
