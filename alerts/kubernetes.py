"""Writes alerts/kubernetes/: the fleet's per-replica rules for Kubernetes (Prometheus Operator).

Run: python alerts/kubernetes.py            (rewrites the files)
     python alerts/kubernetes.py --check    (exit 1 if a committed file differs; tests do this too)

- `fleet.rules.yml`: recording and alerting rules that aggregate `by (namespace, pod, model_name)`, named
  `level:metric:operations` as the Prometheus naming guide and monitoring mixins do
  (`namespace_pod_model_name:rerank_doctor_queue_time_seconds:p95_rate5m`). `promtool check rules` and
  `promtool test rules` read this file.
- `prometheusrule.yaml`: the same groups as a PrometheusRule resource.
- `podmonitor-vllm.yaml`, `podmonitor-rerank-doctor.yaml`: scrape vLLM (with the relabel rule that keeps
  vLLM's `vllm:` spelling on Prometheus 2.x) and the exporter sidecar, both keyed by the pod label that
  `rerank-doctor check --prometheus` groups replicas by.

The selectors are configuration (CONFIG below, the mixin `_config` idea); every vLLM name and both
spellings come from diagnose/metrics/names.py through diagnose.metrics.promql, and the thresholds from
diagnose.thresholds.DEFAULTS, as for alerts/generate.py. Every ratio and quantile is NaN without traffic
(0/0), so no alert fires on an idle replica (alerts/kubernetes/tests/fleet.test.yml checks it).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from diagnose.generated import write_or_check  # noqa: E402
from diagnose.metrics import promql  # noqa: E402
from diagnose.thresholds import DEFAULTS  # noqa: E402

OUT = HERE / "kubernetes"
BY = "namespace, pod, model_name"
LEVEL = "namespace_pod_model_name"
W = "5m"

CONFIG = {
    "namespace": "rerank",  # where the PrometheusRule and PodMonitors live
    "vllm_pod_labels": {"app.kubernetes.io/name": "vllm"},  # the PodMonitors' pod selector
    "vllm_port": "http",  # the vLLM container port's name
    "exporter_port": "rerank-doctor",  # the exporter sidecar's port name (9400)
    "prometheus_labels": {"release": "prometheus"},  # what kube-prometheus-stack selects rules by
}
# A replica serving this many times its fair share (1/n of the model's pairs/s) is out of balance;
# the same ratio `rerank-doctor check --prometheus` uses (diagnose/fleet/summary.py IMBALANCE_RATIO).
IMBALANCE_RATIO = 1.5
QUEUE_P95_WARNING_S = 0.2
QUEUE_P95_CRITICAL_S = 1.0
RUNBOOK = "alerts/RUNBOOK.md"


def _base() -> Any:
    spec = importlib.util.spec_from_file_location("_alerts_generate", HERE / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(metric: str, operation: str) -> str:
    return f"{LEVEL}:rerank_doctor_{metric}:{operation}"


def recording_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for concept, name in (("queue_time", "queue_time_seconds"), ("e2e_latency", "e2e_latency_seconds")):
        rules.append(
            {"record": record(name, f"p95_rate{W}"), "expr": promql.quantile(concept, 0.95, W, by=BY)}
        )
    pairs = promql.rate_sum("request_success", W, by=BY)
    failed = promql.rate_sum("request_success", W, by=BY, matchers='finished_reason=~"error|abort"')
    rules += [
        {"record": record("pairs", f"rate{W}"), "expr": pairs},
        {"record": record("engine_failure", f"ratio_rate{W}"), "expr": f"({failed}) / ({pairs})"},
        {
            "record": record("generation_tokens", f"rate{W}"),
            "expr": promql.rate_sum("generation_tokens", W, by=BY),
        },
        {
            # A replica's share of its model's pairs/s (0-1); NaN when the model serves nothing.
            "record": record("pairs", f"share_rate{W}"),
            "expr": f"{record('pairs', f'rate{W}')}\n/ on (namespace, model_name) group_left\n"
            f"sum by (namespace, model_name) ({record('pairs', f'rate{W}')})",
        },
        {
            "record": "namespace_model_name:rerank_doctor_replicas:count",
            "expr": f"count by (namespace, model_name) ({record('pairs', f'rate{W}')})",
        },
    ]
    return rules


def alerting_rules(base: Any) -> list[dict[str, Any]]:
    alert = base._alert
    api = DEFAULTS["cpu-api-server"]
    fail = DEFAULTS["failures"]
    where = "{{ $labels.pod }} ({{ $labels.namespace }}, {{ $labels.model_name }})"
    rules = []
    for severity, bound in (("warning", QUEUE_P95_WARNING_S), ("critical", QUEUE_P95_CRITICAL_S)):
        rules.append(
            alert(
                "RerankReplicaQueueTimeP95High",
                f"{record('queue_time_seconds', f'p95_rate{W}')} > {bound:g}",
                "5m",
                severity,
                "queue-time",
                f"P95 queue time of {where} is {{{{ $value | humanizeDuration }}}} over {W}"
                f" (above {bound:g} s). Run `rerank-doctor check --prometheus URL` for why.",
                "queue-time",
            )
        )
    for severity, bound in (("warning", fail["warning_ratio"]), ("critical", fail["critical_ratio"])):
        rules.append(
            alert(
                "RerankReplicaFailureRatioHigh",
                f"{record('engine_failure', f'ratio_rate{W}')} > {bound:g}",
                "5m",
                severity,
                "failures",
                f"{{{{ $value | humanizePercentage }}}} of {where}'s engine requests failed over {W}.",
                "failures",
            )
        )
    rules.append(
        alert(
            "RerankReplicaGenerationTokens",
            f"{record('generation_tokens', f'rate{W}')} > 0",
            "5m",
            "warning",
            "generate-endpoint",
            f"{where} generates tokens: a reranker generates none (a generate endpoint is in use).",
            "generate-endpoint",
        )
    )
    rules.append(
        alert(
            "RerankReplicaApiServerSaturated",
            'max by (namespace, pod) (rerank_doctor_process_cpu_percent{role="api_server"})'
            f" >= {api['busy_warning_pct']:g}",
            "5m",
            "warning",
            "cpu-api-server",
            "The busiest API server of {{ $labels.pod }} uses "
            '{{ $value | printf "%.0f" }} % of one core: raise --api-server-count.',
            "cpu-api-server",
        )
    )
    rules.append(
        alert(
            "RerankReplicaImbalance",
            f"{record('pairs', f'share_rate{W}')}\n* on (namespace, model_name) group_left\n"
            f"namespace_model_name:rerank_doctor_replicas:count >= {IMBALANCE_RATIO:g}",
            "15m",
            "warning",
            "imbalance",
            f'{where} serves {{{{ $value | printf "%.1f" }}}}x its fair share of the model\'s pairs/s: '
            "the load balancer favours it (sticky connections?).",
            "imbalance",
        )
    )
    rules.append(
        alert(
            "VllmReplicaDown",
            'up{job=~".*/vllm"} == 0',
            "2m",
            "critical",
            "vllm-down",
            "vLLM in {{ $labels.pod }} ({{ $labels.namespace }}) does not answer /metrics.",
            "vllm-down",
        )
    )
    return rules


def groups(base: Any) -> list[dict[str, Any]]:
    return [
        {"name": "rerank-doctor-fleet-recording", "rules": recording_rules()},
        {"name": "rerank-doctor-fleet-alerts", "rules": alerting_rules(base)},
    ]


def _meta(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": CONFIG["namespace"]}
    if labels:
        meta["labels"] = labels
    return meta


def pod_monitor(name: str, port: str, relabel: bool) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"port": port, "path": "/metrics", "interval": "15s"}
    if relabel:
        # Prometheus 2.x may store `vllm:foo` as `vllm_foo` (prometheus_client >= 0.23): keep vLLM's spelling.
        endpoint["metricRelabelings"] = [
            {
                "sourceLabels": ["__name__"],
                "regex": "vllm_(.+)",
                "targetLabel": "__name__",
                "replacement": "vllm:$1",
            }
        ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": _meta(name, dict(CONFIG["prometheus_labels"])),
        "spec": {
            "selector": {"matchLabels": dict(CONFIG["vllm_pod_labels"])},
            "podMetricsEndpoints": [endpoint],
        },
    }


def files() -> dict[str, str]:
    base = _base()
    header = "# Generated by alerts/kubernetes.py from diagnose/ (names, thresholds): edit that, not this.\n"
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _meta("rerank-doctor-fleet", dict(CONFIG["prometheus_labels"])),
        "spec": {"groups": groups(base)},
    }
    return {
        "fleet.rules.yml": header + base.to_yaml({"groups": groups(base)}),
        "prometheusrule.yaml": header + base.to_yaml(rule),
        "podmonitor-vllm.yaml": header + base.to_yaml(pod_monitor("vllm", str(CONFIG["vllm_port"]), True)),
        "podmonitor-rerank-doctor.yaml": header
        + base.to_yaml(pod_monitor("rerank-doctor", str(CONFIG["exporter_port"]), False)),
    }


def main(argv: list[str]) -> int:
    return write_or_check(files(), OUT, "alerts/kubernetes.py", argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
