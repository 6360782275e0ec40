"""What a diagnosis says: findings with their numbers and knobs, rules skipped and why, and a verdict.

Plain records, no behaviour beyond ordering severities. The rules build `Finding`s, the rule engine
builds the `Report`, the renderers (diagnose/render/) turn it into text or JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Severity(IntEnum):
    """Ordered so that max() is the worst and min() caps a severity (dr-elephant's Severity.min)."""

    OK = 0
    INFO = 1
    WARNING = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r}: use one of {names}") from None


# How sure a finding is. "high": the whole signature was seen; "medium": part of it, or a fallback
# reading stood in for the usual one; "low": a provisional rule, not yet established on a real server.
CONFIDENCES = ("low", "medium", "high")

# The labels of the method (DESIGN.md §1); a verdict is one of them. "undetermined": a symptom (past
# capacity) with no measured cause over its line; the verdict then says which reading is missing.
LABELS = ("gpu", "cpu", "network", "cache-thrash", "io", "config", "failures", "undetermined", "healthy")

# What a finding is, in the USE method's terms. A "cause" is a resource at or past its limit
# (utilization, saturation, errors of one resource): causes set the verdict's label. A "symptom" (queue
# time, HTTP latency, failures) is what every bottleneck looks like: symptoms set how urgent the verdict
# is, never which resource it names. "advice" (request pattern, settings) explains or tunes; it never
# decides the verdict. A "conflict" reports readings that contradict each other: the verdict stands, at
# low confidence.
KINDS = ("cause", "symptom", "advice", "conflict")


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One knob to turn, relative to what the server runs with now (MySQLTuner's `@adjvars`)."""

    flag: str  # e.g. "--api-server-count"
    direction: str  # "raise", "lower", "set", "enable", "disable", "add", "change"
    current: str | None  # the value the server runs with, "1 (default)", or None when unknown
    proposed: str | None  # what to try; None when the rule cannot compute one
    why: str  # one line


@dataclass(frozen=True, slots=True)
class Finding:
    rule_id: str
    label: str  # one of LABELS
    step: int  # the method's step (1 triage, 2 request pattern, 3 stress, 4 bypass)
    severity: Severity
    title: str  # one line: what is wrong (or why it is fine)
    detail: str  # the explanation, with the numbers in words
    # The evidence numbers that prove it, keyed by Evidence field name (the unit is in the name).
    numbers: dict[str, float | int | str | None] = field(default_factory=dict)
    suggestions: list[Suggestion] = field(default_factory=list)
    confidence: str = "high"  # one of CONFIDENCES
    provisional: bool = False  # the rule's signature is not yet established on a real server
    kind: str = "cause"  # one of KINDS
    # For a cause: how close its resource is to its limit (1.0 = at the limit), to rank causes.
    utilization: float | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A rule that could not judge (dr-elephant's NO_DATA): which, and the reason the user can act on."""

    rule_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    label: str  # one of LABELS
    severity: Severity
    confidence: str  # one of CONFIDENCES
    rule_id: str | None  # the finding that decided it; None for "healthy" with no finding at all
    why: str = ""  # one line: the binding cause and the symptom it produces, or what is not measured
    contributing: tuple[str, ...] = ()  # the other causes at warning or worse, ranked (rule ids)
    symptom: str | None = None  # the worst symptom's rule id, when one is at warning or worse


@dataclass(slots=True)
class Report:
    verdict: Verdict
    findings: list[Finding]  # worst first, then by step
    skipped: list[Skipped]
    # The evidence the rules read, as (field name -> value) in the Evidence field order, and why
    # some fields are unknown. Kept as plain data so renderers need not import the derive layer.
    evidence: dict[str, object] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    source: str = ""  # where the readings came from: a URL, or a bundle folder
    window_s: float | None = None
    # What the reader of the report must know about the input: unreadable lines dropped, a scrape lost,
    # an interrupted window. One line each; set by diagnose.pipeline from the bundle's issues.
    notes: list[str] = field(default_factory=list)

    def worst(self) -> Severity:
        return max((f.severity for f in self.findings), default=Severity.OK)
