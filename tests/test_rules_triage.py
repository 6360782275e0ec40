"""Step-1 rules: each severity band and its "not a fault" case, from one or two changed numbers."""

from __future__ import annotations

import pytest
from rules_support import analyze, evidence, severity

from diagnose.report import Severity
from diagnose.rules import (
    cpu_api_server,
    cpu_engine_core,
    cpu_host,
    failures,
    gpu,
    io,
    network_connections,
    network_latency,
)
from diagnose.rules.base import skip_reason
from diagnose.thresholds import Thresholds

GPU = gpu.RULE
API = cpu_api_server.RULE
CORE = cpu_engine_core.RULE
HOST = cpu_host.RULE
TW = network_connections.RULE
NET = network_latency.RULE
FAIL = failures.RULE


@pytest.mark.parametrize("rule", [GPU, API, CORE, HOST, TW, NET, FAIL])
def test_healthy_default_raises_nothing_at_or_above_info(rule):
    assert severity(rule) == Severity.OK


# --- gpu --------------------------------------------------------------------------------------------


def test_gpu_busy_with_queue_growing_is_warning():
    assert severity(GPU, gpu_util_median_pct=92.0, queue_mean_s=0.015) == Severity.WARNING


def test_gpu_steadily_saturated_with_waiting_requests_is_critical():
    finding = analyze(GPU, gpu_util_median_pct=98.0, waiting_max=40.0)
    assert finding is not None and finding.severity == Severity.CRITICAL
    assert "not SM occupancy" in finding.detail
    assert any(s.flag == "--data-parallel-size" and s.proposed == "2" for s in finding.suggestions)


def test_gpu_busy_but_nobody_waits_is_only_info_not_a_fault():
    finding = analyze(GPU, gpu_util_median_pct=97.0, queue_mean_s=0.001, waiting_max=0.0)
    assert finding is not None and finding.severity == Severity.INFO
    assert "keeping up" in finding.title


def test_gpu_busy_without_queue_metrics_is_capped_at_warning_with_medium_confidence():
    finding = analyze(
        GPU, gpu_util_median_pct=99.0, queue_mean_s=None, inference_mean_s=None, waiting_max=None
    )
    assert finding is not None and finding.severity == Severity.WARNING and finding.confidence == "medium"


def test_gpu_brief_spikes_do_not_count_when_the_median_is_low():
    assert severity(GPU, gpu_util_median_pct=50.0, gpu_util_max_pct=100.0, waiting_max=30.0) == Severity.OK


def test_gpu_rule_is_skipped_with_the_nvml_reason_when_there_is_no_gpu():
    ev = evidence(why={"gpu_util_median_pct": "needs NVML: no GPU on this host"}, gpu_util_median_pct=None)
    assert skip_reason(GPU, ev) == "needs gpu_util_median_pct: needs NVML: no GPU on this host"


# --- cpu: API server ----------------------------------------------------------------------------------


def test_api_server_at_a_core_with_frontend_ratio_above_3_is_warning():
    # HTTP 80 ms over queue 2 ms + inference 20 ms = 3.6x
    assert severity(API, api_server_cpu_mean_pct=100.0, http_mean_s=0.080) == Severity.WARNING


def test_api_server_at_a_core_with_frontend_ratio_above_10_is_critical_and_proposes_more_servers():
    finding = analyze(API, api_server_cpu_mean_pct=104.0, http_mean_s=2.5)
    assert finding is not None and finding.severity == Severity.CRITICAL
    knob = finding.suggestions[0]
    assert (knob.flag, knob.direction, knob.current, knob.proposed) == (
        "--api-server-count",
        "raise",
        "1",
        "4",
    )
    assert finding.numbers["frontend_ratio"] == pytest.approx(2.5 / 0.022)


def test_api_server_busy_but_adding_no_latency_is_info():
    assert severity(API, api_server_cpu_mean_pct=95.0, http_mean_s=0.030) == Severity.INFO


def test_api_server_below_the_busy_line_is_not_a_fault_whatever_the_latency():
    assert severity(API, api_server_cpu_mean_pct=60.0, http_mean_s=5.0) == Severity.OK


def test_api_server_cpu_from_metrics_stands_in_when_there_are_no_host_samples():
    finding = analyze(API, api_server_cpu_mean_pct=None, api_server_cpu_metrics_pct=101.0, http_mean_s=1.0)
    assert finding is not None and finding.severity == Severity.CRITICAL
    assert "process_cpu_seconds_total" in finding.detail


def test_api_server_busy_with_no_latency_histograms_is_a_medium_confidence_warning():
    finding = analyze(API, api_server_cpu_mean_pct=100.0, queue_mean_s=None, inference_mean_s=None)
    assert finding is not None and (finding.severity, finding.confidence) == (Severity.WARNING, "medium")


def test_api_server_with_few_documents_per_call_also_suggests_larger_requests():
    finding = analyze(API, api_server_cpu_mean_pct=100.0, http_mean_s=1.0, docs_per_call=2.0)
    assert finding is not None
    assert [s.flag for s in finding.suggestions] == ["--api-server-count", "client: documents per call"]


def test_api_server_count_proposal_doubles_the_current_count_on_warning():
    finding = analyze(
        API,
        api_server_cpu_mean_pct=100.0,
        http_mean_s=0.1,
        flag_api_server_count=4,
        flags={"--api-server-count": "4"},
    )
    assert finding is not None and finding.severity == Severity.WARNING
    assert (finding.suggestions[0].current, finding.suggestions[0].proposed) == ("4", "8")


# --- cpu: engine core ----------------------------------------------------------------------------------


def test_engine_core_at_a_core_with_many_waiting_and_cool_api_servers_is_critical():
    finding = analyze(CORE, engine_core_cpu_mean_pct=99.0, waiting_max=2000.0)
    assert finding is not None and finding.severity == Severity.CRITICAL
    assert finding.suggestions[0].flag == "--data-parallel-size"
    assert "No flag splits one engine core" in finding.detail


def test_engine_core_busy_with_a_short_queue_is_capped_at_warning():
    assert severity(CORE, engine_core_cpu_mean_pct=99.0, waiting_max=20.0) == Severity.WARNING


def test_engine_core_busy_with_nothing_waiting_is_info_not_a_fault():
    assert severity(CORE, engine_core_cpu_mean_pct=99.0, waiting_max=0.0) == Severity.INFO


def test_engine_core_busy_behind_a_hot_api_server_is_only_noted_as_next():
    # The API server limits: calls spend 0.5 s in the frontend for 22 ms in the engine.
    finding = analyze(
        CORE, engine_core_cpu_mean_pct=96.0, waiting_max=50.0, api_server_cpu_mean_pct=104.0, http_mean_s=0.5
    )
    assert finding is not None and finding.severity == Severity.INFO
    assert "next limit" in finding.title


def test_engine_core_binds_when_the_queue_is_in_the_engine_whatever_the_api_servers_cpu():
    # The H200 recording (8 API servers, churn at 200 calls/s of 20 documents): API servers at 113 % each,
    # EngineCore at 112 %, 87,089 waiting, queue 13.1 s + inference 0.1 s, HTTP 13.2 s (1.0x).
    finding = analyze(
        CORE,
        engine_core_cpu_mean_pct=112.0,
        waiting_max=87089.0,
        api_server_cpu_mean_pct=113.0,
        queue_mean_s=13.1,
        inference_mean_s=0.099,
        e2e_mean_s=13.3,
        http_mean_s=13.2,
    )
    assert finding is not None and finding.severity == Severity.CRITICAL
    assert "requests wait in the engine's queue" in finding.detail


def test_engine_core_below_the_busy_line_is_ok():
    assert severity(CORE, engine_core_cpu_mean_pct=70.0, waiting_max=500.0) == Severity.OK


# --- cpu: host ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host_pct", "expected"), [(50.0, Severity.OK), (88.0, Severity.WARNING), (97.0, Severity.CRITICAL)]
)
def test_host_cpu_bands_when_requests_queue(host_pct, expected):
    assert severity(HOST, host_cpu_mean_pct=host_pct, queue_mean_s=0.5) == expected


def test_busy_host_with_nothing_queued_or_waiting_is_only_info():
    # The 2-core CPU lab at 2 calls/s: host 82-87 %, queue 0, nothing waiting (Worker spin-waits).
    finding = analyze(HOST, host_cpu_mean_pct=97.0, worker_cpu_mean_pct=89.0)
    assert finding is not None and finding.severity == Severity.INFO
    assert "spin-waits" in finding.detail


def test_busy_host_with_many_waiting_is_critical():
    assert severity(HOST, host_cpu_mean_pct=97.0, waiting_max=300.0) == Severity.CRITICAL


def test_busy_host_with_no_latency_readings_keeps_its_band_at_medium_confidence():
    finding = analyze(
        HOST, host_cpu_mean_pct=97.0, queue_mean_s=None, waiting_max=None, http_mean_s=None, e2e_mean_s=None
    )
    assert finding is not None and (finding.severity, finding.confidence) == (Severity.CRITICAL, "medium")


# --- network -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("time_wait", "expected"),
    [(500.0, Severity.OK), (4000.0, Severity.WARNING), (20000.0, Severity.CRITICAL)],
)
def test_time_wait_bands_on_the_serving_port(time_wait, expected):
    assert severity(TW, time_wait_on_port_max=time_wait) == expected


def test_time_wait_flood_says_what_share_of_calls_opened_a_connection_and_suggests_keep_alive():
    finding = analyze(TW, time_wait_on_port_max=1200.0, calls_per_s=20.0)
    assert finding is not None
    assert "about 100 % of calls opened a new connection" in finding.detail
    assert finding.suggestions[0].flag == "client: HTTP keep-alive"


@pytest.mark.parametrize(
    ("client_s", "expected"), [(0.045, Severity.OK), (0.095, Severity.WARNING), (0.200, Severity.CRITICAL)]
)
def test_client_latency_over_server_latency_bands(client_s, expected):
    assert severity(NET, client_mean_s=client_s, http_mean_s=0.040) == expected


def test_client_latency_ratio_with_a_tiny_absolute_gap_is_not_a_fault():
    assert severity(NET, client_mean_s=0.004, http_mean_s=0.001) == Severity.OK


def test_network_latency_is_skipped_without_a_stress_report():
    assert skip_reason(NET, evidence(client_mean_s=None)) is not None


# --- io ----------------------------------------------------------------------------------------------


def test_io_rule_is_skipped_because_disk_is_not_collected():
    assert skip_reason(io.RULE, evidence()) == "needs disk_busy_max_pct: disk IO is not collected yet"


@pytest.mark.parametrize(
    ("busy", "expected"), [(10.0, Severity.OK), (85.0, Severity.WARNING), (99.0, Severity.CRITICAL)]
)
def test_io_bands_once_disk_is_known(busy, expected):
    assert severity(io.RULE, disk_busy_max_pct=busy) == expected


# --- failures ----------------------------------------------------------------------------------------


def test_a_few_failures_below_the_warning_share_are_info():
    assert severity(FAIL, finished_by_reason={"stop": 24000.0, "abort": 2.0}) == Severity.INFO


def test_aborts_above_one_in_a_thousand_are_a_warning_with_the_likely_cause():
    finding = analyze(FAIL, finished_by_reason={"stop": 24000.0, "abort": 100.0})
    assert finding is not None and finding.severity == Severity.WARNING
    assert "timeouts" in finding.detail


def test_http_5xx_above_five_percent_of_calls_is_critical():
    assert severity(FAIL, http_5xx_delta=100.0) == Severity.CRITICAL


def test_admission_rejections_count_as_failures():
    finding = analyze(FAIL, admission_rejections_delta=30.0)
    assert finding is not None and finding.severity == Severity.WARNING
    assert "admission rejections" in finding.title


def test_4xx_with_prompts_at_the_length_limit_suggests_raising_max_model_len():
    finding = analyze(FAIL, http_4xx_delta=50.0, prompt_tokens_max_le=1024.0)
    assert finding is not None
    assert [(s.flag, s.direction) for s in finding.suggestions] == [("--max-model-len", "raise")]


def test_custom_thresholds_move_the_bands():
    strict = Thresholds(
        {**Thresholds().as_dict(), "cpu-host": {"busy_warning_pct": 10.0, "busy_critical_pct": 15.0}}
    )
    assert severity(HOST, strict, host_cpu_mean_pct=20.0, queue_mean_s=0.5) == Severity.CRITICAL


def test_network_latency_is_not_blamed_when_the_server_itself_queues() -> None:
    from diagnose.rules.network_latency import RULE as NETWORK_LATENCY

    gap = {"client_mean_s": 5.0, "http_mean_s": 0.5}
    assert severity(NETWORK_LATENCY, **gap) >= Severity.WARNING
    # Past capacity the client's extra wait is the server's backlog, not the network.
    assert severity(NETWORK_LATENCY, **gap, queue_mean_s=2.0, inference_mean_s=0.5) == Severity.OK
