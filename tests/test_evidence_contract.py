"""The Evidence contract: every number declared once (unique name, a stated source), every unknown with a
reason, and rules that can only name numbers that exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from diagnose.bundle import read_bundle
from diagnose.derive.evidence import SECTIONS, build_evidence
from diagnose.derive.section import field_names, source_of
from diagnose.derive.sections.latency import Latency
from diagnose.rules import RULES
from diagnose.rules.base import Rule, needed_refs

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_rule_naming_a_number_that_does_not_exist_fails_at_definition():
    with pytest.raises(AttributeError, match="queue_p95_sec"):

        class Misspelt(Rule):
            id = "misspelt"
            step = 1
            label = "cpu"
            needs = (Latency.queue_p95_sec,)  # type: ignore[attr-defined]


def test_a_rule_naming_a_number_by_string_fails_at_definition():
    with pytest.raises(TypeError, match="not a number of an Evidence section"):

        class ByString(Rule):
            id = "by-string"
            step = 1
            label = "cpu"
            needs = ("queue_mean_s",)


def test_every_registered_rule_needs_only_declared_numbers():
    declared = {n for cls in SECTIONS.values() for n in field_names(cls)}
    for rule in RULES:
        for ref in needed_refs(rule):
            assert ref.__name__ in declared, (rule.id, ref)


def test_every_number_is_declared_once_with_its_source():
    seen: dict[str, str] = {}
    for attr, cls in SECTIONS.items():
        for name in field_names(cls):
            assert name not in seen, f"{name} is declared in {seen.get(name)} and {attr}"
            seen[name] = attr
            if name not in ("flags", "flags_known"):
                assert source_of(cls, name), f"{cls.__name__}.{name} has no source"


@pytest.mark.parametrize(
    "bundle",
    [
        "gpu-h200-4b-8api-open",
        "gpu-h200-0.6b-1api-closed",
        "vllm-0.32-cpu-lab",
        "vllm-0.32-cpu-lab-disable-log-stats",
    ],
)
def test_every_unknown_number_of_a_real_recording_has_a_reason(bundle):
    folder = FIXTURES / bundle
    ev = build_evidence(read_bundle(folder / "bundle" if (folder / "bundle").is_dir() else folder))
    unknown = {name for name, value in ev.as_dict().items() if value is None}
    assert unknown  # every recording lacks something (disk IO is never collected)
    assert unknown <= set(ev.missing), unknown - set(ev.missing)
    assert all(ev.missing[name] for name in unknown)
