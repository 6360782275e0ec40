"""The report as JSON for programs: a `schema_version`, stable keys in a stable order, no NaN.

Key order is part of the contract (tests pin it): consumers diff reports, and a reordered file would
look like a change. Bump SCHEMA_VERSION when a key is renamed or removed; adding keys at the end of an
object is compatible.
"""

from __future__ import annotations

import json
import math
from typing import Any

from diagnose import __version__
from diagnose.redact import redact_command_line
from diagnose.report import Finding, Report, Suggestion

SCHEMA_VERSION = 1


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null (unknown), tuples lists, dict keys strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _suggestion(s: Suggestion) -> dict[str, Any]:
    return {
        "flag": s.flag,
        "direction": s.direction,
        "current": s.current,
        "proposed": s.proposed,
        "why": s.why,
    }


def finding_to_dict(f: Finding) -> dict[str, Any]:
    return {
        "rule_id": f.rule_id,
        "label": f.label,
        "step": f.step,
        "severity": f.severity.label,
        "confidence": f.confidence,
        "provisional": f.provisional,
        "title": f.title,
        "detail": f.detail,
        "numbers": _clean(f.numbers),
        "suggestions": [_suggestion(s) for s in f.suggestions],
        "kind": f.kind,
        "utilization": _clean(f.utilization),
    }


def report_to_dict(report: Report) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool_version": __version__,
        "source": redact_command_line(report.source),  # a --url may carry user:password@
        "window_s": _clean(report.window_s),
        "verdict": {
            "label": report.verdict.label,
            "severity": report.verdict.severity.label,
            "confidence": report.verdict.confidence,
            "rule_id": report.verdict.rule_id,
            "why": report.verdict.why,
            "contributing": list(report.verdict.contributing),
            "symptom": report.verdict.symptom,
        },
        "worst_severity": report.worst().label,
        "findings": [finding_to_dict(f) for f in report.findings],
        "skipped": [{"rule_id": s.rule_id, "reason": s.reason} for s in report.skipped],
        "evidence": _clean(report.evidence),
        "missing": dict(report.missing),
        "notes": list(report.notes),
    }


def render_json(report: Report) -> str:
    return json.dumps(report_to_dict(report), indent=2, ensure_ascii=False, allow_nan=False)
