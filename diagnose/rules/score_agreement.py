"""Step 4, `config`: the served scores disagree with the model's own (the bypass step's comparison).

This rule does not read Evidence: the bypass step judges its own comparison of scores
(`diagnose.bypass.report.score_finding`) and builds the finding through this rule, so it carries the
same identity, label and shape as every other finding. Not in the registry for that reason.
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.report import Finding
from diagnose.rules.base import Rule
from diagnose.thresholds import Thresholds


class ScoreAgreementRule(Rule):
    id = "bypass_scores"
    step = 4
    label = "config"

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        return None  # judged by the bypass step over its own pairs, not over a window's evidence


RULE = ScoreAgreementRule()
