"""Step 2, `config`: generated tokens on a reranker — a generate endpoint is being used for scoring.

A pooling reranker (/v1/rerank, /score) generates nothing: `generation_tokens_total` stays 0. If it
grows, some client scores by asking a generative model for "yes"/"no" through /v1/completions or
/v1/chat/completions: a decode step per call, sampling, and no batching across documents of one query.
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.shape import Shape
from diagnose.derive.sections.traffic import Traffic
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.base import Rule, count, pick
from diagnose.thresholds import Thresholds

GENERATE_HINTS = ("completions", "generate", "chat", "responses")


class GenerateEndpointRule(Rule):
    id = "generate-endpoint"
    step = 2
    label = "config"
    needs = (Shape.generation_tokens_delta,)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        generated = ev.shape.generation_tokens_delta
        if generated is None or generated <= 0:
            return None  # nothing generated: the reranker is used through a pooling endpoint, as it should
        per_request = (
            generated / ev.traffic.engine_requests_delta if ev.traffic.engine_requests_delta else None
        )
        severity = Severity.WARNING
        if per_request is None or per_request >= t["tokens_per_request_critical"]:
            severity = Severity.CRITICAL
        handlers = [h for h in (ev.traffic.calls_by_handler or {}) if any(k in h for k in GENERATE_HINTS)]
        where = f" Generate handlers called: {', '.join(sorted(handlers))}." if handlers else ""
        per = f" ({per_request:.2g} per engine request)" if per_request is not None else ""
        suggestions = [
            Suggestion(
                "client endpoint",
                "change",
                ", ".join(sorted(handlers)) or "a generate endpoint",
                "/v1/rerank or /score",
                "pooling endpoints score every document in one prefill, with no decode step or sampling",
            )
        ]
        runner = ev.config.flags.get("--runner")
        if ev.config.flags_known and runner != "pooling":
            suggestions.append(
                Suggestion(
                    "--runner",
                    "set",
                    runner or "default",
                    "pooling",
                    "serve the reranker as a pooling model so /v1/rerank and /score exist",
                )
            )
        return self.finding(
            severity=severity,
            title=f"{count(generated)} tokens generated on a reranker: scoring goes through generation",
            detail=f"vLLM generated {count(generated)} tokens in the window{per}; a reranker served for "
            f"scoring generates none.{where}",
            numbers=pick(
                ev, Shape.generation_tokens_delta, Traffic.engine_requests_delta, Traffic.calls_by_handler
            ),
            suggestions=suggestions,
        )


RULE = GenerateEndpointRule()
