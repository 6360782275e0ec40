"""Step 1, failures: requests that did not succeed — engine errors and aborts, HTTP 4xx/5xx, rejections.

A slow server that also fails requests needs the failures looked at first. Shares are judged against
the calls (HTTP) or engine requests (one per document) of the window.
Not a fault: no failure at all. `finished_reason="length"` is not counted: a pooling request never
hits a length limit, and for a generative one it is a normal stop.
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.traffic import Traffic
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.base import Rule, count, ladder, pick, ratio_pct
from diagnose.thresholds import Thresholds


class FailuresRule(Rule):
    id = "failures"
    step = 1
    label = "failures"
    kind = "symptom"  # failed calls are what a limit looks like; the cause is named elsewhere
    needs = ((Traffic.calls_delta, Traffic.engine_requests_delta),)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        reasons = ev.traffic.finished_by_reason or {}
        parts: list[tuple[str, float, float | None, str]] = []  # (what, count, share, advice)

        def share(n: float, of: float | None) -> float | None:
            return n / of if of else None

        for reason, advice in (
            ("error", "engine errors: read the vLLM log around these times"),
            ("abort", "aborts are usually clients that gave up (timeouts): look at latency first"),
        ):
            n = reasons.get(reason, 0.0)
            if n > 0:
                parts.append(
                    (
                        f"{count(n)} engine requests {reason}",
                        n,
                        share(n, ev.traffic.engine_requests_delta),
                        advice,
                    )
                )
        http: tuple[tuple[float | None, str, str], ...] = (
            (ev.traffic.http_5xx_delta, "HTTP 5xx", "server errors: read the vLLM log"),
            (
                ev.traffic.http_4xx_delta,
                "HTTP 4xx",
                "client errors: a prompt longer than --max-model-len is a 400",
            ),
            (
                ev.traffic.admission_rejections_delta,
                "admission rejections",
                "the waiting queue was full: add capacity",
            ),
        )
        for delta, what, advice in http:
            if delta:
                parts.append((f"{count(delta)} {what}", delta, share(delta, ev.traffic.calls_delta), advice))
        if not parts:
            return None  # nothing failed
        worst = max((p[2] for p in parts if p[2] is not None), default=None)
        severity = max(ladder(worst, t["warning_ratio"], t["critical_ratio"]), Severity.INFO)
        if worst is None:
            severity = Severity.WARNING  # failures with no total to compare against
        detail = "; ".join(
            f"{what} ({ratio_pct(s)} of the window's traffic) — {advice}"
            if s is not None
            else f"{what} — {advice}"
            for what, _, s, advice in parts
        )
        suggestions = []
        if (
            ev.traffic.http_4xx_delta
            and ev.config.max_model_len
            and ev.shape.prompt_tokens_max_le
            and (ev.shape.prompt_tokens_max_le >= ev.config.max_model_len)
        ):
            suggestions.append(
                Suggestion(
                    "--max-model-len",
                    "raise",
                    str(ev.config.max_model_len),
                    str(2 * ev.config.max_model_len),
                    "prompts reach the limit: longer ones are refused with 400",
                )
            )
        return self.finding(
            severity=severity,
            title=f"Failed requests: {', '.join(p[0] for p in parts)}",
            detail=detail + ".",
            numbers=pick(
                ev,
                Traffic.failed_requests_delta,
                Traffic.http_4xx_delta,
                Traffic.http_5xx_delta,
                Traffic.admission_rejections_delta,
                Traffic.calls_delta,
                Traffic.engine_requests_delta,
                Traffic.finished_by_reason,
            ),
            suggestions=suggestions,
        )


RULE = FailuresRule()
