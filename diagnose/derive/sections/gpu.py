"""The GPU (NVML, or nvidia-smi's CSV): per-GPU statistics over the window, and the busiest GPU as the
evidence the rules read. The exporter serves the same per-GPU statistics."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from diagnose.derive.section import Section, build, group, num, unknown
from diagnose.readings import GpuSample

FIELDS = (
    "gpu_count",
    "gpu_util_mean_pct",
    "gpu_util_median_pct",
    "gpu_util_max_pct",
    "gpu_power_mean_w",
    "gpu_power_max_w",
    "gpu_memory_used_max_mib",
    "gpu_sm_clock_min_mhz",
)


@dataclass(frozen=True, slots=True)
class GpuStats:
    """One GPU over the window (None where the GPU did not report the reading)."""

    index: int
    name: str | None
    util_mean_pct: float | None  # utilization.gpu: share of time a kernel ran, NOT SM occupancy
    util_median_pct: float | None
    util_max_pct: float | None
    power_mean_w: float | None
    power_max_w: float | None
    memory_used_max_mib: float | None
    memory_used_last_mib: float | None
    memory_total_mib: float | None
    sm_clock_min_mhz: float | None
    sm_clock_mean_mhz: float | None


def _known(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def gpu_stats(samples: Iterable[GpuSample]) -> tuple[GpuStats, ...]:
    """Per-GPU statistics, by GPU index."""
    by_index: dict[int, list[GpuSample]] = {}
    for s in sorted(samples, key=lambda s: s.t_unix):
        by_index.setdefault(s.index, []).append(s)
    out = []
    for index, rows in sorted(by_index.items()):
        util = _known(r.util_pct for r in rows)
        power = _known(r.power_w for r in rows)
        # A sample that stands for an interval carries its own highest reading.
        util_peaks = _known(r.util_pct if r.util_max_pct is None else r.util_max_pct for r in rows)
        power_peaks = _known(r.power_w if r.power_max_w is None else r.power_max_w for r in rows)
        memory = _known(r.memory_used_mib for r in rows)
        clock = _known(r.sm_clock_mhz for r in rows)
        last = rows[-1]
        out.append(
            GpuStats(
                index=index,
                name=last.name,
                util_mean_pct=statistics.fmean(util) if util else None,
                util_median_pct=statistics.median(util) if util else None,
                util_max_pct=max(util_peaks) if util_peaks else None,
                power_mean_w=statistics.fmean(power) if power else None,
                power_max_w=max(power_peaks) if power_peaks else None,
                memory_used_max_mib=max(memory) if memory else None,
                memory_used_last_mib=last.memory_used_mib,
                memory_total_mib=last.memory_total_mib,
                sm_clock_min_mhz=min(clock) if clock else None,
                sm_clock_mean_mhz=statistics.fmean(clock) if clock else None,
            )
        )
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class Gpu(Section):
    gpu_count: int | None = num("GPUs seen by NVML / nvidia-smi")
    gpu_util_mean_pct: float | None = num(
        "utilization.gpu of the busiest GPU, mean (a kernel ran, NOT SM occupancy)"
    )
    gpu_util_median_pct: float | None = num("same, median (steady when the median is high)")
    gpu_util_max_pct: float | None = num("same, max")
    gpu_power_mean_w: float | None = num("power.draw of the busiest GPU, mean")
    gpu_power_max_w: float | None = num("same, max")
    gpu_memory_used_max_mib: float | None = num("memory.used, max (vLLM reserves the KV cache at start-up)")
    gpu_sm_clock_min_mhz: float | None = num("clocks.sm, min (drops under a power cap)")


def derive_gpu(samples: Iterable[GpuSample], no_samples: str) -> Gpu:
    """The busiest GPU over the window: with tensor parallelism they move together; with replicas the hot
    one matters. `no_samples` is the reason when there are none (e.g. the NVML collector's issue)."""
    stats = gpu_stats(samples)
    if not stats:
        return unknown(Gpu, no_samples)
    busiest = max(stats, key=lambda g: -1.0 if g.util_mean_pct is None else g.util_mean_pct)
    why: dict[str, str] = {}
    if busiest.util_mean_pct is None:
        group(
            why, ["gpu_util_mean_pct", "gpu_util_median_pct", "gpu_util_max_pct"], "NVML gave no utilization"
        )
    values = {
        "gpu_count": len(stats),
        "gpu_util_mean_pct": busiest.util_mean_pct,
        "gpu_util_median_pct": busiest.util_median_pct,
        "gpu_util_max_pct": busiest.util_max_pct,
        "gpu_power_mean_w": busiest.power_mean_w,
        "gpu_power_max_w": busiest.power_max_w,
        "gpu_memory_used_max_mib": busiest.memory_used_max_mib,
        "gpu_sm_clock_min_mhz": busiest.sm_clock_min_mhz,
    }
    return build(Gpu, values, why, default="this GPU does not report it")
