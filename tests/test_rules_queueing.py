"""queueing: a server whose requests wait as long as they run is past capacity, never healthy."""

from __future__ import annotations

from rules_support import analyze, evidence, severity

from diagnose.report import Severity
from diagnose.rules.engine import run_rules
from diagnose.rules.queueing import RULE


def test_healthy_default_does_not_queue() -> None:
    assert severity(RULE) == Severity.OK


def test_queue_as_long_as_the_work_is_a_warning() -> None:
    assert severity(RULE, queue_mean_s=0.4, inference_mean_s=0.4) == Severity.WARNING


def test_a_queue_of_a_second_or_more_is_critical() -> None:
    assert severity(RULE, queue_mean_s=2.6, inference_mean_s=2.55) == Severity.CRITICAL


def test_a_short_queue_next_to_long_work_is_a_burst_absorbed() -> None:
    # Not a fault: 0.3 s of queue before 2 s of inference.
    assert severity(RULE, queue_mean_s=0.3, inference_mean_s=2.0) == Severity.OK


def test_below_the_warning_level_is_not_judged_even_if_longer_than_the_work() -> None:
    assert severity(RULE, queue_mean_s=0.05, inference_mean_s=0.01) == Severity.OK


def test_queueing_is_a_symptom_that_never_names_a_resource() -> None:
    # Queueing is what every bottleneck looks like: the cause rules name what binds (tests/test_verdict.py).
    finding = analyze(RULE, queue_mean_s=1.5, inference_mean_s=1.0, gpu_util_mean_pct=75.0)
    assert finding is not None and finding.kind == "symptom" and finding.label == "undetermined"
    assert any(s.flag == "--data-parallel-size" for s in finding.suggestions)


def test_a_queueing_server_is_never_reported_healthy() -> None:
    report = run_rules(evidence(queue_mean_s=2.6, inference_mean_s=2.55))
    assert report.verdict.label != "healthy" and report.worst() == Severity.CRITICAL
