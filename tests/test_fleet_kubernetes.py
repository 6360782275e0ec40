"""The Kubernetes files (alerts/kubernetes/, dashboards/kubernetes/): generated from code, valid for
promtool, per replica (`by (namespace, pod, model_name)`), silent without traffic, loadable by the
Prometheus Operator and Grafana's sidecar."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
K8S_ALERTS = REPO / "alerts" / "kubernetes"
K8S_DASHBOARDS = REPO / "dashboards" / "kubernetes"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed (apt-get install prometheus; .ci/run installs it)", pytrace=False
        )
    return path


def _yaml(path: Path) -> list[Any]:
    return list(yaml.safe_load_all(path.read_text()))


@pytest.mark.parametrize("generator", ["alerts/kubernetes.py", "dashboards/kubernetes.py"])
def test_committed_files_are_what_the_generator_writes(generator: str) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / generator), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_promtool_accepts_the_fleet_rules_and_their_unit_tests_pass() -> None:
    promtool = _promtool()
    check = subprocess.run(
        [promtool, "check", "rules", str(K8S_ALERTS / "fleet.rules.yml")], capture_output=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(
        [promtool, "test", "rules", "fleet.test.yml"],
        cwd=K8S_ALERTS / "tests",
        capture_output=True,
        text=True,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_the_prometheus_rule_resource_carries_exactly_the_checked_rules() -> None:
    (resource,) = _yaml(K8S_ALERTS / "prometheusrule.yaml")
    (plain,) = _yaml(K8S_ALERTS / "fleet.rules.yml")
    assert resource["apiVersion"] == "monitoring.coreos.com/v1" and resource["kind"] == "PrometheusRule"
    assert resource["spec"]["groups"] == plain["groups"]


def test_every_per_replica_rule_aggregates_by_namespace_pod_and_model_name() -> None:
    (plain,) = _yaml(K8S_ALERTS / "fleet.rules.yml")
    records = [r for g in plain["groups"] for r in g["rules"] if "record" in r]
    assert records
    for r in records:
        level, _metric, _ops = r["record"].split(":")  # level:metric:operations
        want = set(level.split("_")) - {"name"} | ({"model_name"} if "model_name" in level else set())
        want.discard("model")
        groups = [{x.strip() for x in b.split(",")} for b in re.findall(r"by \(([^)]*)\)", r["expr"])]
        # Its labels come from a `by` clause, or from a rule of the same level it builds on.
        assert any(want <= g for g in groups) or r["expr"].startswith(f"{level}:"), r["record"]


def test_pod_monitors_scrape_vllm_with_its_own_spelling_and_the_exporter() -> None:
    (vllm,) = _yaml(K8S_ALERTS / "podmonitor-vllm.yaml")
    (exporter,) = _yaml(K8S_ALERTS / "podmonitor-rerank-doctor.yaml")
    assert vllm["kind"] == exporter["kind"] == "PodMonitor"
    relabel = vllm["spec"]["podMetricsEndpoints"][0]["metricRelabelings"][0]
    assert relabel["regex"] == "vllm_(.+)" and relabel["replacement"] == "vllm:$1"
    assert "metricRelabelings" not in exporter["spec"]["podMetricsEndpoints"][0]


def test_dashboards_ship_as_configmaps_the_grafana_sidecar_loads() -> None:
    maps = _yaml(K8S_DASHBOARDS / "configmap-dashboards.yaml")
    assert {m["metadata"]["name"] for m in maps} == {
        "rerank-doctor-fleet-dashboard",
        "rerank-doctor-overview-dashboard",
    }
    for m in maps:
        assert m["metadata"]["labels"] == {"grafana_dashboard": "1"}
        for text in m["data"].values():
            assert json.loads(text)["uid"].startswith("rerank-doctor-")
    fleet = json.loads((K8S_DASHBOARDS / "rerank-doctor-fleet.json").read_text())
    assert [v["name"] for v in fleet["templating"]["list"]] == ["namespace", "pod"]
    assert fleet["panels"][0]["type"] == "table"


def test_every_fleet_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    fleet = json.loads((K8S_DASHBOARDS / "rerank-doctor-fleet.json").read_text())
    exprs = [t["expr"] for p in fleet["panels"] for t in p["targets"]]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {
                        "record": f"dashboard:query_{i}:check",
                        "expr": e.replace("$namespace", ".*").replace("$pod", ".*"),
                    }
                    for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    check = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
