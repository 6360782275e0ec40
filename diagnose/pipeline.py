"""The one diagnosis pipeline: bundle -> evidence -> rules -> report.

Every command that diagnoses (check, watch, demo, the exporter, fleet mode) calls `diagnose`; none of them
re-assembles the steps. Collection stays with the caller: a bundle read from disk, collected live, or built
from Prometheus all arrive here as the same `Bundle`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diagnose.progress import StepReporter
    from diagnose.readings import Bundle, CollectorIssue
    from diagnose.report import Report
    from diagnose.thresholds import Thresholds

# The collectors whose failure means "no /metrics came back" (the HTTP scrape, and the server probe).
_METRICS_COLLECTORS = ("vllm", "server")
# Issues the report shows as notes: damaged input ("input": unreadable values and lines, dropped dumps)
# and the window itself ("collect": interrupted, a later scrape lost). Other issues explain missing
# evidence, and the report says those beside the rules they stop.
_NOTE_COLLECTORS = ("input", "collect")


def diagnose(
    bundle: Bundle,
    thresholds: Thresholds | None = None,
    source: str = "",
    progress: StepReporter | None = None,
) -> Report:
    """The report for one bundle. Pure over the bundle: the same bundle always gives the same report.
    `progress` hears how far a long bundle's dumps are read."""
    from diagnose.derive.evidence import build_evidence
    from diagnose.redact import redact_text, redact_url
    from diagnose.rules.engine import run_rules

    report = run_rules(build_evidence(bundle, progress=progress), thresholds, source=redact_url(source))
    report.notes = [redact_text(i.reason) for i in bundle.issues if i.collector in _NOTE_COLLECTORS]
    return report


def metrics_issue(bundle: Bundle) -> CollectorIssue | None:
    """Why a bundle has no /metrics dump: the first issue the vLLM scrape (or the server probe) recorded."""
    # The scrape's own reason first: a /version or /v1/models that failed must not hide why /metrics did.
    for collector in _METRICS_COLLECTORS:
        issue = next((i for i in bundle.issues if i.collector == collector), None)
        if issue is not None:
            return issue
    return None
