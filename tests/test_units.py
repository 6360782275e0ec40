"""One unit per quantity (docs/units.md): the table is true of what check, bundles and the exporter emit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from diagnose.bundle import read_bundle
from diagnose.collect.sockets import TCP_STATES
from diagnose.derive.evidence import build_evidence
from diagnose.derive.processes import cpu_by_role
from diagnose.exporter.collector import ReportCollector
from diagnose.exporter.server import build_registry
from diagnose.exporter.snapshot import build_snapshot
from diagnose.exporter.state import ExporterState
from diagnose.rules.engine import run_rules

UNITS_MD = Path(__file__).resolve().parent.parent / "docs" / "units.md"
CPU_BOUND = "s5_cpu_bound_tiny_c32_d500_w3"  # a real H200 capture with HOST_TOTAL rows and NVML samples


def table_rows() -> list[list[str]]:
    rows = [line for line in UNITS_MD.read_text().splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[1:]]


def exported(captures_dir: Path) -> tuple[dict[str, dict[tuple, float]], dict[str, object]]:
    bundle = read_bundle(captures_dir / CPU_BOUND)
    report = run_rules(build_evidence(bundle), source=CPU_BOUND)
    state = ExporterState()
    state.publish(
        build_snapshot(
            bundle, report, window_end_t_unix=1000.0, collection_s=1.0, tcp_states=TCP_STATES.values()
        )
    )
    registry = build_registry(
        ReportCollector(state, url="http://x:8000", stale_after_s=60.0, clock=lambda: 1001.0),
        self_metrics=False,
    )
    families: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            families.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return families, report.evidence


def test_every_name_in_the_units_table_is_one_that_is_really_emitted(captures_dir: Path) -> None:
    families, evidence = exported(captures_dir)
    evidence_fields = set(evidence)  # the report's evidence, as `check --json` prints it
    rows = table_rows()
    assert len(rows) >= 5
    for quantity, _unit, evidence, _bundle, exporter in rows:
        for name in re.findall(r"`([a-z_0-9]+)`", evidence):
            assert name in evidence_fields, f"{quantity}: {name} is not an evidence field"
        for name in re.findall(r"`(rerank_doctor_[a-z_]+)", exporter):
            assert name in families, f"{quantity}: the exporter emits no {name}"


def test_host_cpu_is_the_same_number_in_check_the_bundle_and_the_exporter(captures_dir: Path) -> None:
    # The exporter used to give role="host" in percent of ONE core (x the core count: 120 on 2 cores)
    # while check and bundles give percent of ALL cores.
    families, evidence = exported(captures_dir)
    host_pct = evidence["host_cpu_mean_pct"]
    assert isinstance(host_pct, float) and 0 < host_pct <= 100
    bundle_host = cpu_by_role(read_bundle(captures_dir / CPU_BOUND).processes)["host"].mean_pct
    assert bundle_host == pytest.approx(host_pct, rel=0.05)  # the HOST_TOTAL rows, in the same unit
    assert families["rerank_doctor_host_cpu_ratio"][()] == pytest.approx(host_pct / 100)
    roles = {dict(labels)["role"] for labels in families["rerank_doctor_process_cpu_percent"]}
    assert "host" not in roles and "api_server" in roles


def test_process_cpu_is_percent_of_one_core_everywhere(captures_dir: Path) -> None:
    families, evidence = exported(captures_dir)
    api = families["rerank_doctor_process_cpu_percent"][(("role", "api_server"),)]
    # The capture's single API server sat at ~100 % of one core (DESIGN §2), in both views.
    assert 90 < api < 130 and evidence["api_server_cpu_mean_pct"] == pytest.approx(api, rel=0.1)
