"""Derived numbers outside what can be are set aside with the reason (diagnose/derive/plausible.py)."""

from __future__ import annotations

import math

from diagnose.derive.plausible import counter_delta, process_cpu_pct, ratio, window_s


def test_a_process_above_every_core_of_the_host_is_suspect() -> None:
    checked = process_cpu_pct(392.0, host_cores=2, what="API-server CPU")
    assert checked.value is None and "2-core host" in (checked.suspect or "")


def test_a_process_using_every_core_with_jitter_is_kept() -> None:
    assert process_cpu_pct(203.0, host_cores=2).value == 203.0
    assert process_cpu_pct(392.0, host_cores=None).value == 392.0  # cores unknown: no bound to apply


def test_negative_or_non_finite_cpu_is_suspect() -> None:
    assert process_cpu_pct(-5.0, 8).suspect and process_cpu_pct(math.nan, 8).suspect


def test_ratio_outside_zero_and_one_is_suspect_and_inside_is_kept() -> None:
    assert ratio(1.7, "prefix-cache hit ratio").value is None
    assert ratio(math.nan, "x").value is None
    assert ratio(0.25, "x").value == 0.25


def test_a_counter_that_went_down_was_reset() -> None:
    checked = counter_delta(1000.0, 10.0, "vllm:prompt_tokens_total")
    assert checked.value is None and "reset" in (checked.suspect or "")
    assert counter_delta(10.0, 1000.0, "x").value == 990.0


def test_a_window_needs_two_distinct_times() -> None:
    assert window_s([5.0, 5.0, 5.0]).value is None
    assert window_s([5.0, math.inf]).value is None
    assert window_s([5.0, 6.5, 7.0]).value == 2.0
