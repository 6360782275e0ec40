"""Runs every rule over one Evidence and builds the Report: findings (binding cause first), skipped
rules with their reasons, and a verdict.

The verdict is the binding cause when anything is at warning or worse (diagnose/rules/verdict.py says
how it is chosen); otherwise `healthy`, with the headroom finding. Confidence of a healthy verdict drops
when the main triage rules could not run (no GPU or CPU readings) or when the window saw no traffic.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from diagnose.derive.evidence import Evidence
from diagnose.report import Finding, Report, Severity, Skipped, Verdict
from diagnose.rules import RULES
from diagnose.rules.base import Rule, is_idle, skip_reason
from diagnose.rules.healthy import RULE as HEALTHY
from diagnose.rules.verdict import rank
from diagnose.thresholds import Thresholds

# Without these a "healthy" verdict cannot be claimed with full confidence.
TRIAGE = ("gpu", "cpu-api-server", "cpu-engine-core")

log = logging.getLogger(__name__)


def _judge(rule: Rule, evidence: Evidence, thresholds: Thresholds) -> Finding | Skipped | None:
    """One rule, isolated: a rule that raises is a bug in that rule, not a reason to lose every other
    finding. It becomes a skipped rule whose reason is the exception's one line (`--debug` logs the
    traceback)."""
    try:
        reason = skip_reason(rule, evidence)
        if reason is not None:
            return Skipped(rule.id, reason)
        return rule.evaluate(evidence, thresholds)
    except Exception as err:
        log.debug("rule %s raised", rule.id, exc_info=True)
        line = str(err).splitlines()[0] if str(err) else ""
        return Skipped(rule.id, f"the rule failed ({type(err).__name__}: {line}): a bug, please report it")


def run_rules(
    evidence: Evidence,
    thresholds: Thresholds | None = None,
    *,
    source: str = "",
    rules: Sequence[Rule] = RULES,
) -> Report:
    thresholds = thresholds or Thresholds()
    findings: list[tuple[int, Finding]] = []
    skipped: list[Skipped] = []
    for order, rule in enumerate(rules):
        outcome = _judge(rule, evidence, thresholds)
        if isinstance(outcome, Skipped):
            skipped.append(outcome)
        elif outcome is not None:
            findings.append((order, outcome))
    ranked = rank([f for _, f in findings], skipped, {rule.id: rule for rule in rules})
    ordered = ranked.findings
    if ranked.verdict is not None:
        verdict = ranked.verdict
    else:
        healthy = HEALTHY.evaluate(evidence, thresholds)
        assert healthy is not None  # the healthy rule always answers
        ordered.insert(0, healthy)
        skipped_ids = {s.rule_id for s in skipped}
        # No window (one scrape, or dumps that share one capture time): rates and latencies went unjudged.
        no_window = evidence.window_s is None
        if no_window or is_idle(evidence) or all(rule_id in skipped_ids for rule_id in TRIAGE):
            confidence = "low"
        elif any(rule_id in skipped_ids for rule_id in TRIAGE):
            confidence = "medium"
        else:
            confidence = "high"
        verdict = Verdict("healthy", Severity.OK, confidence, HEALTHY.id)
    return Report(
        verdict=verdict,
        findings=ordered,
        skipped=skipped,
        evidence=evidence.as_dict(),
        missing=dict(evidence.missing),
        source=source,
        window_s=evidence.window_s,
    )
