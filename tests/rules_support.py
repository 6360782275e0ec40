"""Helpers for the rule tests: a healthy Evidence to change one or two numbers of (dr-elephant's analyzeJob).

The default describes a moderately loaded, healthy reranker: 20 calls/s of 20 documents, GPU 40 % busy,
the API server at 40 % of a core, nothing waiting, nothing failing. Every rule must stay at or below INFO
on it; each rule test changes what its rule reads and asserts one severity.
"""

from __future__ import annotations

from diagnose.derive.evidence import SECTIONS, Evidence
from diagnose.derive.section import build, field_names
from diagnose.report import Finding, Severity
from diagnose.rules.base import Rule, skip_reason
from diagnose.thresholds import Thresholds

HEALTHY_VALUES: dict[str, object] = dict(
    window_s=60.0,
    dumps=13,
    queue_mean_s=0.002,
    inference_mean_s=0.020,
    inference_p95_s=None,
    prefill_mean_s=0.020,
    e2e_mean_s=0.030,
    http_handler="/v1/rerank",
    http_mean_s=0.040,
    http_p95_s=0.080,
    calls_per_s=20.0,
    calls_delta=1200.0,
    calls_by_handler={"/v1/rerank": 1200.0},
    http_4xx_delta=0.0,
    http_5xx_delta=0.0,
    engine_requests_delta=24000.0,
    engine_requests_per_s=400.0,
    finished_by_reason={"stop": 24000.0, "abort": 0.0, "error": 0.0},
    failed_requests_delta=0.0,
    admission_rejections_delta=0.0,
    docs_per_call=20.0,
    prompt_tokens_delta=7.2e6,
    prompt_tokens_per_s=1.2e5,
    prompt_tokens_per_pair=300.0,
    prompt_tokens_p99=600.0,
    prompt_tokens_max_le=1000.0,
    generation_tokens_delta=0.0,
    tokens_per_step_mean=3000.0,
    engine_steps_per_s=40.0,
    prefix_queries_delta=7.2e6,
    prefix_hits_delta=2.16e6,
    prefix_hit_ratio=0.3,
    prefix_queries_per_prompt_token=1.0,
    prefix_cache_unit="tokens",
    kv_usage_max_ratio=0.05,
    waiting_max=0.0,
    waiting_mean=0.0,
    running_max=1.0,
    waiting_capacity_max=0.0,
    preemptions_delta=0.0,
    gpu_count=1,
    gpu_util_mean_pct=40.0,
    gpu_util_median_pct=40.0,
    gpu_util_max_pct=60.0,
    gpu_power_mean_w=300.0,
    gpu_power_max_w=350.0,
    gpu_memory_used_max_mib=120000.0,
    gpu_sm_clock_min_mhz=1980.0,
    api_server_count=1,
    api_server_cpu_mean_pct=40.0,
    api_server_cpu_max_pct=60.0,
    api_server_cpu_metrics_pct=40.0,
    engine_core_cpu_mean_pct=30.0,
    engine_core_cpu_max_pct=45.0,
    host_cpu_mean_pct=20.0,
    host_cpu_max_pct=30.0,
    serving_port=8000,
    time_wait_on_port_max=20.0,
    established_on_port_max=16.0,
    client_mean_s=0.045,
    client_p95_s=0.090,
    max_model_len=1024,
    block_size=16,
    enable_prefix_caching=True,
    num_gpu_blocks=62500,
    kv_cache_size_tokens=1_000_000,
    gpu_memory_utilization=0.9,
    flags_known=True,
    flags={"--max-model-len": "1024"},
    flag_api_server_count=1,
    flag_data_parallel_size=1,
    flag_max_model_len=1024,
    flag_disable_log_stats=False,
    disk_busy_max_pct=None,
)
HEALTHY_MISSING = {"disk_busy_max_pct": "disk IO is not collected yet"}


def flat_evidence(values: dict[str, object], missing: dict[str, str]) -> Evidence:
    """An Evidence from numbers by field name (names are unique across sections); `missing` gives the
    reason for a None, as a deriver would."""
    top = {k: values[k] for k in ("window_s", "dumps") if k in values}
    unknown = set(values) - set(top) - {n for cls in SECTIONS.values() for n in field_names(cls)}
    assert not unknown, f"not Evidence numbers: {sorted(unknown)}"
    sections = {
        attr: build(cls, {n: values[n] for n in field_names(cls) if n in values}, missing)
        for attr, cls in SECTIONS.items()
    }
    return Evidence(**top, **sections)  # type: ignore[arg-type]


HEALTHY = flat_evidence(HEALTHY_VALUES, HEALTHY_MISSING)


def evidence(why: dict[str, str] | None = None, **changes: object) -> Evidence:
    """The healthy default with `changes` applied (fields set to None get a reason: `why`'s, else a
    test's)."""
    missing = dict(HEALTHY_MISSING)
    for name, value in changes.items():
        if value is None:
            missing[name] = (why or {}).get(name, f"test: {name} unknown")
    return flat_evidence({**HEALTHY_VALUES, **changes}, missing)


def analyze(rule: Rule, thresholds: Thresholds | None = None, **changes: object) -> Finding | None:
    """Run one rule on the healthy default with `changes`; fails the test if the rule would be skipped."""
    ev = evidence(**changes)
    reason = skip_reason(rule, ev)
    assert reason is None, f"{rule.id} would be skipped: {reason}"
    return rule.evaluate(ev, thresholds or Thresholds())


def severity(rule: Rule, thresholds: Thresholds | None = None, **changes: object) -> Severity:
    finding = analyze(rule, thresholds, **changes)
    return Severity.OK if finding is None else finding.severity
