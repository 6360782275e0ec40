"""check --from on the real H200 bundles (tests/fixtures/gpu-h200-*/README.md say how they were made)."""

from __future__ import annotations

from pathlib import Path

import pytest

from diagnose.bundle import read_bundle
from diagnose.derive.evidence import build_evidence
from diagnose.rules.engine import run_rules

FIXTURES = Path(__file__).parent / "fixtures"


def diagnose(name: str):  # type: ignore[no-untyped-def]
    return run_rules(build_evidence(read_bundle(FIXTURES / name / "bundle")))


def flags(report) -> set[str]:  # type: ignore[no-untyped-def]
    return {s.flag for f in report.findings for s in f.suggestions}


@pytest.mark.parametrize(
    "name", ["gpu-h200-4b-1api-closed", "gpu-h200-4b-8api-closed", "gpu-h200-4b-8api-open"]
)
def test_the_4b_shape_is_diagnosed_gpu_bound_with_more_gpus_suggested(name: str) -> None:
    report = diagnose(name)
    assert report.verdict.label == "gpu"
    assert "gpu" in {f.rule_id for f in report.findings}  # the GPU rule itself, not only the queue symptom
    assert "--data-parallel-size" in flags(report)
    assert "--api-server-count" not in flags(report)  # 8 API servers bought nothing here (241 vs 240 pairs/s)


def test_the_0_6b_shape_with_one_api_server_is_still_api_server_bound() -> None:
    report = diagnose("gpu-h200-0.6b-1api-closed")
    assert report.verdict.label == "cpu"
    api = next(f for f in report.findings if f.rule_id == "cpu-api-server")
    assert any(s.flag == "--api-server-count" and s.current == "1" for s in api.suggestions)
    assert "gpu" not in {f.rule_id for f in report.findings}


def test_with_eight_api_servers_the_0_6b_limit_moves_to_the_engine_core() -> None:
    report = diagnose("gpu-h200-0.6b-8api-closed")
    assert report.verdict.label == "cpu"
    ids = {f.rule_id for f in report.findings}
    assert "cpu-engine-core" in ids and "cpu-api-server" not in ids
