"""Writes dashboards/kubernetes/: the fleet dashboard and both dashboards as Grafana-sidecar ConfigMaps.

Run: python dashboards/kubernetes.py            (rewrites the files)
     python dashboards/kubernetes.py --check    (exit 1 if a committed file differs; tests do this too)

- `rerank-doctor-fleet.json`: namespace and pod variables, a per-replica table (verdict, pairs/s, its
  share of the model's pairs/s, queue p95, API-server CPU, GPU utilization), and per-replica time series.
  It reads the recording rules of alerts/kubernetes/fleet.rules.yml, the exporter's series and
  dcgm-exporter's, so each number is the one `rerank-doctor check --prometheus` reasons from.
- `configmap-dashboards.yaml`: the fleet and the overview dashboards (dashboards/generate.py) in
  ConfigMaps labelled `grafana_dashboard: "1"`, which kube-prometheus-stack's Grafana sidecar loads.

The panels use dashboards/generate.py's helpers, so the datasource and the JSON model are the same.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from diagnose.generated import write_or_check  # noqa: E402

OUT = HERE / "kubernetes"
NAMESPACE = "rerank"  # where the ConfigMaps live (the Grafana sidecar watches every namespace by default)
SEL = 'namespace=~"$namespace", pod=~"$pod"'
LEVEL = "namespace_pod_model_name"


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _variable(name: str, query: str, label: str) -> dict[str, Any]:
    base = _load(HERE / "generate.py", "_dashboards_generate")
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": base.DATASOURCE,
        "query": {"query": query, "refId": name},
        "definition": query,
        "refresh": 2,  # on time-range change: pods come and go
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
    }


def fleet_dashboard() -> dict[str, Any]:
    base = _load(HERE / "generate.py", "_dashboards_generate")
    target, panel = base.target, base.panel
    rule = f"{LEVEL}:rerank_doctor_"
    table_targets = [
        target(f"sum by (pod) ({rule}pairs:rate5m{{{SEL}}})", "", "B", instant=True, table=True),
        target(f"sum by (pod) ({rule}pairs:share_rate5m{{{SEL}}})", "", "C", instant=True, table=True),
        target(
            f"max by (pod) ({rule}queue_time_seconds:p95_rate5m{{{SEL}}})", "", "D", instant=True, table=True
        ),
        target(
            f'max by (pod) (rerank_doctor_process_cpu_percent{{role="api_server", {SEL}}})',
            "",
            "E",
            instant=True,
            table=True,
        ),
        target(
            f"max by (pod) (DCGM_FI_DEV_GPU_UTIL{{{SEL}}}"
            f" or rerank_doctor_gpu_utilization_ratio{{{SEL}}} * 100)",
            "",
            "F",
            instant=True,
            table=True,
        ),
        target(
            f"max by (pod, label) (rerank_doctor_bottleneck{{{SEL}}} == 1)", "", "G", instant=True, table=True
        ),
    ]
    table = panel(
        "Replicas",
        "One row per replica (pod): its verdict from the exporter sidecar, pairs/s, its share of its model's "
        "pairs/s (above 1/replicas = busier than its fair share), queue p95, the busiest API server's CPU "
        "(percent of one core) and GPU utilization. `rerank-doctor check --prometheus URL` gives the same "
        "per replica, with the reasons.",
        table_targets,
        kind="table",
        x=0,
        y=0,
        w=24,
        h=10,
        extra={
            "transformations": [
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True, "Value #G": True},
                        "renameByName": {
                            "pod": "replica",
                            "label": "verdict",
                            "Value #B": "pairs/s",
                            "Value #C": "share of model",
                            "Value #D": "queue p95 (s)",
                            "Value #E": "API server CPU (% of one core)",
                            "Value #F": "GPU util (%)",
                        },
                    },
                },
            ]
        },
    )
    series = [
        panel(
            "Pairs/s per replica",
            "vllm:request_success_total rate per pod (one rerank call with N documents is N pairs).",
            [target(f"sum by (pod) ({rule}pairs:rate5m{{{SEL}}})", "{{pod}}", "A")],
            unit="reqps",
            x=0,
            y=10,
            w=12,
        ),
        panel(
            "Queue time p95 per replica",
            "vllm:request_queue_time_seconds p95 per pod, 5m rate (NaN, no line, while a pod is idle).",
            [target(f"max by (pod) ({rule}queue_time_seconds:p95_rate5m{{{SEL}}})", "{{pod}}", "A")],
            unit="s",
            x=12,
            y=10,
            w=12,
        ),
    ]
    return {
        "uid": "rerank-doctor-fleet",
        "title": "rerank-doctor: vLLM reranker fleet",
        "description": "Every replica of every model: which are slow, which carry more than their share. "
        "Generated by dashboards/kubernetes.py.",
        "tags": ["vllm", "reranker", "rerank-doctor", "kubernetes"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                _variable("namespace", f"label_values({rule}pairs:rate5m, namespace)", "namespace"),
                _variable(
                    "pod", f'label_values({rule}pairs:rate5m{{namespace=~"$namespace"}}, pod)', "replica"
                ),
            ]
        },
        "annotations": {"list": []},
        "links": [],
        "panels": [{**p, "id": i} for i, p in enumerate([table, *series], start=1)],
    }


def configmap(name: str, filename: str, board_json: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"grafana_dashboard": "1"}},
        "data": {filename: board_json},
    }


def files() -> dict[str, str]:
    base = _load(HERE / "generate.py", "_dashboards_generate")
    yaml = _load(HERE.parent / "alerts" / "generate.py", "_alerts_generate")
    fleet = json.dumps(fleet_dashboard(), indent=2, ensure_ascii=False) + "\n"
    maps = [
        configmap("rerank-doctor-fleet-dashboard", "rerank-doctor-fleet.json", fleet),
        configmap("rerank-doctor-overview-dashboard", "rerank-doctor-overview.json", base.render()),
    ]
    header = "# Generated by dashboards/kubernetes.py: edit that, not this.\n"
    text = header + "---\n".join(yaml.to_yaml(m) for m in maps)
    return {"rerank-doctor-fleet.json": fleet, "configmap-dashboards.yaml": text}


def main(argv: list[str]) -> int:
    return write_or_check(files(), OUT, "dashboards/kubernetes.py", argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
