"""A rule that raises is a bug in that rule: it is skipped with the exception's one line, and every other
finding of the report still stands (`check --from` on a real H200 recording)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diagnose.cli import main
from diagnose.rules.cpu_engine_core import EngineCoreCpuRule

# Real vLLM 0.26 on an H200, 8 API servers: EngineCore-bound (tests/fixtures/.../README.md).
BUNDLE = Path(__file__).parent / "fixtures" / "gpu-h200-0.6b-8api-closed" / "bundle"


def check_json(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    status = main(["check", "--from", str(BUNDLE), "--json"])
    return status, json.loads(capsys.readouterr().out)


def test_a_rule_that_raises_is_skipped_and_every_other_finding_stands(monkeypatch, capsys):
    status_before, before = check_json(capsys)

    def boom(self, ev, thresholds):
        raise ZeroDivisionError("float division by zero\nsecond line")

    monkeypatch.setattr(EngineCoreCpuRule, "evaluate", boom)
    status_after, after = check_json(capsys)

    assert status_after == status_before != 70
    others_before = [f for f in before["findings"] if f["rule_id"] != "cpu-engine-core"]
    others_after = [f for f in after["findings"] if f["rule_id"] != "cpu-engine-core"]
    assert [f["rule_id"] for f in others_after] == [f["rule_id"] for f in others_before]
    assert any(f["rule_id"] == "cpu-engine-core" for f in before["findings"])
    skipped = {s["rule_id"]: s["reason"] for s in after["skipped"]}
    assert "ZeroDivisionError: float division by zero" in skipped["cpu-engine-core"]
    assert "second line" not in skipped["cpu-engine-core"]


def test_debug_logs_the_traceback_of_a_rule_that_raised(monkeypatch, capsys):
    def boom(self, ev, thresholds):
        raise RuntimeError("kaput")

    monkeypatch.setattr(EngineCoreCpuRule, "evaluate", boom)
    status = main(["--debug", "check", "--from", str(BUNDLE)])
    err = capsys.readouterr().err
    assert status != 70
    assert "Traceback" in err and "RuntimeError: kaput" in err
