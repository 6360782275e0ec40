"""The rule engine: skipping with reasons, ordering, the verdict, and the healthy finding."""

from __future__ import annotations

from rules_support import HEALTHY, evidence

from diagnose.report import Finding, Severity
from diagnose.rules import RULES
from diagnose.rules.engine import run_rules
from diagnose.thresholds import Thresholds


def test_every_rule_has_a_unique_id_a_step_and_thresholds_where_it_reads_them():
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    assert all(r.step in (1, 2, 3, 4) for r in RULES)
    tables = Thresholds().as_dict()
    assert all(r.id in tables for r in RULES)


def test_healthy_evidence_gives_a_healthy_verdict_with_no_warning():
    report = run_rules(HEALTHY)
    assert report.verdict.label == "healthy" and report.verdict.severity == Severity.OK
    assert report.worst() <= Severity.INFO
    assert report.findings[0].rule_id == "healthy"
    assert "GPU busy 40 %" in report.findings[0].detail
    assert report.verdict.confidence == "high"


def test_a_warning_decides_the_verdict_and_the_healthy_finding_is_left_out():
    report = run_rules(evidence(api_server_cpu_mean_pct=100.0, http_mean_s=0.5))
    assert (report.verdict.label, report.verdict.rule_id) == ("cpu", "cpu-api-server")
    assert report.verdict.severity == Severity.CRITICAL
    assert all(f.rule_id != "healthy" for f in report.findings)


def test_findings_are_ordered_worst_first_then_by_step():
    report = run_rules(evidence(api_server_cpu_mean_pct=100.0, http_mean_s=0.5, host_cpu_mean_pct=88.0))
    severities = [f.severity for f in report.findings]
    assert severities == sorted(severities, reverse=True)
    assert [f.rule_id for f in report.findings[:2]] == ["cpu-api-server", "cpu-host"]


def test_missing_evidence_skips_the_rule_and_keeps_the_reason():
    ev = evidence(why={"gpu_util_median_pct": "needs NVML: no GPU on this host"}, gpu_util_median_pct=None)
    report = run_rules(ev)
    skipped = {s.rule_id: s.reason for s in report.skipped}
    assert skipped["gpu"] == "needs gpu_util_median_pct: needs NVML: no GPU on this host"
    assert report.verdict.confidence == "medium"  # healthy, but the GPU could not be judged


def test_an_idle_window_is_healthy_with_low_confidence():
    report = run_rules(evidence(calls_delta=0.0, engine_requests_delta=0.0))
    assert report.verdict.label == "healthy" and report.verdict.confidence == "low"
    assert report.findings[0].title.startswith("Idle")


def test_custom_rules_list_is_honoured():
    class Always:
        id, step, label, needs = "always", 1, "io", ()

        def evaluate(self, ev, thresholds):
            return Finding("always", "io", 1, Severity.WARNING, "t", "d")

    report = run_rules(HEALTHY, rules=[Always()])
    assert report.verdict.label == "io" and [f.rule_id for f in report.findings] == ["always"]


def test_the_report_carries_the_evidence_and_why_fields_are_missing():
    report = run_rules(HEALTHY, source="http://127.0.0.1:8000")
    assert report.evidence["gpu_util_mean_pct"] == 40.0
    assert report.missing["disk_busy_max_pct"] == "disk IO is not collected yet"
    assert report.source == "http://127.0.0.1:8000" and report.window_s == 60.0
