"""Renderers: text (rich, rendered to a string) and JSON (schema_version, stable key order)."""

from __future__ import annotations

import io
import json

from rich.console import Console
from rules_support import HEALTHY, evidence

from diagnose.render.json import SCHEMA_VERSION, render_json, report_to_dict
from diagnose.render.text import finding_panel, format_number, report_renderable
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.engine import run_rules


def render(renderable) -> str:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_text_report_shows_verdict_findings_numbers_knobs_and_skipped_rules():
    ev = evidence(
        why={"gpu_util_median_pct": "needs NVML: no GPU on this host"},
        api_server_cpu_mean_pct=104.0,
        http_mean_s=2.5,
        gpu_util_median_pct=None,
    )
    out = render(report_renderable(run_rules(ev, source="http://127.0.0.1:8000")))
    assert "rerank-doctor verdict" in out and "CRITICAL" in out and "confidence high" in out
    assert "cpu-api-server" in out and "frontend_ratio" in out
    assert "--api-server-count" in out and "raise" in out
    assert "Not judged" in out and "needs NVML: no GPU on this host" in out
    assert "http://127.0.0.1:8000" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_text_report_of_a_healthy_window_says_healthy_with_headroom():
    out = render(report_renderable(run_rules(HEALTHY)))
    assert "healthy" in out and "OK" in out and "Headroom" in out
    assert "WARNING" not in out and "CRITICAL" not in out


def test_text_from_findings_is_not_taken_for_markup():
    finding = Finding(
        "x",
        "config",
        2,
        Severity.INFO,
        "t",
        "handler [bold]/v1/rerank[/bold] seen",
        suggestions=[Suggestion("--flag", "set", "[red]", None, "why")],
    )
    out = render(finding_panel(finding))
    assert "[bold]/v1/rerank[/bold]" in out and "[red]" in out


def test_provisional_findings_say_so():
    report = run_rules(evidence(prefix_queries_per_prompt_token=2.0))
    out = render(report_renderable(report))
    assert "Provisional rule" in out and "cache-thrash" in out


def test_numbers_are_formatted_for_people():
    assert [format_number(v) for v in (None, 0.0, 1094464, 12.3456, 98895.03, True)] == [
        "unknown",
        "0",
        "1,094,464",
        "12.3",
        "98,895",
        "true",
    ]


def test_json_has_schema_version_first_and_stable_key_order():
    data = json.loads(render_json(run_rules(evidence(api_server_cpu_mean_pct=100.0, http_mean_s=1.0))))
    assert list(data) == [
        "schema_version",
        "tool_version",
        "source",
        "window_s",
        "verdict",
        "worst_severity",
        "findings",
        "skipped",
        "evidence",
        "missing",
        "notes",  # added at the end: compatible with schema_version 1
    ]
    assert data["schema_version"] == SCHEMA_VERSION
    assert list(data["verdict"]) == [
        "label",
        "severity",
        "confidence",
        "rule_id",
        "why",
        "contributing",
        "symptom",
    ]
    assert list(data["findings"][0]) == [
        "rule_id",
        "label",
        "step",
        "severity",
        "confidence",
        "provisional",
        "title",
        "detail",
        "numbers",
        "suggestions",
        "kind",
        "utilization",
    ]
    assert list(data["findings"][0]["suggestions"][0]) == ["flag", "direction", "current", "proposed", "why"]
    assert {k: data["verdict"][k] for k in ("label", "severity", "confidence", "rule_id")} == {
        "label": "cpu",
        "severity": "critical",
        "confidence": "high",
        "rule_id": "cpu-api-server",
    }
    # evidence keeps the Evidence field order
    assert list(data["evidence"])[:3] == ["window_s", "dumps", "queue_p95_s"]


def test_json_is_identical_for_the_same_report():
    report = run_rules(HEALTHY)
    assert render_json(report) == render_json(report)


def test_json_writes_nan_as_null():
    report = run_rules(HEALTHY)
    report.evidence["http_mean_s"] = float("nan")
    assert report_to_dict(report)["evidence"]["http_mean_s"] is None
    json.loads(render_json(report))  # allow_nan=False would have raised
