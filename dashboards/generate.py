"""Writes dashboards/rerank-doctor-overview.json: the one Grafana dashboard, from plain Python dicts.

Run: python dashboards/generate.py            (rewrites the JSON)
     python dashboards/generate.py --check    (exit 1 if the committed JSON differs; tests do this too)

No generator library (nothing to pin): panels are dicts in Grafana's dashboard JSON model (schemaVersion
39, Grafana 10/11/12). Every vLLM query comes from diagnose.metrics.promql, so it accepts both spellings
(`vllm:x`, `vllm_x`) and every name vLLM has used (diagnose.metrics.names), newest first. The datasource
is the provisioned one, by its fixed uid (dashboards/provisioning/datasources/prometheus.yml).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from diagnose.metrics import promql  # noqa: E402
from diagnose.report import LABELS  # noqa: E402

OUT = HERE / "rerank-doctor-overview.json"
DATASOURCE = {"type": "prometheus", "uid": "rerank-prometheus"}
R = "$__rate_interval"  # Grafana picks it from the scrape interval (>= 4 scrapes)
NOT_ADMIN = f'handler!~"{promql.ADMIN_HANDLERS_RE}"'


def target(expr: str, legend: str, ref: str, *, instant: bool = False, table: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}
    if instant:
        t["instant"] = True
        t["range"] = False
    if table:
        t["format"] = "table"
    return t


def panel(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    *,
    kind: str = "timeseries",
    unit: str = "short",
    x: int,
    y: int,
    w: int = 8,
    h: int = 8,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    if extra:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(p.get(key), dict):
                p[key] = {**p[key], **value}
            else:
                p[key] = value
    return p


def row(title: str, y: int) -> dict[str, Any]:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
        "panels": [],
    }


def quantiles(concept: str, title: str) -> list[dict[str, Any]]:
    return [
        target(promql.quantile(concept, q, R), f"p{round(q * 100)} {{{{model_name}}}}", ref)
        for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
    ]


def panels() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    y = 0
    out.append(row("Verdict: what rerank-doctor says is the bottleneck", y))
    y += 1
    verdict_mappings = [
        {
            "type": "value",
            "options": {
                "0": {"text": " ", "color": "transparent"},
                "1": {"text": "bottleneck", "color": "red"},
            },
        }
    ]
    out.append(
        panel(
            "Verdict timeline",
            "rerank_doctor_bottleneck{label}: 1 for the label the exporter's last window names "
            f"({', '.join(LABELS)}). `rerank-doctor check --url ...` prints the same verdict "
            "with its numbers.",
            [target("max by (label) (rerank_doctor_bottleneck)", "{{label}}", "A")],
            kind="state-timeline",
            x=0,
            y=y,
            w=14,
            h=8,
            extra={
                "fieldConfig": {
                    "defaults": {
                        "unit": "short",
                        "mappings": verdict_mappings,
                        "color": {"mode": "fixed", "fixedColor": "transparent"},
                    }
                },
                "options": {"showValue": "never", "mergeValues": True},
            },
        )
    )
    out.append(
        panel(
            "Findings now",
            "One row per finding of the last window: rule_id as `rerank-doctor check` prints it, "
            "severity, label.",
            [
                target(
                    "max by (rule_id, severity, label, confidence) (rerank_doctor_finding)",
                    "",
                    "A",
                    instant=True,
                    table=True,
                )
            ],
            kind="table",
            x=14,
            y=y,
            w=10,
            h=8,
        )
    )
    y += 8
    out.append(
        panel(
            "Exporter freshness",
            "Seconds since the exporter's last good window (rerank_doctor_collection_age_seconds); "
            "stale = 1 when vLLM did not answer the latest one.",
            [
                target("max(rerank_doctor_collection_age_seconds)", "age of the last good window", "A"),
                target("max(rerank_doctor_stale)", "stale (1 = values are old)", "B"),
            ],
            unit="s",
            x=0,
            y=y,
            w=24,
            h=4,
        )
    )
    y += 4
    out.append(row("Latency (vLLM histograms, per engine request = per document)", y))
    y += 1
    out.append(
        panel(
            "Queue time P50 / P95 / P99",
            "vllm:request_queue_time_seconds: time an engine request waited before it ran. "
            "Alert: P95 > 200 ms for 5 m (warning), > 1 s (critical).",
            quantiles("queue_time", "queue"),
            unit="s",
            x=0,
            y=y,
            w=12,
        )
    )
    out.append(
        panel(
            "End-to-end latency P50 / P95 / P99",
            "vllm:e2e_request_latency_seconds: arrival to finish of one engine request (one document). "
            "The client's call latency is higher when the API server is the limit.",
            quantiles("e2e_latency", "e2e"),
            unit="s",
            x=12,
            y=y,
            w=12,
        )
    )
    y += 8
    out.append(row("Traffic and failures", y))
    y += 1
    out.append(
        panel(
            "Calls/s and pairs/s",
            "Calls: http_requests_total on the serving handlers (health checks and scrapes excluded). "
            "Pairs: finished engine requests (vllm:request_success_total); "
            "a rerank call with N documents is N.",
            [
                target(f"sum(rate(http_requests_total{{{NOT_ADMIN}}}[{R}]))", "calls/s", "A"),
                target(promql.rate_sum("request_success", R), "pairs/s", "B"),
            ],
            unit="reqps",
            x=0,
            y=y,
        )
    )
    out.append(
        panel(
            "HTTP 4xx / 5xx per second",
            "http_requests_total by status class (serving handlers). 4xx: bad requests (a prompt longer "
            "than --max-model-len is a 400); 5xx: server errors.",
            [
                target(
                    "sum by (status) "
                    f'(rate(http_requests_total{{status=~"4..|5..|4xx|5xx", {NOT_ADMIN}}}[{R}]))',
                    "{{status}}",
                    "A",
                )
            ],
            unit="reqps",
            x=8,
            y=y,
        )
    )
    out.append(
        panel(
            "Engine errors and aborts per second",
            "vllm:request_success_total by finished_reason error and abort (aborts are usually clients that "
            "gave up). Alert: failure ratio > 0.1 % for 5 m.",
            [
                target(
                    promql.rate_sum(
                        "request_success", R, by="finished_reason", matchers='finished_reason=~"error|abort"'
                    ),
                    "{{finished_reason}}",
                    "A",
                )
            ],
            unit="reqps",
            x=16,
            y=y,
        )
    )
    y += 8
    out.append(
        panel(
            "Prompt and generation tokens per second",
            "vllm:prompt_tokens_total and vllm:generation_tokens_total. A reranker generates nothing: "
            "generation above 0 means a client uses a generate endpoint.",
            [
                target(promql.rate_sum("prompt_tokens", R), "prompt tokens/s", "A"),
                target(promql.rate_sum("generation_tokens", R), "generation tokens/s (should be 0)", "B"),
            ],
            x=0,
            y=y,
        )
    )
    out.append(row("Scheduler and cache", y + 8))
    y += 9
    out.append(
        panel(
            "Running and waiting requests",
            "vllm:num_requests_running / _waiting, and waiting by reason (capacity = the per-step token "
            "budget or KV blocks). A reranker's requests finish inside one step: "
            "running rarely reads above 1.",
            [
                target(promql.gauge("running", "sum", by=""), "running", "A"),
                target(promql.gauge("waiting", "sum", by=""), "waiting", "B"),
                target(promql.gauge("waiting_by_reason", "sum", by="reason"), "waiting: {{reason}}", "C"),
            ],
            x=0,
            y=y,
        )
    )
    out.append(
        panel(
            "KV cache usage",
            "vllm:kv_cache_usage_perc (a 0-1 ratio despite the name; gpu_cache_usage_perc before 0.9.2). "
            "A weak signal for rerankers: a pooling request frees its blocks within the step.",
            [target(promql.gauge("kv_usage", "max"), "{{model_name}}", "A")],
            unit="percentunit",
            x=8,
            y=y,
        )
    )
    hits = promql.rate_sum("prefix_cache_hits", R, by="model_name")
    queries = promql.rate_sum("prefix_cache_queries", R, by="model_name")
    out.append(
        panel(
            "Prefix-cache hit ratio",
            "prefix_cache_hits / prefix_cache_queries (tokens; blocks before 0.9). Only full 16-token blocks "
            "are cached: a short query shared by many documents gets 0 hits.",
            [
                target(
                    f"(({hits}) / ({queries})) or {promql.gauge('prefix_cache_hit_rate', 'max')}",
                    "{{model_name}}",
                    "A",
                )
            ],
            unit="percentunit",
            x=16,
            y=y,
        )
    )
    y += 8
    out.append(row("Resources (rerank-doctor exporter: NVML, per-process CPU, sockets)", y))
    y += 1
    out.append(
        panel(
            "GPU utilization",
            "NVML utilization.gpu (share of time a kernel ran, not SM occupancy), "
            "mean over the exporter's window.",
            [target("max by (gpu) (rerank_doctor_gpu_utilization_ratio)", "GPU {{gpu}}", "A")],
            unit="percentunit",
            x=0,
            y=y,
        )
    )
    out.append(
        panel(
            "GPU memory",
            "Used and total. Says little for vLLM: it reserves the KV cache at start-up.",
            [
                target("max by (gpu) (rerank_doctor_gpu_memory_used_bytes)", "used GPU {{gpu}}", "A"),
                target("max by (gpu) (rerank_doctor_gpu_memory_total_bytes)", "total GPU {{gpu}}", "B"),
            ],
            unit="bytes",
            x=8,
            y=y,
        )
    )
    out.append(
        panel(
            "GPU power",
            "Power draw, mean over the exporter's window; at the power cap the SM clock drops.",
            [target("max by (gpu) (rerank_doctor_gpu_power_watts)", "GPU {{gpu}}", "A")],
            unit="watt",
            x=16,
            y=y,
        )
    )
    y += 8
    out.append(
        panel(
            "CPU by vLLM process: API server vs engine core",
            "Busiest process of each role, percent of ONE core (100 = a core saturated): the API server "
            "(HTTP, tokenization) and VLLM::EngineCore (scheduling) each top out at 100. The whole host is "
            "rerank_doctor_host_cpu_ratio (a fraction of ALL cores, as check shows it). On CPU builds "
            "VLLM::Worker spin-waits near 90 % under any load.",
            [
                target(
                    "max by (role) "
                    '(rerank_doctor_process_cpu_percent{role=~"api_server|engine_core|worker"})',
                    "{{role}}",
                    "A",
                )
            ],
            unit="percent",
            x=0,
            y=y,
            w=12,
        )
    )
    out.append(
        panel(
            "TCP TIME_WAIT on the serving port",
            "Sockets on vLLM's port by state (the exporter's census). Thousands in TIME_WAIT = clients open "
            "a connection per call instead of reusing them.",
            [
                target(
                    'max by (port) (rerank_doctor_port_sockets{state="TIME_WAIT"})',
                    "TIME_WAIT :{{port}}",
                    "A",
                ),
                target(
                    'max by (port) (rerank_doctor_port_sockets{state="ESTABLISHED"})',
                    "ESTABLISHED :{{port}}",
                    "B",
                ),
            ],
            x=12,
            y=y,
            w=12,
        )
    )
    for i, p in enumerate(out, start=1):
        p["id"] = i
    return out


def dashboard() -> dict[str, Any]:
    return {
        "uid": "rerank-doctor-overview",
        "title": "rerank-doctor: vLLM reranker overview",
        "description": "Is the reranker slow, and is it the GPU, the CPU, the network or the cache? "
        "Generated by dashboards/generate.py.",
        "tags": ["vllm", "reranker", "rerank-doctor"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [],
        "panels": panels(),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel; for tests."""
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUT.read_text() != text:
            print(f"{OUT} is out of date: run python dashboards/generate.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
