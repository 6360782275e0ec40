"""The verdict names the binding cause, not the loudest symptom (issue: causes set the label, symptoms
the severity). Each case changes a few numbers of the healthy default to a signature measured on real
vLLM (DESIGN §2 and the recordings named), and asserts the label, the severity and what is contributing."""

from __future__ import annotations

from rules_support import evidence

from diagnose.report import Severity
from diagnose.rules.engine import run_rules


def test_engine_core_at_a_core_with_thousands_waiting_is_cpu_though_the_gpu_is_half_busy() -> None:
    # H200, 8 API servers (tests/fixtures/gpu-h200-0.6b-8api-closed): EngineCore 94 %, 3,000 waiting,
    # GPU 49 %. Queueing is the symptom (critical); the engine core is the cause.
    report = run_rules(
        evidence(
            engine_core_cpu_mean_pct=94.0,
            engine_core_cpu_max_pct=99.0,
            waiting_max=3000.0,
            waiting_mean=1500.0,
            queue_mean_s=2.0,
            inference_mean_s=0.05,
            gpu_util_mean_pct=49.0,
            gpu_util_median_pct=49.0,
            api_server_cpu_mean_pct=30.0,
            api_server_count=8,
            flag_api_server_count=8,
        )
    )
    assert (report.verdict.label, report.verdict.rule_id) == ("cpu", "cpu-engine-core")
    assert report.verdict.severity == Severity.CRITICAL  # set by the queueing symptom
    assert report.verdict.symptom == "queueing"
    assert report.findings[0].rule_id == "cpu-engine-core"


def test_a_kv_cache_that_holds_one_pair_is_cache_thrash_not_gpu() -> None:
    # H200 with --num-gpu-blocks-override (the captures' s4 lead): GPU busy 41 %, one request per step.
    report = run_rules(
        evidence(
            kv_cache_size_tokens=1024,
            num_gpu_blocks=64,
            prompt_tokens_per_pair=800.0,
            waiting_capacity_max=30.0,
            tokens_per_step_mean=800.0,
            engine_steps_per_s=50.0,
            engine_requests_per_s=50.0,
            queue_mean_s=3.0,
            inference_mean_s=0.1,
            gpu_util_mean_pct=41.0,
            gpu_util_median_pct=41.0,
            flags={"--num-gpu-blocks-override": "64"},
        )
    )
    assert report.verdict.label == "cache-thrash"
    assert report.verdict.severity == Severity.CRITICAL


def test_a_time_wait_flood_on_a_busy_host_is_network_with_the_host_contributing() -> None:
    # The lab (tests/test_scenarios_lab.py): 1,310 TIME_WAIT sockets on the port at ~60 calls/s, host 86 %.
    report = run_rules(
        evidence(
            time_wait_on_port_max=1310.0,
            calls_per_s=60.0,
            host_cpu_mean_pct=96.0,
            host_cpu_max_pct=100.0,
            queue_mean_s=0.5,
            inference_mean_s=0.1,
        )
    )
    assert report.verdict.label == "network"
    assert "cpu-host" in report.verdict.contributing
    assert [f.rule_id for f in report.findings[:2]] == ["network-connections", "cpu-host"]


def test_on_the_cpu_build_queueing_is_the_models_compute_in_vllm_worker() -> None:
    # The lab past capacity: the model runs in VLLM::Worker; requests queue 2.6 s for 2.55 s of work.
    report = run_rules(
        evidence(
            queue_mean_s=2.6,
            inference_mean_s=2.55,
            worker_cpu_mean_pct=84.0,
            host_cpu_mean_pct=96.0,
            gpu_count=None,
            gpu_util_mean_pct=None,
            gpu_util_median_pct=None,
            gpu_util_max_pct=None,
        )
    )
    assert (report.verdict.label, report.verdict.rule_id) == ("cpu", "cpu-model")
    model = report.findings[0]
    assert "VLLM::Worker" in model.detail
    assert "cpu-host" in report.verdict.contributing  # explained by the model's compute, kept beside it


def test_past_capacity_with_no_cause_over_its_line_is_undetermined_and_names_what_is_missing() -> None:
    # A GPU at 75 % (under its busy line) and no per-process CPU: queueing alone must not become `gpu`.
    report = run_rules(
        evidence(
            why={
                "engine_core_cpu_mean_pct": "no per-process CPU samples of vLLM (run on the serving host)",
                "api_server_cpu_mean_pct": "no per-process CPU samples of vLLM (run on the serving host)",
                "api_server_cpu_metrics_pct": "no process_cpu_seconds_total (several API servers)",
            },
            queue_mean_s=1.5,
            inference_mean_s=1.0,
            gpu_util_mean_pct=75.0,
            gpu_util_median_pct=75.0,
            engine_core_cpu_mean_pct=None,
            api_server_cpu_mean_pct=None,
            api_server_cpu_metrics_pct=None,
        )
    )
    assert report.verdict.label == "undetermined"
    assert report.verdict.severity == Severity.CRITICAL
    assert report.verdict.confidence == "low"
    assert "run on the serving host" in report.verdict.why


def test_a_cause_with_no_symptom_keeps_its_own_severity() -> None:
    report = run_rules(evidence(gpu_util_median_pct=97.0, gpu_util_mean_pct=97.0, waiting_max=5.0))
    assert report.verdict.label == "gpu"
    assert report.verdict.symptom is None


def test_a_host_wide_time_wait_flood_with_no_port_census_is_network_at_lower_confidence() -> None:
    # A hand-run `ss -s` showing `timewait 6754` and no census of the serving port: a lead, not proof.
    report = run_rules(
        evidence(
            why={"time_wait_on_port_max": "no socket census on the serving port (run on the serving host)"},
            time_wait_on_port_max=None,
            established_on_port_max=None,
            serving_port=None,
            time_wait_host_max=6754.0,
            time_wait_host_source="ss -s",
            calls_per_s=150.0,
        )
    )
    assert report.verdict.label == "network"
    assert report.verdict.severity == Severity.WARNING  # capped: other processes share the host
    assert report.verdict.confidence == "medium"  # 150 calls/s x 60 s could leave them all
    assert "Every process on the host" in report.findings[0].detail


def test_an_api_server_bound_vllm_0_26_is_told_to_upgrade_for_renderer_workers() -> None:
    # vLLM 0.20-0.26 preprocess a rerank call's documents on one thread (vLLM issue #43444; 0.27 PR #49153).
    report = run_rules(
        evidence(
            api_server_cpu_mean_pct=99.0, http_mean_s=2.0, vllm_version="0.26.0", flags={"--port": "8000"}
        )
    )
    assert report.verdict.rule_id == "cpu-api-server"
    renderer = [s for s in report.findings[0].suggestions if s.flag == "--renderer-num-workers"]
    assert renderer and renderer[0].direction == "upgrade" and "0.27" in (renderer[0].proposed or "")
    assert "#43444" in renderer[0].why


def test_an_api_server_bound_vllm_0_34_gets_renderer_workers_without_an_upgrade() -> None:
    report = run_rules(evidence(api_server_cpu_mean_pct=99.0, http_mean_s=2.0, vllm_version="0.34.0"))
    renderer = [s for s in report.findings[0].suggestions if s.flag == "--renderer-num-workers"]
    assert renderer and renderer[0].direction == "raise" and renderer[0].proposed == "4"


def test_a_busy_gpu_with_no_vllm_traffic_is_a_contradiction_never_healthy() -> None:
    report = run_rules(evidence(gpu_util_mean_pct=80.0, engine_requests_delta=0.0, calls_delta=0.0))
    assert report.verdict.label == "undetermined" and report.verdict.confidence == "low"
    assert report.verdict.rule_id == "readings-disagree"


def test_a_bundle_without_metrics_still_diagnoses_from_its_other_files(tmp_path) -> None:
    # The real H200 4B window (GPU-bound by nvidia-smi's own log) minus its /metrics dumps.
    import shutil
    from pathlib import Path

    from diagnose.bundle import read_bundle
    from diagnose.pipeline import diagnose

    source = Path(__file__).parent / "fixtures" / "gpu-h200-4b-8api-open" / "bundle"
    for name in ("nvidia-smi.csv", "processes.csv", "flags.txt", "server.json"):
        shutil.copy(source / name, tmp_path / name)
    report = diagnose(read_bundle(tmp_path))
    assert report.verdict.label == "gpu"
    assert report.verdict.confidence == "medium"  # the queue is unknown without /metrics
    assert any(s.rule_id == "queueing" and "no /metrics" in s.reason for s in report.skipped)


def test_an_uneven_spread_over_api_servers_is_stated_with_the_busiest_share() -> None:
    # DESIGN §2: requests spread unevenly across 8 API servers (62 to 696 each): judge the busiest.
    report = run_rules(
        evidence(
            api_server_cpu_mean_pct=97.0,
            api_server_count=8,
            flag_api_server_count=8,
            api_server_busiest_share_ratio=0.4,
            http_mean_s=2.0,
        )
    )
    finding = report.findings[0]
    assert finding.rule_id == "cpu-api-server"
    assert "did 40% of the API servers' CPU work (evenly: 12%)" in finding.detail
    assert finding.numbers["api_server_busiest_share_ratio"] == 0.4


def test_dumps_that_share_one_capture_time_make_no_window_and_no_confident_health(tmp_path) -> None:
    # Two real lab dumps stamped with the same time: no window, so nothing rate-based is judged.
    from pathlib import Path

    from diagnose.bundle import read_bundle
    from diagnose.pipeline import diagnose

    text = (Path(__file__).parent / "fixtures" / "vllm-0.32-cpu-lab" / "metrics.prom").read_text()
    stamped = "\n".join(
        "### capture t_unix=1796000000.0" if line.startswith("### capture") else line
        for line in text.splitlines()
    )
    (tmp_path / "metrics.prom").write_text(stamped + "\n")
    report = diagnose(read_bundle(tmp_path))
    assert report.window_s is None
    assert "fewer than two distinct capture times" in report.missing["window_s"]
    assert report.verdict.confidence == "low"


def test_a_process_reading_past_the_hosts_cores_is_set_aside_as_suspect() -> None:
    from diagnose.derive.sections.cpu import CpuInputs, derive_cpu
    from diagnose.readings import ProcessSample

    # A counter reset gave "API server at 392 % of one core" on a 2-core host (issue 12).
    samples = [
        ProcessSample(t, 10, 1, "python", 392.0, None, "python -m vllm.entrypoints.openai.api_server")
        for t in (1.0, 2.0, 3.0)
    ]
    cpu = derive_cpu(CpuInputs(samples, (None, None), None, None, None, host_cores=2))
    assert cpu.api_server_cpu_mean_pct is None
    assert "2-core host: suspect" in cpu.missing["api_server_cpu_mean_pct"]
