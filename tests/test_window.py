"""Before/after deltas: counters and histograms over a window, and what a restart inside it does."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from diagnose.derive.window import counter_delta, histogram_delta, rate
from diagnose.metrics import names
from diagnose.metrics.exposition import parse_text
from diagnose.metrics.names import Histogram

S3 = "s3_gpu_saturated_c64_d80_w300"


def test_counter_delta_is_after_minus_before() -> None:
    assert counter_delta(48916.0, 84676.0) == 35760.0


def test_counter_delta_after_a_reset_is_the_after_value() -> None:
    # after < before: vLLM restarted inside the window and counted 120 since.
    assert counter_delta(84676.0, 120.0) == 120.0


def test_counter_delta_is_none_when_either_end_is_unknown() -> None:
    assert counter_delta(None, 5.0) is None
    assert counter_delta(5.0, None) is None


def test_rate_divides_by_the_window_and_refuses_an_empty_window() -> None:
    assert rate(35760.0, 120.0) == 298.0
    assert rate(1.0, 0.0) is None
    assert rate(None, 10.0) is None
    assert rate(1.0, None) is None


def test_histogram_delta_of_s3_is_bucket_by_bucket(captures_dir: Path) -> None:
    start = parse_text((captures_dir / S3 / "metrics_start.txt").read_text())
    end = parse_text((captures_dir / S3 / "metrics_end.txt").read_text())
    d = histogram_delta(names.histogram(start, "e2e_latency"), names.histogram(end, "e2e_latency"))
    assert d is not None
    # le=0.3: 80344 - 48912; le=0.5: 84652 - 48916; every later bucket: 84676 - 48916.
    assert d.buckets[:3] == ((0.3, 31432.0), (0.5, 35736.0), (0.8, 35760.0))
    assert d.buckets[-1] == (math.inf, 35760.0)
    assert d.count == 35760.0
    assert d.sum == pytest.approx(10959.438737630844 - 1803.6269600391388)


BEFORE = Histogram(buckets=((0.1, 50.0), (1.0, 90.0), (math.inf, 100.0)), count=100.0, sum=20.0)


def test_histogram_delta_after_a_reset_is_the_after_histogram() -> None:
    after = Histogram(buckets=((0.1, 3.0), (1.0, 4.0), (math.inf, 4.0)), count=4.0, sum=0.5)
    assert histogram_delta(BEFORE, after) == after


def test_histogram_delta_with_one_bucket_down_is_a_reset() -> None:
    after = Histogram(buckets=((0.1, 40.0), (1.0, 95.0), (math.inf, 110.0)), count=110.0, sum=25.0)
    assert histogram_delta(BEFORE, after) == after


def test_histogram_delta_with_other_bounds_is_a_reset() -> None:
    after = Histogram(buckets=((0.2, 60.0), (1.0, 95.0), (math.inf, 110.0)), count=110.0, sum=25.0)
    assert histogram_delta(BEFORE, after) == after


def test_histogram_delta_is_none_when_either_end_is_unknown() -> None:
    assert histogram_delta(None, BEFORE) is None
    assert histogram_delta(BEFORE, None) is None
