"""Step 2, `config`: `--max-model-len` far above the longest prompts actually sent.

The proposal comes from the prompt-length histogram of the window: the next power of two above both
the p99 times a headroom factor and the upper bound of the highest bucket that saw a request — so no
request seen in the window would have been refused. It stays an INFO: a large --max-model-len costs
startup memory profiling and concurrency estimates, not per-request latency.
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.config import Config
from diagnose.derive.sections.shape import Shape
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.base import Rule, ladder, pick
from diagnose.thresholds import Thresholds


def next_power_of_two(value: float) -> int:
    power = 1
    while power < value:
        power *= 2
    return power


def proposed_max_model_len(p99: float, longest_le: float | None, headroom: float, floor: float = 1.0) -> int:
    return next_power_of_two(max(p99 * headroom, longest_le or 0.0, floor, 1.0))


class MaxModelLenRule(Rule):
    id = "max-model-len"
    step = 2
    label = "config"
    kind = "advice"
    needs = (Config.max_model_len, Shape.prompt_tokens_p99)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        if ev.config.max_model_len is None or ev.shape.prompt_tokens_p99 is None:
            return None
        p99 = max(ev.shape.prompt_tokens_p99, 1.0)
        waste = ev.config.max_model_len / p99
        proposed = proposed_max_model_len(
            p99, ev.shape.prompt_tokens_max_le, t["headroom"], t["min_proposal_tokens"]
        )
        if ladder(waste, info=t["waste_info_ratio"]) == Severity.OK or proposed >= ev.config.max_model_len:
            return None  # the limit fits the traffic: not a fault
        longest = (
            f"; the longest prompts fell in the bucket ≤ {ev.shape.prompt_tokens_max_le:.0f} tokens"
            if ev.shape.prompt_tokens_max_le is not None
            else ""
        )
        return self.finding(
            severity=Severity.INFO,
            title=f"--max-model-len {ev.config.max_model_len} is {waste:.0f}× the p99 prompt "
            f"({p99:.0f} tokens)",
            detail=f"The p99 prompt in the window was {p99:.0f} tokens{longest}. --max-model-len "
            f"{ev.config.max_model_len} reserves for requests that never come: it sizes vLLM's "
            f"startup memory "
            f"profile and the per-step token budget floor. {proposed} (the next power of two above p99 × "
            f"{t['headroom']:g}, at least {t['min_proposal_tokens']:.0f}) still fits every prompt seen; "
            f"longer ones would be refused with HTTP 400.",
            numbers=pick(
                ev,
                Config.max_model_len,
                Shape.prompt_tokens_p99,
                Shape.prompt_tokens_max_le,
                Shape.prompt_tokens_per_pair,
            ),
            suggestions=[
                Suggestion(
                    "--max-model-len",
                    "lower",
                    str(ev.config.max_model_len),
                    str(proposed),
                    f"fits the p99 prompt ({p99:.0f} tokens) × {t['headroom']:g}; check the longest "
                    f"documents you expect first",
                )
            ],
        )


RULE = MaxModelLenRule()
