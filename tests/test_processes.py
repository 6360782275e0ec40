"""Roles of vLLM processes and per-role CPU, checked on the real 0.26 H200 captures."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from diagnose.derive.processes import cpu_by_role, role_of
from diagnose.readings import HOST_TOTAL, ProcessSample


def read_proc_csv(path: Path) -> list[ProcessSample]:
    """The captures' proc_cpu_1s.csv (harness/procmon.py) as ProcessSample rows."""
    with path.open(newline="") as f:
        return [
            ProcessSample(
                t_unix=float(row["t_unix"]),
                pid=int(row["pid"]),
                ppid=int(row["ppid"]),
                name=row["name"],
                cpu_percent=float(row["cpu_percent"]),
                rss_mb=float(row["rss_mb"]),
                cmd=row["cmd"],
            )
            for row in csv.DictReader(f)
        ]


@pytest.mark.parametrize(
    ("name", "cmd", "role"),
    [
        ("python3", "python3 -m vllm.entrypoints.openai.api_server --port 8000 --model /m", "api_server"),
        ("vllm", "/venv/bin/python3 /venv/bin/vllm serve /m --port 8000", "api_server"),
        ("python3", "python3 -m vllm.entrypoints.cli.main serve /m --api-server-count 4", "api_server"),
        ("VLLM::APIServer_3", "VLLM::APIServer_3", "api_server"),
        ("python3", "VLLM::APIServer_DP1   ", "api_server"),
        ("VLLM::EngineCore", "VLLM::EngineCore" + " " * 40, "engine_core"),
        ("VLLM::EngineCor", "VLLM::EngineCore_DP0", "engine_core"),  # comm is cut at 15 characters
        ("MYPFX::EngineCore", "MYPFX::EngineCore", "engine_core"),  # VLLM_PROCESS_NAME_PREFIX=MYPFX
        ("VLLM::Worker", "VLLM::Worker", "worker"),
        ("VLLM::Worker_TP1", "VLLM::Worker_TP1", "worker"),
        ("VLLM::DPCoordinator", "VLLM::DPCoordinator", "other"),
        (
            "python3",
            "/opt/venv/bin/python3 -B -c from multiprocessing.resource_tracker import main;main(45)",
            "other",
        ),
        ("bash", "bash -c vllm serve /m --port 8000", "other"),
        ("python3", "python3 -m pytest tests", "other"),
        (HOST_TOTAL, "host", "host"),
    ],
)
def test_role_of_names_each_vllm_process(name: str, cmd: str, role: str) -> None:
    assert role_of(name, cmd) == role


def test_s3_capture_api_server_and_engine_core_means_match_the_captures_readme(captures_dir: Path) -> None:
    # README table, s3_gpu_saturated_c64_d80_w300: API-server CPU mean 105 %, EngineCore 83 %.
    roles = cpu_by_role(read_proc_csv(captures_dir / "s3_gpu_saturated_c64_d80_w300" / "proc_cpu_1s.csv"))
    api, engine = roles["api_server"], roles["engine_core"]
    assert api.mean_pct == pytest.approx(105.2, abs=0.1)
    assert api.max_pct == pytest.approx(114.4)
    assert api.busiest_pid == 2515
    assert api.process_count == 1
    assert api.sample_count == 68
    assert engine.mean_pct == pytest.approx(83.1, abs=0.1)
    assert engine.busiest_pid == 2674
    # The resource_tracker helper is "other", at 0 %.
    assert roles["other"].mean_pct == 0.0
    assert roles["host"].mean_pct == pytest.approx(12.3, abs=0.1)  # percent of all 16 cores
    assert "worker" not in roles  # GPU build, no tensor parallelism: the model runs inside EngineCore


@pytest.mark.parametrize(
    ("scenario", "api_mean", "engine_mean"),
    [
        ("s1_idle", 0.3, 1.6),
        ("s2_healthy_c8_d10_w100", 103.0, 90.9),
        ("s4_kv_pressure_blocks512_c32_d20_w800", 97.4, 77.6),
        ("s5_cpu_bound_tiny_c32_d500_w3", 106.8, 75.4),
    ],
)
def test_every_capture_matches_the_readme_table(
    captures_dir: Path, scenario: str, api_mean: float, engine_mean: float
) -> None:
    roles = cpu_by_role(read_proc_csv(captures_dir / scenario / "proc_cpu_1s.csv"))
    assert roles["api_server"].mean_pct == pytest.approx(api_mean, abs=0.1)
    assert roles["engine_core"].mean_pct == pytest.approx(engine_mean, abs=0.1)


def test_window_keeps_only_samples_that_end_inside_it(captures_dir: Path) -> None:
    samples = read_proc_csv(captures_dir / "s3_gpu_saturated_c64_d80_w300" / "proc_cpu_1s.csv")
    times = sorted({s.t_unix for s in samples})
    # The first samples are the idle baseline before the load: a window after it reads busier.
    whole = cpu_by_role(samples)["api_server"]
    loaded = cpu_by_role(samples, t0=times[4], t1=times[-5])["api_server"]
    assert loaded.sample_count == len(times) - 9
    assert loaded.mean_pct is not None and whole.mean_pct is not None
    assert loaded.mean_pct > whole.mean_pct


def _s(pid: int, name: str, cpu: float | None, t: float = 1.0, cmd: str = "") -> ProcessSample:
    return ProcessSample(t, pid, 1, name, cpu, 100.0, cmd or name)


def test_busiest_api_server_is_judged_not_the_sum() -> None:
    samples = [
        _s(10, "vllm", 1.0, cmd="vllm serve m --api-server-count 3"),  # the launcher only supervises
        _s(11, "VLLM::APIServer_0", 30.0),
        _s(12, "VLLM::APIServer_1", 98.0),
        _s(12, "VLLM::APIServer_1", 100.0, t=2.0),
        _s(13, "VLLM::APIServer_2", 40.0),
    ]
    api = cpu_by_role(samples)["api_server"]
    assert api.busiest_pid == 12
    assert api.mean_pct == pytest.approx(99.0)
    assert api.max_pct == pytest.approx(100.0)
    assert api.process_count == 3  # the launcher is not counted as an API server
    assert api.total_mean_pct == pytest.approx(30.0 + 99.0 + 40.0)


def test_a_role_total_over_some_of_its_processes_is_unknown_not_a_smaller_sum() -> None:
    """One API server never readable: the total of the others would pass for all of them (and the
    busiest's share read 100 % where only it was measured, as fleet mode once reported)."""
    samples = [_s(11, "VLLM::APIServer_0", 60.0), _s(12, "VLLM::APIServer_1", None)]
    api = cpu_by_role(samples)["api_server"]
    assert api.mean_pct == pytest.approx(60.0) and api.process_count == 2
    assert api.total_mean_pct is None


def test_unreadable_cpu_is_unknown_not_zero() -> None:
    roles = cpu_by_role([_s(5, "VLLM::EngineCore", None), _s(5, "VLLM::EngineCore", None, t=2.0)])
    engine = roles["engine_core"]
    assert engine.mean_pct is None
    assert engine.busiest_pid is None
    assert engine.process_count == 1


def test_no_samples_gives_no_roles() -> None:
    assert cpu_by_role([]) == {}
