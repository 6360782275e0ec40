"""Prometheus alert rules (alerts/): generated from code, valid for promtool, unit-tested per alert,
labelled with the CLI's rule ids, routed by the Alertmanager example."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from diagnose.rules import RULES
from diagnose.thresholds import DEFAULTS

REPO = Path(__file__).resolve().parent.parent
ALERTS = REPO / "alerts"
RULES_FILE = ALERTS / "rerank-doctor.rules.yml"
UNIT_TESTS = ALERTS / "tests" / "rerank-doctor.test.yml"


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        reason = f"{tool} is not installed (Debian: apt-get install prometheus prometheus-alertmanager)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason + " — CI installs it in .ci/run", pytrace=False)
        pytest.skip(reason)
    return path


def load_generator(name: str) -> ModuleType:
    """alerts/generate.py or dashboards/generate.py as a module (they are scripts, not a package)."""
    path = REPO / name / "generate.py"
    spec = importlib.util.spec_from_file_location(f"_{name}_generate", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def alerts() -> list[dict[str, Any]]:
    gen = load_generator("alerts")
    return [r for g in gen.build_rules()["groups"] for r in g["rules"] if "alert" in r]


def test_committed_rules_file_is_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(ALERTS / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_promtool_check_rules_accepts_the_rules() -> None:
    result = subprocess.run(
        [need("promtool"), "check", "rules", str(RULES_FILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run(
        [need("promtool"), "test", "rules", str(UNIT_TESTS)],
        capture_output=True,
        text=True,
        cwd=UNIT_TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def unit_cases() -> dict[str, dict[str, int]]:
    """alertname -> {"fires": n, "quiet": n} from the promtool test file (read as text: no YAML library)."""
    text = UNIT_TESTS.read_text()
    cases: dict[str, dict[str, int]] = {}
    for match in re.finditer(r"alertname: (\w+)\n\s+exp_alerts:( \[\])?", text):
        kind = "quiet" if match.group(2) else "fires"
        cases.setdefault(match.group(1), {"fires": 0, "quiet": 0})[kind] += 1
    return cases


def test_every_alert_has_a_unit_test_that_fires_and_one_that_stays_quiet() -> None:
    cases = unit_cases()
    for name in {a["alert"] for a in alerts()}:
        assert cases.get(name, {}).get("fires"), f"{name}: no promtool case where it fires"
        assert cases.get(name, {}).get("quiet"), f"{name}: no promtool case where it stays quiet"


def test_every_alert_carries_severity_a_known_rule_id_a_summary_and_a_runbook_section() -> None:
    gen = load_generator("alerts")
    cli_ids = {rule.id for rule in RULES}
    runbook = (ALERTS / "RUNBOOK.md").read_text()
    for alert in alerts():
        labels, notes = alert["labels"], alert["annotations"]
        assert labels["severity"] in {"warning", "critical"}, alert["alert"]
        assert labels["rule_id"] in cli_ids | set(gen.ALERT_ONLY_RULE_IDS), alert["alert"]
        assert notes["summary"].strip()
        anchor = notes["runbook"].split("#", 1)[1]
        assert f"\n## {anchor}\n" in runbook, f"RUNBOOK.md has no section for {anchor}"
    assert not set(gen.ALERT_ONLY_RULE_IDS) & cli_ids  # alert-only ids never shadow a CLI rule


def test_alerts_cover_queue_time_failures_api_server_cache_thrash_generation_and_down() -> None:
    ids = {a["labels"]["rule_id"] for a in alerts()}
    assert {
        "queue-time",
        "failures",
        "cpu-api-server",
        "cache-thrash",
        "generate-endpoint",
        "vllm-down",
    } <= ids
    assert {"exporter-down", "exporter-stale"} <= ids
    queue = {a["labels"]["severity"]: a for a in alerts() if a["labels"]["rule_id"] == "queue-time"}
    assert queue["warning"]["expr"].endswith("> 0.2") and queue["warning"]["for"] == "5m"
    assert queue["critical"]["expr"].endswith("> 1")


def test_alert_thresholds_are_the_cli_thresholds() -> None:
    by_id = {(a["labels"]["rule_id"], a["labels"]["severity"]): a["expr"] for a in alerts()}
    assert by_id[("cpu-api-server", "warning")].endswith(
        f">= {DEFAULTS['cpu-api-server']['busy_warning_pct']:g}"
    )
    assert by_id[("failures", "warning")].endswith(f"> {DEFAULTS['failures']['warning_ratio']:g}")
    assert by_id[("failures", "critical")].endswith(f"> {DEFAULTS['failures']['critical_ratio']:g}")


def test_every_vllm_selector_accepts_both_spellings() -> None:
    text = RULES_FILE.read_text()
    for regex in re.findall(r'__name__=~"([^"]+)"', text):
        names = set(regex.split("|"))
        for name in names:
            if name.startswith("vllm:"):
                assert "vllm_" + name[5:] in names, f"{name} without its vllm_ spelling"
    # No vLLM name outside a both-spellings regex (rerank_doctor:... are our own recording rules).
    bare = re.findall(r"(?<![\w\"|])vllm[:_]\w+(?=[{\[\s)])", text)
    assert not bare, bare


def test_alertmanager_example_is_valid_and_routes_by_severity() -> None:
    amtool = need("amtool")
    config = str(ALERTS / "alertmanager.yml")
    check = subprocess.run([amtool, "check-config", config], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    for severity, receiver in (("critical", "pager"), ("warning", "chat")):
        route = subprocess.run(
            [
                amtool,
                "config",
                "routes",
                "test",
                f"--config.file={config}",
                f"severity={severity}",
                "rule_id=failures",
            ],
            capture_output=True,
            text=True,
        )
        assert route.stdout.strip() == receiver, route.stdout + route.stderr
