"""The window as time series (diagnose/derive/series.py), on real recordings of vLLM."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from diagnose.bundle import read_bundle
from diagnose.derive.series import window_series
from diagnose.thresholds import merge

FIXTURES = Path(__file__).parent / "fixtures"
GPU_BOUND = FIXTURES / "gpu-h200-4b-8api-open"
CPU_LAB = FIXTURES / "vllm-0.32-cpu-lab"


@pytest.fixture(scope="module")
def gpu_bound():
    bundle = read_bundle(GPU_BOUND / "bundle")
    bundle.stress = json.loads((GPU_BOUND / "stress-0.json").read_text())
    return window_series(bundle)


def test_queue_time_per_interval_climbs_as_the_recording_says(gpu_bound) -> None:
    # tests/fixtures/gpu-h200-4b-8api-open/README.md lists the per-interval means (computed independently
    # by tests/gpu_support.py): 1.09 s in the first 5 s interval up to 11.63 s in the last.
    queue = gpu_bound.series("queue_mean_s")
    expected = [1.09, 2.08, 3.33, 4.41, 5.48, 7.03, 9.24, 11.63]
    assert queue.unit == "s"
    assert [round(v, 2) for v in queue.values if v is not None] == pytest.approx(expected, abs=0.011)
    assert queue.t_s[0] == pytest.approx(5.0, abs=0.1)  # an interval's point is at its end


def test_waiting_gauge_is_read_at_every_dump(gpu_bound) -> None:
    waiting = gpu_bound.series("waiting")
    assert waiting.points == 9
    assert waiting.values[-1] == 5010  # the README's last "waiting at its end"


def test_pairs_per_second_over_the_intervals_match_the_windows_rate(gpu_bound) -> None:
    pairs = gpu_bound.series("pairs_per_s")
    lengths = [b - a for a, b in zip((0.0, *pairs.t_s), pairs.t_s, strict=False)]
    weighted = sum(v * dt for v, dt in zip(pairs.values, lengths, strict=True) if v is not None)
    assert weighted / sum(lengths) == pytest.approx(242.3, rel=0.01)  # README: 242.3 pairs/s
    assert pairs.unit == "/s"


def test_gpu_busy_has_every_sample_and_the_rules_threshold(gpu_bound) -> None:
    chart = gpu_bound.chart("gpu_busy")
    (busy,) = chart.series
    assert busy.points == 40  # one NVML sample a second over the 40 s window
    assert chart.thresholds[0].value == 85.0  # thresholds.py: gpu.busy_warning_pct
    assert 80 < sum(v for v in busy.values if v is not None) / busy.points < 95


def test_a_thresholds_file_moves_the_line() -> None:
    bundle = read_bundle(GPU_BOUND / "bundle")
    limits = merge({"gpu": {"busy_warning_pct": 70.0}})
    assert window_series(bundle, limits).chart("gpu_busy").thresholds[0].value == 70.0


def test_cpu_per_role_follows_the_busiest_process(gpu_bound) -> None:
    api = gpu_bound.series("api_server_cpu_pct")
    assert "busiest of 8" in api.label and api.unit == "%"
    core = gpu_bound.series("engine_core_cpu_pct")
    mean_core = sum(v for v in core.values if v is not None) / core.points
    assert mean_core == pytest.approx(46.6, abs=1.0)  # README: engine_core 46.6 % of one core
    assert "EngineCore" in (gpu_bound.series("worker_cpu_pct").absent or "")


def test_time_wait_is_on_the_serving_port(gpu_bound) -> None:
    tw = gpu_bound.series("time_wait")
    assert "port 8000" in tw.label and tw.points == 8


def test_the_clients_view_is_cut_to_the_window(gpu_bound) -> None:
    client = gpu_bound.series("client_p95_s")
    assert client.t_s[0] == 0.0  # the load started 5 s before collect: not drawn before the window
    assert client.t_s[-1] == pytest.approx(gpu_bound.window_s)
    assert client.values[0] == pytest.approx(12.44, abs=0.01)


def test_without_gpu_sockets_or_processes_each_chart_says_why() -> None:
    series = window_series(read_bundle(CPU_LAB))
    for key in ("gpu_busy", "gpu_power", "gpu_memory"):
        reason = series.chart(key).absent
        assert reason is not None and "NVML" in reason
    assert "socket" in (series.chart("time_wait").absent or "")
    assert "CPU" in (series.chart("cpu").absent or "")
    for chart in series.charts:
        for s in chart.series:
            assert (s.absent is None) == (s.points > 0), s.key  # no empty series without a reason


def test_the_cpu_lab_interval_holds_its_80_engine_requests() -> None:
    # README: +80 request_success and +10 /v1/rerank calls between the two dumps.
    series = window_series(read_bundle(CPU_LAB))
    (pairs,) = series.series("pairs_per_s").values
    (calls,) = series.series("calls_per_s").values
    assert pairs is not None and calls is not None
    assert pairs * series.window_s == pytest.approx(80)
    assert calls * series.window_s == pytest.approx(10)
    assert series.series("http_p95_s").points == 1


def test_disable_log_stats_names_the_flag() -> None:
    series = window_series(read_bundle(FIXTURES / "vllm-0.32-cpu-lab-disable-log-stats"))
    assert "--disable-log-stats" in (series.chart("latency").absent or "")


def test_a_healthy_h200_p95_inside_the_first_bucket_is_a_stated_gap(captures_dir: Path) -> None:
    series = window_series(read_bundle(captures_dir / "s2_healthy_c8_d10_w100"))
    p95 = series.series("queue_p95_s")
    assert p95.points == 0 and "first bucket" in (p95.absent or "")
    assert series.series("queue_mean_s").points == 10
    assert series.series("api_server_cpu_pct").points > 40


def test_a_window_of_one_interval_charts_what_the_rules_read() -> None:
    # Two dumps: the one interval IS the window, so each point must be the evidence's number.
    from diagnose.derive.evidence import build_evidence

    bundle = read_bundle(CPU_LAB)
    series = window_series(bundle)
    ev = build_evidence(bundle)
    for key, number in (
        ("queue_mean_s", ev.latency.queue_mean_s),
        ("queue_p95_s", ev.latency.queue_p95_s),
        ("e2e_mean_s", ev.latency.e2e_mean_s),
        ("http_p95_s", ev.latency.http_p95_s),
        ("calls_per_s", ev.traffic.calls_per_s),
        ("pairs_per_s", ev.traffic.engine_requests_per_s),
    ):
        assert number is not None
        assert series.series(key).values == (pytest.approx(number),), key


def test_a_hand_run_ss_s_is_named_as_host_wide_not_charted(tmp_path: Path) -> None:
    # tests/fixtures/sockets/ss-s.txt is a recorded `ss -s`: one host-wide reading, no serving port.
    shutil.copy(CPU_LAB / "metrics.prom", tmp_path / "metrics.prom")
    shutil.copy(FIXTURES / "sockets" / "ss-s.txt", tmp_path / "ss-s.txt")
    chart = window_series(read_bundle(tmp_path)).chart("time_wait")
    assert chart.absent is not None and "host-wide only: 330 TIME_WAIT" in chart.absent


def test_a_critical_line_is_drawn_only_once_the_judged_series_pass_the_warning(gpu_bound) -> None:
    # GPU-bound: the queue reaches seconds, past 0.2 s, so the 1 s critical line is drawn too.
    assert [t.value for t in gpu_bound.chart("latency").thresholds] == [0.2, 1.0]
    # API-server-bound H200 0.6B run: the queue stays in milliseconds (e2e reaches 0.4 s, but the
    # queue's lines judge the queue): the warning line alone says how much headroom there is.
    calm = window_series(read_bundle(FIXTURES / "gpu-h200-0.6b-1api-closed" / "bundle"))
    assert [t.value for t in calm.chart("latency").thresholds] == [0.2]
    assert max(v for v in calm.series("e2e_p95_s").values if v is not None) > 0.2


def test_a_bundle_of_gpu_samples_alone_says_there_is_no_metrics_dump(tmp_path: Path) -> None:
    shutil.copy(GPU_BOUND / "bundle" / "nvidia-smi.csv", tmp_path / "nvidia-smi.csv")
    series = window_series(read_bundle(tmp_path))
    assert series.series("gpu_util_pct").points == 40  # time counts from the first GPU sample
    assert series.series("gpu_util_pct").t_s[0] == 0.0
    for key in ("latency", "calls", "pairs", "scheduler"):
        reason = series.chart(key).absent or ""
        assert "/metrics" in reason and "vllm: families" not in reason, (key, reason)
