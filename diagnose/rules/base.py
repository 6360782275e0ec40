"""What a rule is, and the small helpers every rule shares (ladders, number formatting, current flags).

A rule reads Evidence and the thresholds and returns one Finding, or None when it has nothing to say
(the "not a fault" case returns None, or an INFO finding when explaining it helps). A rule names the
Evidence numbers it needs by reference (`Latency.queue_mean_s`); when one is unknown, the engine skips the
rule and shows the reason (dr-elephant's NO_DATA) instead of guessing from a None. A misspelt reference
fails when the rule's module is imported. Rules share code through this module only, never each other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import ClassVar

from diagnose.derive.evidence import Evidence, Ref, ref_name
from diagnose.report import Finding, Severity, Suggestion
from diagnose.thresholds import Thresholds

# One entry per needed number; a tuple entry means "any one of these will do".
Needs = tuple["Ref | tuple[Ref, ...]", ...]
Numbers = dict[str, float | int | str | None]


class Rule:
    """Base of every rule: its identity, what it reads, and the one way it builds a Finding."""

    id: ClassVar[str]
    step: ClassVar[int]  # the method's step: 1 triage, 2 request pattern, 3 stress, 4 bypass
    label: ClassVar[str]  # the verdict label every finding of the rule carries (fixed per rule)
    needs: ClassVar[Needs] = ()
    provisional: ClassVar[bool] = False  # the signature is not yet established on a real server
    kind: ClassVar[str] = "cause"  # cause, symptom or advice (diagnose.report.KINDS)
    # Causes this one explains when both fire (fix this one first; the other stays as contributing).
    explains: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        for need in cls.needs:  # a reference that is not an Evidence number fails here, at import
            for ref in need if isinstance(need, tuple) else (need,):
                ref_name(ref)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        raise NotImplementedError

    def finding(
        self,
        severity: Severity,
        title: str,
        detail: str,
        numbers: Numbers | None = None,
        suggestions: Iterable[Suggestion] = (),
        confidence: str = "high",
        provisional: bool | None = None,
        utilization: float | None = None,
    ) -> Finding:
        return Finding(
            rule_id=self.id,
            label=self.label,
            step=self.step,
            severity=severity,
            title=title,
            detail=detail,
            numbers=numbers or {},
            suggestions=list(suggestions),
            confidence=confidence,
            provisional=self.provisional if provisional is None else provisional,
            kind=self.kind,
            utilization=utilization,
        )


def needed_refs(rule: Rule) -> list[Ref]:
    return [ref for need in rule.needs for ref in (need if isinstance(need, tuple) else (need,))]


def skip_reason(rule: Rule, evidence: Evidence) -> str | None:
    """Why the rule cannot judge this evidence, or None when everything it needs is known."""
    for need in rule.needs:
        options = need if isinstance(need, tuple) else (need,)
        if all(evidence.read(ref) is None for ref in options):
            reason = evidence.reason(options[0]) or "unknown"
            return f"needs {' or '.join(ref_name(ref) for ref in options)}: {reason}"
    return None


def pick(evidence: Evidence, *refs: Ref) -> Numbers:
    """The referenced numbers as a Finding's `numbers` (keyed by field name, so the unit is in the key)."""
    out: Numbers = {}
    for ref in refs:
        value = evidence.read(ref)
        out[ref_name(ref)] = value if value is None or isinstance(value, int | float | str) else str(value)
    return out


def is_idle(ev: Evidence) -> bool:
    """The window served nothing (calls or engine requests known, and all 0)."""
    traffic = [v for v in (ev.traffic.calls_delta, ev.traffic.engine_requests_delta) if v is not None]
    return bool(traffic) and all(v == 0 for v in traffic)


def frontend_ratio(ev: Evidence) -> tuple[float | None, str]:
    """(latency over queue + inference, which latency was used): HTTP when known, else vLLM e2e."""
    lat = ev.latency
    if lat.queue_mean_s is None or lat.inference_mean_s is None:
        return None, ""
    engine_s = lat.queue_mean_s + lat.inference_mean_s
    if engine_s <= 0:
        return None, ""
    if lat.http_mean_s is not None:
        return lat.http_mean_s / engine_s, "http"
    if lat.e2e_mean_s is not None:
        return lat.e2e_mean_s / engine_s, "e2e"
    return None, ""


def ladder(
    value: float | None,
    warning: float | None = None,
    critical: float | None = None,
    info: float | None = None,
) -> Severity:
    """The severity band `value` falls in (higher is worse); OK for None or below every threshold."""
    if value is None or math.isnan(value):
        return Severity.OK
    for level, bound in ((Severity.CRITICAL, critical), (Severity.WARNING, warning), (Severity.INFO, info)):
        if bound is not None and value >= bound:
            return level
    return Severity.OK


def current_flag(evidence: Evidence, flag: str, default: str = "default") -> str | None:
    """The value the server runs with: the flag's value, `default` when the command line is known but
    does not set it, None when the command line is unknown."""
    if flag in evidence.config.flags:
        return evidence.config.flags[flag]
    return default if evidence.config.flags_known else None


def more_engines(evidence: Evidence, why: str) -> Suggestion:
    """`--data-parallel-size` doubled: each rank is an EngineCore (and a device) of its own. Several rules
    end at "capacity is short, not a setting", and say it the same way."""
    dp = evidence.config.flag_data_parallel_size
    return Suggestion(
        "--data-parallel-size",
        "raise",
        current_flag(evidence, "--data-parallel-size", "1"),
        str(2 * dp) if dp else "2",
        why,
    )


def table(thresholds: Thresholds, rule_id: str) -> Mapping[str, float]:
    return thresholds.of(rule_id)


# --- formatting: numbers in prose, with their unit --------------------------------------------------


def secs(value: float | None) -> str:
    if value is None:
        return "?"
    if value < 0.001:
        return f"{value * 1e6:.0f} µs"
    if value < 1.0:
        return f"{value * 1000:.3g} ms"
    return f"{value:.3g} s"


def pct(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f} %"


def ratio_pct(value: float | None) -> str:
    """A 0-1 ratio as a percentage."""
    return "?" if value is None else f"{value * 100:.3g} %"


def count(value: float | None) -> str:
    if value is None:
        return "?"
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def times(value: float | None) -> str:
    return "?" if value is None else f"{value:.2g}×" if value < 10 else f"{value:.0f}×"
