"""Bundles: what collect writes reads back the same; the captures and hand-run folders load too."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from diagnose.bundle import read_bundle, split_dumps, write_bundle
from diagnose.bundle.nvidia_smi import format_nvidia_smi_csv, parse_nvidia_smi_csv
from diagnose.errors import DoctorError
from diagnose.readings import (
    Bundle,
    CollectorIssue,
    GpuProcessMemory,
    GpuSample,
    MetricsDump,
    ProcessSample,
    ServerInfo,
    SocketCensus,
)


def test_capture_folder_loads_with_its_own_file_names(captures_dir: Path) -> None:
    bundle = read_bundle(captures_dir / "s3_gpu_saturated_c64_d80_w300")
    # metrics_series_5s.txt holds one dump per `### capture` line.
    markers = (
        (captures_dir / "s3_gpu_saturated_c64_d80_w300" / "metrics_series_5s.txt")
        .read_text()
        .count("### capture t_unix=")
    )
    assert len(bundle.dumps) == markers > 2
    assert bundle.dumps[0].t_unix < bundle.dumps[-1].t_unix
    assert all(d.text.lstrip().startswith("# HELP") for d in bundle.dumps)
    # The GPU log is the H200's; util and memory as nvidia-smi printed them.
    assert bundle.gpu and {g.index for g in bundle.gpu} == {0}
    assert bundle.gpu[0].memory_total_mib == 143771
    assert max(g.util_pct or 0 for g in bundle.gpu) == 49  # the captures' README: s3 GPU max 49 %
    api = [p for p in bundle.processes if "api_server" in p.cmd]
    assert api and max(p.cpu_percent or 0 for p in api) > 95
    assert bundle.server.flags and "--max-model-len 8192" in bundle.server.flags


def test_nvidia_smi_timestamps_line_up_with_the_process_log(captures_dir: Path) -> None:
    bundle = read_bundle(captures_dir / "s1_idle")
    # Both logs were sampled every second over the same minute on the same machine.
    assert abs(bundle.gpu[0].t_unix - bundle.processes[0].t_unix) < 5


def test_round_trip_keeps_every_reading(tmp_path: Path) -> None:
    bundle = Bundle(
        dumps=[MetricsDump(100.0, "a_total 1\n"), MetricsDump(105.5, "a_total 3\n")],
        gpu=[
            GpuSample(100.0, 0, 91.0, 1000.0, 80000.0, 650.5, 1590.0, "NVIDIA H200"),
            GpuSample(100.0, 1, None, 10.0, 80000.0, None, None, "NVIDIA H200"),
        ],
        gpu_processes=[GpuProcessMemory(100.0, 0, 4242, 1234.0), GpuProcessMemory(100.0, 1, 4243, None)],
        processes=[
            ProcessSample(
                100.0, 4242, 1, "python3", 99.5, 512.0, "python -m vllm.entrypoints.openai.api_server, x"
            ),
            ProcessSample(100.0, 0, 0, "HOST_TOTAL", 50.0, 2048.0, "host"),
        ],
        sockets=[
            SocketCensus(100.0, 8000, {"TIME_WAIT": 30000, "ESTABLISHED": 4}, {"TIME_WAIT": 30010}, 412)
        ],
        server=ServerInfo(
            url="http://127.0.0.1:8000", healthy=True, version="0.32.0", model_id="m", max_model_len=2048
        ),
        issues=[CollectorIssue(101.0, "gpu", "NVML failed mid-run", "check the driver")],
        stress={"schema_version": 1, "client": {"p95_s": 0.7}},
    )
    read = read_bundle(write_bundle(bundle, tmp_path / "b"))
    assert list(read.dumps) == bundle.dumps
    assert read.gpu == bundle.gpu
    assert read.gpu_processes == bundle.gpu_processes
    assert read.processes == bundle.processes
    assert read.sockets == bundle.sockets
    assert read.server.max_model_len == 2048 and read.server.version == "0.32.0"
    assert read.issues == bundle.issues
    assert read.stress == bundle.stress


def test_api_key_in_flags_is_never_written(tmp_path: Path) -> None:
    bundle = Bundle(
        dumps=[MetricsDump(1.0, "x 1\n")],
        server=ServerInfo(flags="vllm serve m --api-key sk-very-secret --port 8000"),
    )
    folder = write_bundle(bundle, tmp_path / "b")
    on_disk = "".join(p.read_text() for p in folder.iterdir())
    assert "sk-very-secret" not in on_disk
    assert "--port 8000" in read_bundle(folder).server.flags


def test_hand_run_folder_with_one_unmarked_dump_loads(tmp_path: Path, captures_dir: Path) -> None:
    # What a user has after `curl :8000/metrics > metrics.txt` and `nvidia-smi ... -l 1 > nvidia-smi.csv`.
    shutil.copy(captures_dir / "s2_healthy_c8_d10_w100" / "metrics_end.txt", tmp_path / "metrics.txt")
    shutil.copy(captures_dir / "s2_healthy_c8_d10_w100" / "nvidia_smi_1s.csv", tmp_path / "nvidia-smi.csv")
    bundle = read_bundle(tmp_path)
    assert len(bundle.dumps) == 1 and "vllm:prompt_tokens_total" in bundle.dumps[0].text
    assert len(bundle.gpu) > 10


def test_split_dumps_returns_each_dump_with_its_time() -> None:
    text = "### capture t_unix=10.5\na 1\n### capture t_unix=15.25\na 2\n"
    dumps = split_dumps(text)
    assert [(d.t_unix, d.text) for d in dumps] == [(10.5, "a 1\n"), (15.25, "a 2\n")]


def test_split_dumps_without_marker_is_one_dump_and_empty_is_none() -> None:
    assert split_dumps("a 1\n", 7.0) == [MetricsDump(7.0, "a 1\n")]
    assert split_dumps("   \n") == []


def test_nvidia_smi_na_cells_are_unknown_not_zero() -> None:
    text = (
        "timestamp, utilization.gpu [%], memory.used [MiB], power.draw [W]\n"
        "2026/11/22 21:44:45.675, [N/A], 10 MiB, [Not Supported]\n"
    )
    (sample,), problems = parse_nvidia_smi_csv(text)
    assert sample.util_pct is None and sample.power_w is None and sample.memory_used_mib == 10
    assert problems == []


def test_nvidia_smi_rows_without_index_are_numbered_per_timestamp() -> None:
    samples = [GpuSample(10.0, i, 50.0 + i, 1.0, 2.0, 3.0, 4.0) for i in range(3)]
    text = format_nvidia_smi_csv(samples).replace(", t_unix", "").replace(", index", "")
    # Drop the t_unix and index cells too, leaving what plain nvidia-smi prints.
    lines = text.splitlines()
    body = [", ".join(c for j, c in enumerate(line.split(", ")) if j not in (1, 2)) for line in lines[1:]]
    parsed, _ = parse_nvidia_smi_csv("\n".join([lines[0], *body]))
    assert [g.index for g in parsed] == [0, 1, 2]
    assert [g.util_pct for g in parsed] == [50.0, 51.0, 52.0]


def test_nvidia_smi_log_without_timestamp_says_how_to_run_it() -> None:
    samples, problems = parse_nvidia_smi_csv("utilization.gpu [%]\n5 %\n")
    assert samples == [] and "--query-gpu=timestamp" in problems[0]


def test_missing_folder_and_empty_folder_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DoctorError, match="no bundle folder") as err:
        read_bundle(tmp_path / "nope")
    assert "collect --out" in err.value.one_line()
    with pytest.raises(DoctorError, match="nothing rerank-doctor can read"):
        read_bundle(tmp_path)


def test_non_utf8_metrics_are_read_with_an_issue(tmp_path: Path) -> None:
    (tmp_path / "metrics.prom").write_bytes(b"vllm:num_requests_waiting 1.0\n\xff\xfe bad\n")
    bundle = read_bundle(tmp_path)
    assert "vllm:num_requests_waiting 1.0" in bundle.dumps[0].text
    assert any("not UTF-8" in i.reason for i in bundle.issues)


def test_malformed_issue_and_server_files_do_not_lose_the_metrics(tmp_path: Path) -> None:
    (tmp_path / "metrics.prom").write_text("x 1\n")
    (tmp_path / "issues.json").write_text("{not json")
    (tmp_path / "server.json").write_text("[1, 2]")
    bundle = read_bundle(tmp_path)
    assert bundle.dumps and len(bundle.issues) == 2
