"""Step 2, request pattern: how many documents per call, how many tokens per pair.

A rerank call with N documents is N engine requests (DESIGN §2), so the shape decides where the cost
goes. "1 query + 100 passages" spreads the per-call HTTP and JSON work over many pairs; "1 query + 3"
pays it for every handful. Pairs of a few tokens cost the API server more than the model: in the H200
capture s5 (6.5 tokens per pair) the GPU was 4.6 % busy at 1,888 pairs/s.
This is always an INFO finding: the shape is context for the other rules, not a fault by itself.
"""

from __future__ import annotations

import math

from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.shape import Shape
from diagnose.derive.sections.traffic import Traffic
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.base import Rule, count, pick
from diagnose.thresholds import Thresholds


class RequestPatternRule(Rule):
    id = "request-pattern"
    step = 2
    label = "config"
    kind = "advice"
    needs = (Traffic.docs_per_call, Shape.prompt_tokens_per_pair)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        docs, tokens = ev.traffic.docs_per_call, ev.shape.prompt_tokens_per_pair
        if docs is None or tokens is None:
            return None
        notes: list[str] = []
        suggestions: list[Suggestion] = []
        if docs < t["few_docs_per_call"]:
            notes.append(
                f"Few documents per call ({docs:.1f}): the per-call HTTP and JSON work is paid for every "
                "handful of pairs."
            )
            suggestions.append(
                Suggestion(
                    "client: documents per call",
                    "raise",
                    f"{docs:.1f}",
                    str(math.ceil(t["few_docs_per_call"] * 4)),
                    "fewer, larger requests: one call carries many pairs for the same per-call cost",
                )
            )
        if tokens < t["tiny_pair_tokens"]:
            notes.append(
                f"Tiny pairs ({tokens:.1f} tokens each): tokenizing, scheduling and answering each one costs "
                "the API server more than the model costs the GPU; expect a CPU limit long before the GPU's."
            )
        rate = (
            f", {count(ev.traffic.engine_requests_per_s)} pairs/s"
            if ev.traffic.engine_requests_per_s is not None
            else ""
        )
        calls = f" at {ev.traffic.calls_per_s:.3g} calls/s" if ev.traffic.calls_per_s is not None else ""
        p99 = (
            f", p99 prompt {ev.shape.prompt_tokens_p99:.0f} tokens"
            if ev.shape.prompt_tokens_p99 is not None
            else ""
        )
        return self.finding(
            severity=Severity.INFO,
            title=f"Request shape: {docs:.3g} documents per call, {tokens:.3g} tokens per pair{rate}",
            detail=f"Each call carried {docs:.1f} documents on average{calls}; a pair (query + document) "
            f"averaged {tokens:.1f} prompt tokens{p99}. " + " ".join(notes),
            numbers=pick(
                ev,
                Traffic.docs_per_call,
                Shape.prompt_tokens_per_pair,
                Shape.prompt_tokens_p99,
                Traffic.calls_per_s,
                Traffic.engine_requests_per_s,
                Shape.prompt_tokens_per_s,
                Traffic.http_handler,
            ),
            suggestions=suggestions,
        )


RULE = RequestPatternRule()
