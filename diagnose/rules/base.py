"""What a rule is, and the small helpers every rule shares (ladders, number formatting, current flags).

A rule reads Evidence and the thresholds and returns one Finding, or None when it has nothing to say
(the "not a fault" case returns None, or an INFO finding when explaining it helps). A rule names the
Evidence fields it needs; when one is unknown, the engine skips the rule and shows the reason
(dr-elephant's NO_DATA) instead of guessing from a None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

from diagnose.derive.evidence import Evidence
from diagnose.report import Finding, Severity, Suggestion
from diagnose.thresholds import Thresholds

# One entry per needed field; a tuple entry means "any one of these will do".
Needs = tuple[str | tuple[str, ...], ...]


class Rule(Protocol):
    id: str
    step: int  # the method's step: 1 triage, 2 request pattern, 3 stress, 4 bypass
    label: str  # the verdict label its findings carry
    needs: Needs

    def evaluate(self, evidence: Evidence, thresholds: Thresholds) -> Finding | None: ...


def skip_reason(rule: Rule, evidence: Evidence) -> str | None:
    """Why the rule cannot judge this evidence, or None when everything it needs is known."""
    values = evidence.as_dict()
    for need in rule.needs:
        options = (need,) if isinstance(need, str) else need
        if all(values.get(name) is None for name in options):
            first = options[0]
            reason = evidence.missing.get(first, "unknown")
            return f"needs {' or '.join(options)}: {reason}"
    return None


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


def pick(evidence: Evidence, *names: str) -> dict[str, float | int | str | None]:
    """The named Evidence fields as a Finding's `numbers` (same names, so the unit is in the key)."""
    values = evidence.as_dict()
    out: dict[str, float | int | str | None] = {}
    for name in names:
        value = values[name]
        out[name] = value if value is None or isinstance(value, int | float | str) else str(value)
    return out


def current_flag(evidence: Evidence, flag: str, default: str = "default") -> str | None:
    """The value the server runs with: the flag's value, `default` when the command line is known but
    does not set it, None when the command line is unknown."""
    if flag in evidence.flags:
        return evidence.flags[flag]
    return default if evidence.flags_known else None


def more_engines(evidence: Evidence, why: str) -> Suggestion:
    """`--data-parallel-size` doubled: each rank is an EngineCore (and a device) of its own. Several rules
    end at "capacity is short, not a setting", and say it the same way."""
    dp = evidence.flag_data_parallel_size
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
