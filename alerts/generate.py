"""Writes alerts/rerank-doctor.rules.yml: recording rules for the quantiles and ratios, and the alerts.

Run: python alerts/generate.py            (rewrites the rules file)
     python alerts/generate.py --check    (exit 1 if the committed file differs; tests do this too)

Generated, not hand-written, for two reasons: every vLLM metric name and both spellings come from the
same table the CLI reads (diagnose.metrics.names via diagnose.metrics.promql), and the thresholds come
from diagnose.thresholds.DEFAULTS, so `rerank-doctor check` and the alerts agree on what is bad. The
e2e test builds a variant with short `for:` from the same function (`build_rules(...)`).

Labels on every alert: `severity` (warning|critical, what the Alertmanager example routes on) and
`rule_id` — the id `rerank-doctor check` prints for the same problem. Alerts that watch the monitoring
itself or a plain SLO have ids of their own (ALERT_ONLY_RULE_IDS); there is no CLI rule behind them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from diagnose.metrics import promql  # noqa: E402
from diagnose.thresholds import DEFAULTS  # noqa: E402

RULES_FILE = HERE / "rerank-doctor.rules.yml"
VLLM_JOB = "vllm"  # the job names docker/prometheus/prometheus.yml uses
EXPORTER_JOB = "rerank-doctor"
RUNBOOK = "alerts/RUNBOOK.md"

# Queue-time SLO: not a CLI rule (the CLI explains WHY requests queue; this alert says THAT they do).
QUEUE_P95_WARNING_S = 0.2
QUEUE_P95_CRITICAL_S = 1.0
ALERT_ONLY_RULE_IDS = ("queue-time", "vllm-down", "exporter-down", "exporter-stale")

FAILED_REASONS = "error|abort"  # finished_reason values that are failures (length/stop/repetition are not)
HTTP_5XX = "5..|5xx"  # prometheus-fastapi-instrumentator groups codes as "5xx"; accept exact codes too


def recording_rules(window: str) -> list[dict[str, Any]]:
    w = window
    admin = f'handler!~"{promql.ADMIN_HANDLERS_RE}"'
    rules: list[dict[str, Any]] = []
    for concept, name in (("queue_time", "queue_time_seconds"), ("e2e_latency", "e2e_latency_seconds")):
        for q in (0.5, 0.95, 0.99):
            rules.append(
                {
                    "record": f"rerank_doctor:{name}:p{round(q * 100)}_{w}",
                    "expr": promql.quantile(concept, q, w),
                }
            )
    engine_failed = promql.rate_sum(
        "request_success", w, by="model_name", matchers=f'finished_reason=~"{FAILED_REASONS}"'
    )
    engine_all = promql.rate_sum("request_success", w, by="model_name")
    rules += [
        {
            "record": f"rerank_doctor:engine_failure:ratio_{w}",
            "expr": f"({engine_failed}) / ({engine_all})",
        },
        {
            "record": f"rerank_doctor:http_5xx:ratio_{w}",
            "expr": f'sum(rate(http_requests_total{{status=~"{HTTP_5XX}", {admin}}}[{w}])) '
            f"/ sum(rate(http_requests_total{{{admin}}}[{w}]))",
        },
        {
            # The worst of the two views: a 5xx is a failed call, an engine error/abort a failed document.
            "record": f"rerank_doctor:failure:ratio_{w}",
            "expr": f"max(rerank_doctor:engine_failure:ratio_{w} or rerank_doctor:http_5xx:ratio_{w})",
        },
        {
            "record": f"rerank_doctor:prefix_queries_per_prompt_token:ratio_{w}",
            "expr": f"({promql.rate_sum('prefix_cache_queries', w, by='model_name')}) "
            f"/ ({promql.rate_sum('prompt_tokens', w, by='model_name')})",
        },
        {
            "record": f"rerank_doctor:generation_tokens:rate_{w}",
            "expr": promql.rate_sum("generation_tokens", w, by="model_name"),
        },
        {
            "record": f"rerank_doctor:generation_tokens_per_request:ratio_{w}",
            "expr": f"rerank_doctor:generation_tokens:rate_{w} / ({engine_all})",
        },
    ]
    return rules


def _alert(
    name: str, expr: str, for_: str, severity: str, rule_id: str, summary: str, anchor: str, **labels: str
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, "rule_id": rule_id, **labels},
        "annotations": {
            "summary": summary,
            "runbook": f"{RUNBOOK}#{anchor}",
        },
    }


def alerting_rules(
    window: str, queue_warning_s: float, queue_critical_s: float, queue_for: str
) -> list[dict[str, Any]]:
    w = window
    fail = DEFAULTS["failures"]
    api = DEFAULTS["cpu-api-server"]
    thrash = DEFAULTS["cache-thrash"]
    gen = DEFAULTS["generate-endpoint"]
    rules = []
    for severity, bound in (("warning", queue_warning_s), ("critical", queue_critical_s)):
        rules.append(
            _alert(
                "RerankQueueTimeP95High",
                f"rerank_doctor:queue_time_seconds:p95_{w} > {bound:g}",
                queue_for,
                severity,
                "queue-time",
                "P95 queue time of {{ $labels.model_name }} is {{ $value | humanizeDuration }} over "
                + w
                + f" (above {bound:g} s): requests wait for the engine. Run `rerank-doctor check` for why.",
                "queue-time",
            )
        )
    for severity, bound in (("warning", fail["warning_ratio"]), ("critical", fail["critical_ratio"])):
        rules.append(
            _alert(
                "RerankFailureRatioHigh",
                f"rerank_doctor:failure:ratio_{w} > {bound:g}",
                "5m",
                severity,
                "failures",
                "{{ $value | humanizePercentage }} of requests failed over "
                + w
                + f" (HTTP 5xx or finished_reason {FAILED_REASONS.replace('|', '/')}; above {bound:.3g}).",
                "failures",
            )
        )
    rules.append(
        _alert(
            "RerankApiServerSaturated",
            'max by (instance) (rerank_doctor_process_cpu_percent{role="api_server"})'
            f" >= {api['busy_warning_pct']:g}",
            "5m",
            "warning",
            "cpu-api-server",
            'The busiest vLLM API server uses {{ $value | printf "%.0f" }} % of one core '
            f"(>= {api['busy_warning_pct']:g} %): the frontend is the ceiling. Raise --api-server-count.",
            "cpu-api-server",
        )
    )
    qpt = f"rerank_doctor:prefix_queries_per_prompt_token:ratio_{w}"
    capacity = promql.gauge("waiting_by_reason", "max", by="", matchers='reason="capacity"')
    preempt = promql.rate_sum("preemptions", w)
    rules.append(
        _alert(
            "RerankCacheThrashSuspected",
            f"max({qpt}) >= {thrash['queries_per_prompt_token_warning']:g}\n"
            f"or on() (({capacity}) > 0 and on() ({preempt}) > 0)",
            "10m",
            "warning",
            "cache-thrash",
            "PROVISIONAL: KV-cache thrash signature (prefix-cache lookups at ~2x prompt tokens, or requests "
            'waiting for capacity while preemptions happen); value {{ $value | printf "%.2f" }}.',
            "cache-thrash",
            provisional="true",
        )
    )
    rules.append(
        _alert(
            "RerankGenerationTokens",
            f"rerank_doctor:generation_tokens:rate_{w} > 0",
            "5m",
            "warning",
            "generate-endpoint",
            '{{ $labels.model_name }} generates {{ $value | printf "%.3g" }} tokens/s: '
            "a reranker generates none; a client uses a generate endpoint instead of /v1/rerank or /score.",
            "generate-endpoint",
        )
    )
    rules.append(
        _alert(
            "RerankGenerationTokens",
            f"rerank_doctor:generation_tokens_per_request:ratio_{w}"
            f" >= {gen['tokens_per_request_critical']:g}",
            "5m",
            "critical",
            "generate-endpoint",
            "{{ $labels.model_name }} generates {{ $value | humanize }} tokens per request: scoring goes "
            "through a generate endpoint.",
            "generate-endpoint",
        )
    )
    rules.append(
        _alert(
            "VllmDown",
            f'up{{job="{VLLM_JOB}"}} == 0 or absent(up{{job="{VLLM_JOB}"}})\n'
            'or rerank_doctor_collector_up{collector="vllm"} == 0',
            "1m",
            "critical",
            "vllm-down",
            "vLLM does not answer /metrics ({{ $labels.instance }}{{ $labels.job }}).",
            "vllm-down",
        )
    )
    rules.append(
        _alert(
            "RerankDoctorExporterDown",
            f'up{{job="{EXPORTER_JOB}"}} == 0 or absent(up{{job="{EXPORTER_JOB}"}})',
            "2m",
            "warning",
            "exporter-down",
            "The rerank-doctor exporter is not scraped: no verdict, GPU or per-process CPU series.",
            "exporter-down",
        )
    )
    rules.append(
        _alert(
            "RerankDoctorStale",
            "rerank_doctor_stale == 1",
            "5m",
            "warning",
            "exporter-stale",
            "rerank-doctor serves stale values: its last good window is "
            '{{ with query "rerank_doctor_collection_age_seconds" }}'
            "{{ . | first | value | humanizeDuration }}{{ end }} old.",
            "exporter-stale",
        )
    )
    return rules


def build_rules(
    *,
    window: str = "5m",
    queue_warning_s: float = QUEUE_P95_WARNING_S,
    queue_critical_s: float = QUEUE_P95_CRITICAL_S,
    queue_for: str = "5m",
) -> dict[str, Any]:
    return {
        "groups": [
            {"name": "rerank-doctor-recording", "rules": recording_rules(window)},
            {
                "name": "rerank-doctor-alerts",
                "rules": alerting_rules(window, queue_warning_s, queue_critical_s, queue_for),
            },
        ]
    }


# --- a small YAML writer: enough for rule files, and no YAML library to pin ----------------------------


def to_yaml(value: Any, indent: int = 0) -> str:
    return "".join(_lines(value, indent))


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                out.append(f"{pad}{key}:\n")
                out.extend(_lines(item, indent + 2))
            elif isinstance(item, str) and ("\n" in item or '"' in item):
                # A block scalar keeps PromQL and templates readable: no escaped quotes.
                out.append(f"{pad}{key}: |-\n")
                out.extend(f"{pad}  {line}\n" for line in item.split("\n"))
            else:
                out.append(
                    f"{pad}{key}: {_scalar(item) if not isinstance(item, dict | list) else item or '[]'}\n"
                )
        return out
    if isinstance(value, list):
        for item in value:
            body = _lines(item, indent + 2)
            first = body[0][indent + 2 :] if body else "[]\n"
            out.append(f"{pad}- {first}")
            out.extend(body[1:])
        return out
    return [f"{pad}{_scalar(value)}\n"]


HEADER = "# Generated by alerts/generate.py from diagnose/ (metric names, thresholds): edit that, not this.\n"


def render() -> str:
    return HEADER + to_yaml(build_rules())


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if RULES_FILE.read_text() != text:
            print(f"{RULES_FILE} is out of date: run python alerts/generate.py", file=sys.stderr)
            return 1
        return 0
    RULES_FILE.write_text(text)
    print(f"wrote {RULES_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
