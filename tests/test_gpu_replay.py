"""Replays the H200 recordings (tests/fixtures/gpu-h200-*, made by tests/gpu/run_h200.sh on a real H200
with real vLLM 0.26.0; each folder's README.md says how).

What is checked, and why these tolerances:
- collect's GPU numbers (NVML through diagnose/collect/gpu.py) against nvidia-smi's own 1 s log taken beside
  it. Both read the same driver counters, but at different instants (two unsynchronised 1 Hz loops), and
  utilization.gpu is itself the busy share of the driver's last sample period. Under the 0.6B shape's
  bursty load single paired samples differ by up to 24 points, yet over a 30-40 s window the means of
  every recording agree within 1.1 points of utilization, 0.8 W of power and 18 MHz (1.1 %) of SM clock.
  The tolerances (3 points, 2 %, 3 %) keep a margin over that and still fail a unit slip (0-1 ratio vs
  percent, mW vs W, kHz), a wrong GPU index or a reading frozen at its first value.
- memory.used is held to a stricter rule: a CONSTANT offset of at most 1 GiB. nvidia-smi reports used
  memory without what the driver reserves; NVML's v1 `nvmlDeviceGetMemoryInfo` (what collect reads)
  includes it: 615 MiB on this H200 in every sample.
- the workload facts issue 6 asked for: the 4B shape binds the GPU (power-capped at ~690 of 700 W, NVML
  busy ~90 %), open-loop overload makes queue time grow, and more API servers raise pairs/s for the 0.6B
  shape (API-server-bound) but not for the 4B shape (GPU-bound).
The one test that needs a live GPU is marked `gpu` and skips, saying so, where there is none.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from gpu_support import compare_gpu, queue_steps, reference_samples, stress_reports, summarize

from diagnose.bundle.read import read_bundle
from diagnose.derive.processes import cpu_by_role

FIXTURES = Path(__file__).parent / "fixtures"
WINDOWS = (
    "gpu-h200-4b-8api-closed",
    "gpu-h200-4b-8api-open",
    "gpu-h200-4b-1api-closed",
    "gpu-h200-0.6b-1api-closed",
    "gpu-h200-0.6b-8api-closed",
)
UTIL_MEAN_TOL_PCT = 3.0  # points of utilization.gpu
POWER_MEAN_TOL = 0.02  # share of the reference mean
CLOCK_MEAN_TOL = 0.03  # share of the reference mean
MEMORY_OFFSET_MAX_MIB = 1024.0
POWER_LIMIT_W = 700.0  # this H200's enforced limit (nvidia-smi power.limit in every reference row)


def _agreement(name: str):
    folder = FIXTURES / name
    meta = json.loads((folder / "meta.json").read_text())
    bundle = read_bundle(folder / "bundle")
    ref = reference_samples((folder / "reference-nvidia-smi.csv").read_text(), meta["utc_offset"])
    return bundle, compare_gpu(bundle.gpu, ref)


@pytest.mark.parametrize("name", WINDOWS)
def test_every_collect_gpu_sample_has_an_nvidia_smi_sample_within_0_6_s(name: str) -> None:
    bundle, agreement = _agreement(name)
    assert len(bundle.gpu) >= 29
    assert agreement["util_pct"].pairs == len(bundle.gpu)


@pytest.mark.parametrize("name", WINDOWS)
def test_collect_gpu_utilization_mean_matches_nvidia_smi_within_3_points(name: str) -> None:
    _, agreement = _agreement(name)
    util = agreement["util_pct"]
    assert util.ours_mean is not None and util.ref_mean is not None
    assert abs(util.ours_mean - util.ref_mean) <= UTIL_MEAN_TOL_PCT


@pytest.mark.parametrize("name", WINDOWS)
def test_collect_power_and_sm_clock_means_match_nvidia_smi(name: str) -> None:
    _, agreement = _agreement(name)
    power, clock = agreement["power_w"], agreement["sm_clock_mhz"]
    assert power.ours_mean is not None and power.ref_mean is not None
    assert abs(power.ours_mean - power.ref_mean) <= POWER_MEAN_TOL * power.ref_mean
    assert clock.ours_mean is not None and clock.ref_mean is not None
    assert abs(clock.ours_mean - clock.ref_mean) <= CLOCK_MEAN_TOL * clock.ref_mean


@pytest.mark.parametrize("name", WINDOWS)
def test_collect_memory_used_differs_from_nvidia_smi_by_one_constant_reserved_offset(name: str) -> None:
    folder = FIXTURES / name
    meta = json.loads((folder / "meta.json").read_text())
    bundle = read_bundle(folder / "bundle")
    ref = reference_samples((folder / "reference-nvidia-smi.csv").read_text(), meta["utc_offset"])
    offsets = set()
    for s in bundle.gpu:
        near = min(ref, key=lambda r: abs(r.t_unix - s.t_unix))
        assert s.memory_used_mib is not None and near.memory_used_mib is not None
        offsets.add(round(s.memory_used_mib - near.memory_used_mib))
        assert s.memory_total_mib == near.memory_total_mib == 143771
    assert len(offsets) == 1
    (offset,) = offsets
    assert 0 < offset <= MEMORY_OFFSET_MAX_MIB


def test_the_4b_shape_binds_the_gpu_at_its_power_cap_with_8_api_servers() -> None:
    for name in ("gpu-h200-4b-8api-closed", "gpu-h200-4b-8api-open"):
        folder = FIXTURES / name
        bundle, agreement = _agreement(name)
        assert agreement["util_pct"].ref_mean is not None and agreement["util_pct"].ref_mean >= 88.0
        assert agreement["util_pct"].ours_mean is not None and agreement["util_pct"].ours_mean >= 88.0
        assert agreement["power_w"].ours_mean is not None
        assert agreement["power_w"].ours_mean >= 0.97 * POWER_LIMIT_W
        # nvidia-smi names the limiter: the SW power cap bit in every sample inside the window.
        t0, t1 = min(s.t_unix for s in bundle.gpu), max(s.t_unix for s in bundle.gpu)
        meta = json.loads((folder / "meta.json").read_text())
        text = (folder / "reference-nvidia-smi.csv").read_text()
        rows = text.splitlines()[1:]
        ref = reference_samples(text, meta["utc_offset"])
        inside = [r for r, s in zip(rows, ref, strict=True) if t0 - 0.5 <= s.t_unix <= t1 + 0.5]
        assert len(inside) >= 39
        assert all(int(r.rsplit(",", 1)[1], 16) & 0x4 for r in inside)
        # ... and neither the engine core nor any API server is near a full core: the GPU is the limit.
        roles = cpu_by_role(bundle.processes)
        assert roles["engine_core"].mean_pct is not None and roles["engine_core"].mean_pct < 60.0
        assert roles["api_server"].mean_pct is not None and roles["api_server"].mean_pct < 60.0
        assert roles["api_server"].process_count == 8


def test_open_loop_overload_makes_queue_time_and_waiting_grow_through_the_window() -> None:
    bundle = read_bundle(FIXTURES / "gpu-h200-4b-8api-open" / "bundle")
    steps = queue_steps(bundle)
    assert len(steps) == 8
    means = [s.queue_mean_s for s in steps]
    waiting = [s.waiting for s in steps]
    assert all(m is not None for m in means) and all(w is not None for w in waiting)
    assert all(b > a for a, b in itertools.pairwise(means))  # type: ignore[operator]
    assert means[-1] >= 5 * means[0]  # type: ignore[operator]
    assert all(b > a for a, b in itertools.pairwise(waiting))  # type: ignore[operator]


def test_closed_loop_on_the_gpu_bound_server_holds_a_steady_queue() -> None:
    # The contrast with the open-loop window: a fixed number of callers cannot make the queue grow.
    steps = queue_steps(read_bundle(FIXTURES / "gpu-h200-4b-8api-closed" / "bundle"))
    means = [s.queue_mean_s for s in steps if s.queue_mean_s is not None]
    assert len(means) == 8
    assert max(means) - min(means) < 0.5


def _engine_pairs_per_s(name: str) -> float:
    value = summarize(FIXTURES / name)["engine_pairs_per_s"]
    assert value is not None
    return float(value)


def test_more_api_servers_raise_pairs_per_s_for_the_0_6b_shape_not_for_the_4b_shape() -> None:
    small_1, small_8 = (
        _engine_pairs_per_s("gpu-h200-0.6b-1api-closed"),
        _engine_pairs_per_s("gpu-h200-0.6b-8api-closed"),
    )
    big_1, big_8 = (
        _engine_pairs_per_s("gpu-h200-4b-1api-closed"),
        _engine_pairs_per_s("gpu-h200-4b-8api-closed"),
    )
    assert small_8 >= 1.25 * small_1  # 611 -> 809 pairs/s
    assert abs(big_8 - big_1) <= 0.05 * big_1  # 240 vs 241 pairs/s
    # The clients counted the same traffic within a few percent (a pair the client got back was counted
    # by vLLM as one finished engine request).
    for name in ("gpu-h200-0.6b-1api-closed", "gpu-h200-0.6b-8api-closed", "gpu-h200-4b-1api-closed"):
        reports = stress_reports(FIXTURES / name)
        assert len(reports) == 4
        client = sum(r["pairs_per_s"] for r in reports)
        assert abs(client - _engine_pairs_per_s(name)) <= 0.06 * client


def test_which_process_binds_moves_from_api_server_to_engine_core_with_8_api_servers_on_0_6b() -> None:
    one = cpu_by_role(read_bundle(FIXTURES / "gpu-h200-0.6b-1api-closed" / "bundle").processes)
    eight = cpu_by_role(read_bundle(FIXTURES / "gpu-h200-0.6b-8api-closed" / "bundle").processes)
    assert one["api_server"].process_count == 1 and one["api_server"].mean_pct is not None
    assert one["api_server"].mean_pct >= 100.0
    assert eight["api_server"].process_count == 8 and eight["api_server"].mean_pct is not None
    assert eight["api_server"].mean_pct < 60.0
    assert eight["engine_core"].mean_pct is not None and eight["engine_core"].mean_pct >= 100.0


def test_bypass_scores_agree_for_0_6b_and_are_flagged_for_4b() -> None:
    small = json.loads((FIXTURES / "gpu-h200-bypass" / "0.6b" / "bypass.json").read_text())
    big = json.loads((FIXTURES / "gpu-h200-bypass" / "4b" / "bypass.json").read_text())
    for doc in (small, big):
        assert doc["pairs"] == 640 and doc["batch_size"] == 20
        assert doc["direct"]["device"] == "cuda" and doc["direct"]["device_name"] == "NVIDIA H200"
        assert doc["scores"]["pearson"] > 0.98
    assert small["scores"]["agree"] is True and small["findings"] == []
    assert big["scores"]["agree"] is False
    assert [f["rule_id"] for f in big["findings"]] == ["bypass_scores"]


@pytest.mark.gpu
def test_live_nvml_reads_what_nvidia_smi_reads_on_this_host() -> None:
    """Needs a live NVIDIA GPU: compares one NVML sample (collect's source) with one nvidia-smi query."""
    from diagnose.collect.gpu import NvmlSource

    if shutil.which("nvidia-smi") is None:
        pytest.skip("needs an NVIDIA GPU: no nvidia-smi on this host")
    source = NvmlSource()
    issue = source.start()
    if issue is not None:
        pytest.skip(f"needs an NVIDIA GPU with NVML: {issue.reason}")
    try:
        gpus, _, issue = source.sample()
    finally:
        source.close()
    assert issue is None and gpus
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=index,memory.total,clocks.max.sm", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    rows = [line.split(",") for line in out.strip().splitlines()]
    assert len(rows) == len(gpus)
    for sample, row in zip(sorted(gpus, key=lambda g: g.index), rows, strict=True):
        assert sample.index == int(row[0])
        assert sample.memory_total_mib == pytest.approx(float(row[1]), abs=1.0)
        assert sample.sm_clock_mhz is not None and 0 < sample.sm_clock_mhz <= float(row[2])
