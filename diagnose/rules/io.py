"""Step 1, `io`: the disk is busy (model loading, swap, logging) while serving.

Disk IO is not collected yet, so the rule is skipped with that reason; it judges `disk_busy_max_pct`
as soon as a collector provides it.
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.disk import Disk
from diagnose.report import Finding, Severity
from diagnose.rules.base import Rule, ladder, pct, pick
from diagnose.thresholds import Thresholds


class IoRule(Rule):
    id = "io"
    step = 1
    label = "io"
    needs = (Disk.disk_busy_max_pct,)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        severity = ladder(ev.disk.disk_busy_max_pct, t["busy_warning_pct"], t["busy_critical_pct"])
        if severity == Severity.OK:
            return None
        return self.finding(
            severity=severity,
            title=f"Disk busy {pct(ev.disk.disk_busy_max_pct)} of the time while serving",
            detail="A reranker serves from GPU memory; a busy disk means swapping, heavy logs or reloads.",
            numbers=pick(ev, Disk.disk_busy_max_pct),
        )


RULE = IoRule()
