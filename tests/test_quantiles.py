"""histogram_quantile with PromQL's rules, checked by hand on the real s3 capture (vLLM 0.26, H200)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diagnose.derive.quantiles import first_bucket_bound, first_bucket_bound_of, histogram_quantile, mean
from diagnose.derive.window import histogram_delta
from diagnose.metrics import names
from diagnose.metrics.exposition import ParsedDump, parse_text
from diagnose.metrics.names import Histogram

S3 = "s3_gpu_saturated_c64_d80_w300"


def s3_delta(captures_dir: Path, concept: str) -> Histogram:
    def read(name: str) -> ParsedDump:
        return parse_text((captures_dir / S3 / name).read_text())

    start, end = read("metrics_start.txt"), read("metrics_end.txt")
    d = histogram_delta(names.histogram(start, concept), names.histogram(end, concept))
    assert d is not None
    return d


def test_s3_queue_time_p95_by_hand(captures_dir: Path) -> None:
    # vllm:request_queue_time_seconds_bucket, s3 start -> end: every bucket from le=0.3 to +Inf goes
    # 48916 -> 84676, so all 35760 window observations sit in the first bucket (0, 0.3].
    # rank = 0.95 * 35760 = 33972; first bucket with cumulative >= 33972 is le=0.3 (35760);
    # p95 = 0 + (0.3 - 0) * 33972 / 35760 = 0.3 * 0.95 = 0.285 s.
    d = s3_delta(captures_dir, "queue_time")
    assert histogram_quantile(0.95, d) == pytest.approx(0.285)
    # mean = (1151.5582650780475 - 3.0862492429968142) / 35760 = 1148.4720158350507 / 35760 = 0.0321160 s
    assert mean(d) == pytest.approx(1148.4720158350507 / 35760)


def test_s3_e2e_latency_p95_by_hand(captures_dir: Path) -> None:
    # vllm:e2e_request_latency_seconds_bucket delta: le=0.3: 80344-48912 = 31432;
    # le=0.5: 84652-48916 = 35736; le=0.8 .. +Inf: 84676-48916 = 35760.
    # rank = 0.95 * 35760 = 33972 > 31432, <= 35736 -> bucket (0.3, 0.5] holding 35736-31432 = 4304.
    # p95 = 0.3 + 0.2 * (33972 - 31432) / 4304 = 0.3 + 0.2 * 2540 / 4304 = 0.3 + 0.1180297 = 0.4180297 s.
    d = s3_delta(captures_dir, "e2e_latency")
    assert histogram_quantile(0.95, d) == pytest.approx(0.3 + 0.2 * 2540 / 4304)
    assert histogram_quantile(0.95, d) == pytest.approx(0.41803, abs=1e-5)


def test_s3_http_latency_p95_by_hand(captures_dir: Path) -> None:
    # http_request_duration_highr_seconds_bucket delta: every bucket up to le=7.5 is unchanged (0 in the
    # window); le=10: 5020-4698 = 322; le=30, 60, +Inf: 5145-4698 = 447.
    # rank = 0.95 * 447 = 424.65 -> bucket (10, 30] holding 447-322 = 125.
    # p95 = 10 + 20 * (424.65 - 322) / 125 = 10 + 20 * 102.65 / 125 = 10 + 16.424 = 26.424 s
    # (the client waited ~26 s per call while the engine's own e2e p95 was 0.42 s: DESIGN §2's signature).
    d = s3_delta(captures_dir, "http_duration_highr")
    assert histogram_quantile(0.95, d) == pytest.approx(26.424)


def h(*buckets: tuple[float, float], total_sum: float = 0.0) -> Histogram:
    return Histogram(buckets=buckets, count=buckets[-1][1], sum=total_sum)


def test_first_bucket_interpolates_from_zero() -> None:
    assert histogram_quantile(0.5, h((2.0, 10.0), (4.0, 10.0), (math.inf, 10.0))) == 1.0


def test_first_bucket_with_a_bound_at_or_below_zero_returns_that_bound() -> None:
    assert histogram_quantile(0.5, h((-1.0, 10.0), (4.0, 10.0), (math.inf, 10.0))) == -1.0


def test_quantile_in_the_inf_bucket_returns_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.99, h((1.0, 5.0), (60.0, 8.0), (math.inf, 10.0))) == 60.0


def test_interpolates_linearly_inside_the_bucket() -> None:
    # rank 0.75*8 = 6 -> bucket (1, 3] holding 4, 2 into it: 1 + 2 * 2/4 = 2.
    assert histogram_quantile(0.75, h((1.0, 4.0), (3.0, 8.0), (math.inf, 8.0))) == 2.0


def test_no_observations_is_none() -> None:
    assert histogram_quantile(0.95, h((1.0, 0.0), (math.inf, 0.0))) is None
    assert mean(h((1.0, 0.0), (math.inf, 0.0))) is None


def test_buckets_without_inf_or_too_few_are_none() -> None:
    assert histogram_quantile(0.5, h((1.0, 3.0), (2.0, 4.0))) is None
    assert histogram_quantile(0.5, h((math.inf, 4.0))) is None


def test_non_monotonic_counts_are_made_monotonic_first() -> None:
    # 5 then 4 at a higher bound (a torn scrape): treated as 5, so p50 (rank 2.5) is in the first bucket.
    assert histogram_quantile(0.5, h((1.0, 5.0), (2.0, 4.0), (math.inf, 5.0))) == 0.5


def test_quantile_outside_zero_to_one_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        histogram_quantile(95, h((1.0, 1.0), (math.inf, 1.0)))


def test_mean_is_sum_over_count_and_none_without_sum() -> None:
    assert mean(h((1.0, 4.0), (math.inf, 4.0), total_sum=2.0)) == 0.5
    assert mean(h((1.0, 4.0), (math.inf, 4.0), total_sum=math.nan)) is None


# Fleet mode reads a histogram's p95 from Prometheus (histogram_quantile over increase()) without its
# buckets; the first-bucket policy is then decided from the quantile and the first bound alone. It must
# decide as the bucket test does, for any histogram with at least two finite buckets.
_BOUNDS = st.lists(
    st.sampled_from([0.0, 0.01, 0.3, 0.5, 0.8, 1.0, 2.5, 10.0, 60.0]), min_size=2, max_size=6, unique=True
)


@settings(max_examples=400, deadline=None)
@given(
    bounds=_BOUNDS,
    increments=st.lists(st.integers(0, 50), min_size=7, max_size=7),
    q=st.sampled_from([0.5, 0.95, 0.99]),
)
def test_the_first_bucket_policy_from_a_store_quantile_matches_the_bucket_test(
    bounds: list[float], increments: list[int], q: float
) -> None:
    les = [*sorted(bounds), math.inf]
    counts = list(itertools.accumulate(increments[: len(les)]))
    h = Histogram(buckets=tuple(zip(les, map(float, counts), strict=True)), count=float(counts[-1]), sum=1.0)
    if not h.count > 0:
        return
    value = histogram_quantile(q, h)
    assert first_bucket_bound_of(value, les[0]) == first_bucket_bound(q, h)
