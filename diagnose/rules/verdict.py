"""The verdict: the binding cause, not the loudest symptom (the USE method).

Queue time, HTTP latency and failures are what every bottleneck looks like; they set how urgent the
verdict is. The label comes only from a cause: a resource measured at or past its limit. Among the
causes at warning or worse, the binding one is the one no other cause explains (a new connection per
call costs the host the CPU it then lacks), then the worst, then the one closest to its limit; the rest
follow as contributing causes, ranked. A symptom with no cause over its line is `undetermined`, and the
verdict says which readings are missing — never a resource guessed from which readings exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from diagnose.report import Finding, Severity, Skipped, Verdict
from diagnose.rules.base import Rule


@dataclass(frozen=True, slots=True)
class Ranked:
    """The findings in report order (binding cause, contributing causes, then the rest) and the verdict;
    `verdict` is None when nothing is at warning or worse (the caller then judges health)."""

    findings: list[Finding]
    verdict: Verdict | None


def rank(findings: Sequence[Finding], skipped: Sequence[Skipped], rules: Mapping[str, Rule]) -> Ranked:
    """`findings` in rule order; `rules` by id (for what each cause explains)."""
    order = {id(f): i for i, f in enumerate(findings)}
    by_urgency = sorted(findings, key=lambda f: (-f.severity, f.step, order[id(f)]))
    causes = [f for f in by_urgency if f.kind == "cause" and f.severity >= Severity.WARNING]
    symptoms = [f for f in by_urgency if f.kind == "symptom" and f.severity >= Severity.WARNING]
    conflicts = [f for f in by_urgency if f.kind == "conflict" and f.severity >= Severity.WARNING]
    if not causes and not symptoms:
        if conflicts:  # never "healthy" over readings that contradict each other
            verdict = Verdict(
                "undetermined", conflicts[0].severity, "low", conflicts[0].rule_id, why=conflicts[0].title
            )
            return Ranked(by_urgency, verdict)
        return Ranked(by_urgency, None)

    firing = {f.rule_id for f in causes}
    explained = {
        other
        for f in causes
        if f.rule_id in rules
        for other in getattr(rules[f.rule_id], "explains", ())
        if other in firing and other != f.rule_id
    }
    causes.sort(key=lambda f: (f.rule_id in explained, -f.severity, -(f.utilization or 0.0), order[id(f)]))
    symptom = symptoms[0] if symptoms else None
    if causes:
        binding = causes[0]
        severity = max(binding.severity, symptom.severity if symptom else Severity.OK)
        why = binding.title + (f"; {symptom.title[0].lower()}{symptom.title[1:]}" if symptom else "")
        verdict = Verdict(
            binding.label,
            Severity(severity),
            binding.confidence,
            binding.rule_id,
            why=why,
            contributing=tuple(f.rule_id for f in causes[1:]),
            symptom=symptom.rule_id if symptom else None,
        )
    else:
        assert symptom is not None
        verdict = Verdict(
            symptom.label,
            symptom.severity,
            "low",
            symptom.rule_id,
            why=f"{symptom.title}; the binding resource is not measured here: {unmeasured(skipped, rules)}",
            symptom=symptom.rule_id,
        )
    if any(f.kind == "conflict" and f.severity >= Severity.WARNING for f in findings):
        verdict = replace(verdict, confidence="low")  # readings that disagree: no verdict is sure
    first = [f for f in causes] + ([symptom] if symptom else [])
    rest = [f for f in by_urgency if all(f is not g for g in first)]
    return Ranked(first + rest, verdict)


def unmeasured(skipped: Sequence[Skipped], rules: Mapping[str, Rule]) -> str:
    """What the cause rules that could not judge were missing, and how to get it (their skip reasons)."""
    causes = {rule_id for rule_id, rule in rules.items() if getattr(rule, "kind", "cause") == "cause"}
    reasons = [s.reason for s in skipped if s.rule_id in causes]
    reasons = [r for r in reasons if "disk IO is not collected" not in r]  # never collected: not a lead
    if not reasons:
        return "every measured resource is below its line (see the causes below)"
    return "; ".join(dict.fromkeys(reasons))
