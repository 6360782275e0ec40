"""build_evidence: deltas over the window, gauges over every dump, and a reason for every unknown.

Small /metrics texts are written inline to exercise one edge each; the real-capture checks read the
0.26 H200 captures through the `captures_dir` fixture.
"""

from __future__ import annotations

import pytest

from diagnose.bundle import read_bundle
from diagnose.derive.evidence import StressSummary, build_evidence
from diagnose.derive.flags import parse_flags
from diagnose.readings import (
    Bundle,
    CollectorIssue,
    GpuSample,
    MetricsDump,
    ProcessSample,
    ServerInfo,
    SocketCensus,
)


def _dump(
    t: float,
    *,
    prompt: float,
    hits: float,
    success: float,
    calls: float,
    queue_sum: float,
    waiting: float = 0.0,
    gen: float = 0.0,
    cpu_s: float = 0.0,
) -> MetricsDump:
    """A minimal vLLM-shaped exposition with the families the evidence reads."""
    text = f"""# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{engine="0",model_name="m"}} {prompt}
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="m"}} {gen}
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{{engine="0",model_name="m"}} {prompt}
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{{engine="0",model_name="m"}} {hits}
# TYPE vllm:request_success_total counter
vllm:request_success_total{{engine="0",finished_reason="stop",model_name="m"}} {success}
vllm:request_success_total{{engine="0",finished_reason="abort",model_name="m"}} 0.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="m"}} {waiting}
# TYPE vllm:request_queue_time_seconds histogram
vllm:request_queue_time_seconds_bucket{{engine="0",le="0.3",model_name="m"}} {success}
vllm:request_queue_time_seconds_bucket{{engine="0",le="+Inf",model_name="m"}} {success}
vllm:request_queue_time_seconds_count{{engine="0",model_name="m"}} {success}
vllm:request_queue_time_seconds_sum{{engine="0",model_name="m"}} {queue_sum}
# TYPE vllm:request_prompt_tokens histogram
vllm:request_prompt_tokens_bucket{{engine="0",le="50.0",model_name="m"}} 0.0
vllm:request_prompt_tokens_bucket{{engine="0",le="100.0",model_name="m"}} {success / 2}
vllm:request_prompt_tokens_bucket{{engine="0",le="200.0",model_name="m"}} {success}
vllm:request_prompt_tokens_bucket{{engine="0",le="+Inf",model_name="m"}} {success}
vllm:request_prompt_tokens_count{{engine="0",model_name="m"}} {success}
vllm:request_prompt_tokens_sum{{engine="0",model_name="m"}} {prompt}
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{{block_size="16",enable_prefix_caching="True",engine="0",\
num_gpu_blocks="512",new_field="x"}} 1.0
# TYPE http_requests_total counter
http_requests_total{{handler="/v1/rerank",method="POST",status="2xx"}} {calls}
http_requests_total{{handler="/health",method="GET",status="2xx"}} {t}
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total {cpu_s}
"""
    return MetricsDump(t_unix=t, text=text)


def _window_bundle(**extra) -> Bundle:
    before = _dump(1000.0, prompt=1000, hits=100, success=10, calls=1, queue_sum=0.01)
    mid = _dump(1005.0, prompt=1500, hits=150, success=15, calls=2, queue_sum=0.02, waiting=7)
    after = _dump(1010.0, prompt=3000, hits=400, success=30, calls=3, queue_sum=0.05, cpu_s=9.5)
    return Bundle(dumps=[after, before, mid], **extra)  # out of order on purpose


def test_counters_are_deltas_between_the_first_and_last_dump():
    ev = build_evidence(_window_bundle())
    assert ev.window_s == pytest.approx(10.0)
    assert ev.shape.prompt_tokens_delta == 2000
    assert ev.traffic.engine_requests_delta == 20 and ev.traffic.engine_requests_per_s == pytest.approx(2.0)
    assert ev.traffic.calls_delta == 2  # /health is not the user's traffic
    assert ev.traffic.docs_per_call == pytest.approx(10.0)
    assert ev.shape.prompt_tokens_per_pair == pytest.approx(100.0)
    assert ev.scheduler.prefix_hit_ratio == pytest.approx(300 / 2000)
    assert ev.scheduler.prefix_queries_per_prompt_token == pytest.approx(1.0)
    assert ev.latency.queue_mean_s == pytest.approx(0.04 / 20)
    assert ev.cpu.api_server_cpu_metrics_pct == pytest.approx(95.0)


def test_gauges_take_the_max_over_every_dump_not_just_the_ends():
    assert build_evidence(_window_bundle()).scheduler.waiting_max == 7


def test_a_quantile_inside_the_first_bucket_is_unknown_with_the_reason():
    ev = build_evidence(_window_bundle())
    assert ev.latency.queue_p95_s is None
    assert "first bucket (≤ 0.3)" in ev.missing["queue_p95_s"]


def test_prompt_length_p99_and_longest_bucket_come_from_the_histogram_delta():
    ev = build_evidence(_window_bundle())
    assert ev.shape.prompt_tokens_max_le == 200.0
    assert 100.0 < ev.shape.prompt_tokens_p99 <= 200.0


def test_cache_config_labels_are_read_by_name_and_kv_size_derived_from_blocks():
    ev = build_evidence(_window_bundle())
    assert (ev.config.block_size, ev.config.enable_prefix_caching, ev.config.num_gpu_blocks) == (
        16,
        True,
        512,
    )
    assert ev.config.kv_cache_size_tokens == 512 * 16


def test_a_counter_reset_inside_the_window_is_not_a_negative_delta():
    restarted = _dump(1010.0, prompt=300, hits=0, success=3, calls=1, queue_sum=0.003)
    ev = build_evidence(
        Bundle(dumps=[_dump(1000.0, prompt=1000, hits=0, success=10, calls=5, queue_sum=0.01), restarted])
    )
    assert ev.shape.prompt_tokens_delta == 300


def test_one_scrape_leaves_counters_unknown_and_says_why_but_keeps_gauges():
    ev = build_evidence(
        Bundle(dumps=[_dump(1000.0, prompt=1, hits=0, success=1, calls=1, queue_sum=0.0, waiting=4)])
    )
    assert ev.shape.prompt_tokens_delta is None
    assert ev.missing["prompt_tokens_delta"].startswith("one scrape: counters need two")
    assert ev.scheduler.waiting_max == 4


def test_no_vllm_families_says_the_server_runs_with_disable_log_stats():
    ev = build_evidence(
        Bundle(dumps=[MetricsDump(1.0, "# TYPE up gauge\nup 1\n"), MetricsDump(2.0, "up 1\n")])
    )
    assert "--disable-log-stats" in ev.missing["queue_mean_s"]


def test_no_gpu_samples_gives_the_collector_reason():
    issue = CollectorIssue(0.0, "gpu", "needs NVML: no GPU on this host")
    ev = build_evidence(_window_bundle(issues=[issue]))
    assert ev.gpu.gpu_util_mean_pct is None
    assert ev.missing["gpu_util_mean_pct"].startswith("needs NVML: no GPU on this host")


def test_gpu_figures_are_those_of_the_busiest_gpu_and_the_median_says_steady():
    samples = [GpuSample(1000.0 + i, 0, u, 1.0, 2.0, 300.0, 1980.0) for i, u in enumerate((95, 96, 97, 10))]
    samples += [GpuSample(1000.0 + i, 1, 5.0, 1.0, 2.0, 100.0, 1980.0) for i in range(4)]
    ev = build_evidence(_window_bundle(gpu=samples))
    assert ev.gpu.gpu_count == 2
    assert ev.gpu.gpu_util_median_pct == pytest.approx(95.5)
    assert ev.gpu.gpu_util_max_pct == 97


def test_process_cpu_by_role_the_busiest_api_server_and_the_host_row():
    rows = []
    for t in (1001.0, 1002.0, 1003.0):
        rows += [
            ProcessSample(t, 0, 0, "HOST_TOTAL", 30.0, None, "host"),
            ProcessSample(
                t, 10, 1, "python3", 99.0, None, "python3 -m vllm.entrypoints.openai.api_server --port 8000"
            ),
            ProcessSample(t, 11, 10, "VLLM::EngineCore", 70.0, None, "VLLM::EngineCore"),
        ]
    ev = build_evidence(_window_bundle(processes=rows))
    assert (ev.cpu.api_server_count, ev.cpu.api_server_cpu_mean_pct) == (1, 99.0)
    assert ev.cpu.engine_core_cpu_mean_pct == 70.0
    assert ev.cpu.host_cpu_mean_pct == 30.0
    assert "GPU builds" in ev.missing["worker_cpu_mean_pct"]


def test_time_wait_is_read_on_the_serving_port_only():
    census = [SocketCensus(1001.0, 8000, {"TIME_WAIT": 1500, "ESTABLISHED": 3}, {"TIME_WAIT": 90000})]
    ev = build_evidence(_window_bundle(sockets=census))
    assert (
        ev.sockets.time_wait_on_port_max,
        ev.sockets.established_on_port_max,
        ev.sockets.serving_port,
    ) == (1500, 3, 8000)


def test_client_view_fills_the_client_fields():
    ev = build_evidence(_window_bundle(), client=StressSummary(latency_mean_s=0.2, latency_p95_s=0.4))
    assert (ev.client.client_mean_s, ev.client.client_p95_s) == (0.2, 0.4)
    assert "client_mean_s" not in ev.missing


def test_every_unknown_field_has_a_reason():
    ev = build_evidence(Bundle())
    unknown = [name for name, value in ev.as_dict().items() if value is None]
    assert unknown and set(unknown) == set(ev.missing)
    assert "no /metrics dump" in ev.missing["queue_mean_s"]


def test_flags_are_parsed_in_every_spelling():
    flags = parse_flags(
        "vllm serve /m --api-server-count=4 --max_num_seqs 256 --no-enable-prefix-caching -tp 2 --api-key ***"
    )
    assert flags["--api-server-count"] == "4" and flags["--max-num-seqs"] == "256"
    assert flags["--no-enable-prefix-caching"] == "true" and flags["--tensor-parallel-size"] == "2"


def test_secret_flag_values_never_reach_the_evidence():
    flags = parse_flags("vllm serve /m --api-key sk-live-123 --hf-token=hf_abc --max-num-batched-tokens 8192")
    assert flags == {
        "--api-key": "<redacted>",
        "--hf-token": "<redacted>",
        "--max-num-batched-tokens": "8192",
    }


def test_flag_values_and_defaults_land_in_the_evidence():
    server = ServerInfo(
        flags="python -m vllm.entrypoints.openai.api_server --max-model-len 4096 "
        "--gpu-memory-utilization 0.85 --no-enable-prefix-caching"
    )
    ev = build_evidence(_window_bundle(server=server))
    assert (ev.config.flag_max_model_len, ev.config.max_model_len, ev.config.flag_gpu_memory_utilization) == (
        4096,
        4096,
        0.85,
    )
    assert (
        ev.config.flag_api_server_count == 1
    )  # the default, since the command line is known and does not set it
    assert ev.config.flag_enable_prefix_caching is False


def test_unknown_command_line_leaves_flags_unknown():
    ev = build_evidence(_window_bundle())
    assert ev.config.flag_api_server_count is None and not ev.config.flags_known
    assert "command line is unknown" in ev.missing["flag_api_server_count"]


# --- the real captures --------------------------------------------------------------------------------


def test_s2_capture_reads_ten_documents_per_call_and_92_percent_prefix_hits(captures_dir):
    ev = build_evidence(read_bundle(captures_dir / "s2_healthy_c8_d10_w100"))
    assert ev.traffic.docs_per_call == pytest.approx(10.0)
    assert ev.scheduler.prefix_hit_ratio == pytest.approx(0.916, abs=0.005)
    assert ev.shape.prompt_tokens_per_pair == pytest.approx(112.7, abs=0.5)
    assert ev.shape.generation_tokens_delta == 0
    assert ev.config.kv_cache_size_tokens == 1_094_464 and ev.config.block_size == 16
    assert ev.cpu.api_server_cpu_mean_pct > 95 and ev.gpu.gpu_util_mean_pct < 30


def test_s1_idle_capture_has_no_traffic_and_no_latency(captures_dir):
    ev = build_evidence(read_bundle(captures_dir / "s1_idle"))
    assert ev.traffic.calls_delta == 0 and ev.traffic.engine_requests_delta == 0
    assert (
        ev.latency.queue_mean_s is None and ev.missing["queue_mean_s"] == "no request finished in the window"
    )


def test_s5_capture_shows_tiny_pairs_and_an_api_server_at_a_core(captures_dir):
    ev = build_evidence(read_bundle(captures_dir / "s5_cpu_bound_tiny_c32_d500_w3"))
    assert ev.traffic.docs_per_call == pytest.approx(500.0)
    assert ev.shape.prompt_tokens_per_pair < 16
    assert ev.cpu.api_server_cpu_mean_pct > 95
    # the API server's own counter agrees with the host samples within a few points
    assert ev.cpu.api_server_cpu_metrics_pct == pytest.approx(ev.cpu.api_server_cpu_mean_pct, abs=10)


def test_a_bundles_stress_report_gives_the_client_view(captures_dir) -> None:
    from diagnose.bundle import read_bundle
    from diagnose.derive.evidence import build_evidence

    bundle = read_bundle(captures_dir / "s3_gpu_saturated_c64_d80_w300")
    assert build_evidence(bundle).client.client_mean_s is None
    bundle.stress = {"latency": {"count": 393, "mean_s": 9.75, "p95_s": 10.4}}
    ev = build_evidence(bundle)
    assert (ev.client.client_mean_s, ev.client.client_p95_s) == (9.75, 10.4)


def test_a_bypass_report_in_the_bundle_feeds_the_api_server_finding(captures_dir) -> None:
    import json
    from pathlib import Path

    from diagnose.bundle import read_bundle
    from diagnose.derive.evidence import build_evidence
    from diagnose.rules.engine import run_rules

    bundle = read_bundle(captures_dir / "s3_gpu_saturated_c64_d80_w300")
    assert build_evidence(bundle).client.bypass_overhead_share is None
    # The H200 bypass of the 0.6B shape (tests/fixtures/gpu-h200-bypass/0.6b): served vs direct, same pairs.
    fixture = Path(__file__).parent / "fixtures" / "gpu-h200-bypass" / "0.6b" / "bypass.json"
    bundle.bypass = json.loads(fixture.read_text())
    ev = build_evidence(bundle)
    assert ev.client.bypass_direct_pairs_per_s == pytest.approx(317.95, abs=0.01)
    assert ev.client.bypass_overhead_share == pytest.approx(0.380, abs=0.001)
    api = next(f for f in run_rules(ev).findings if f.rule_id == "cpu-api-server")
    assert "Bypass: the model alone scored 318 pairs/s" in api.detail
    assert api.numbers["bypass_overhead_share"] == pytest.approx(0.380, abs=0.001)


def test_the_clients_long_tail_is_what_cache_thrash_reads_first() -> None:
    from rules_support import analyze

    from diagnose.rules.cache_thrash import RULE as CACHE_THRASH

    starved = {"kv_cache_size_tokens": 2560, "prompt_tokens_per_pair": 1378.0, "waiting_capacity_max": 14.0}
    finding = analyze(CACHE_THRASH, **starved, client_mean_s=1.0, client_p95_s=4.0)
    assert finding is not None and "long tail: p95 4" in finding.detail
