"""What one finished collection window leaves for the exporter to serve: pure, no I/O.

A snapshot is built once per window (every ~15 s), not per scrape: a scrape only formats it. Values keep
the doctor's rule that unknown is None (a series that is not exported), never 0 — except the socket
states of a census that ran: a state the census did not see is a known zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from diagnose.derive.processes import cpu_by_role
from diagnose.derive.sections.gpu import gpu_stats
from diagnose.readings import HOST_TOTAL, Bundle, GpuSample, SocketCensus
from diagnose.report import Report

# Collectors whose health the exporter reports as `rerank_doctor_collector_up{collector}`.
COLLECTORS = ("vllm", "gpu", "host", "sockets")


@dataclass(frozen=True, slots=True)
class GpuWindow:
    """One GPU over the window."""

    index: int
    name: str | None
    util_mean_ratio: float | None  # NVML utilization.gpu, mean over the window, 0-1
    memory_used_bytes: float | None  # last sample
    memory_total_bytes: float | None
    power_mean_w: float | None
    sm_clock_mean_hz: float | None


@dataclass(frozen=True, slots=True)
class RoleWindow:
    """CPU of one process role over the window, percent of ONE core (the busiest process of the role)."""

    role: str
    mean_pct: float | None
    max_pct: float | None
    processes: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    report: Report
    window_end_t_unix: float  # wall clock when the window closed
    window_s: float | None  # first to last /metrics dump
    collection_s: float  # wall time the window and its diagnosis took
    gpus: tuple[GpuWindow, ...] = ()
    roles: tuple[RoleWindow, ...] = ()
    serving_port: int | None = None
    port_sockets: dict[str, int] | None = None  # last census on the serving port: state -> count
    host_sockets: dict[str, int] | None = None  # last census, whole host
    collector_up: dict[str, bool] = field(default_factory=dict)
    vllm_version: str | None = None
    model: str | None = None


def _gpus(samples: list[GpuSample]) -> tuple[GpuWindow, ...]:
    """Per-GPU figures from the evidence's own per-GPU statistics (one computation for both)."""
    return tuple(
        GpuWindow(
            index=g.index,
            name=g.name,
            util_mean_ratio=None if g.util_mean_pct is None else g.util_mean_pct / 100.0,
            memory_used_bytes=None if g.memory_used_last_mib is None else g.memory_used_last_mib * 2**20,
            memory_total_bytes=None if g.memory_total_mib is None else g.memory_total_mib * 2**20,
            power_mean_w=g.power_mean_w,
            sm_clock_mean_hz=None if g.sm_clock_mean_mhz is None else g.sm_clock_mean_mhz * 1e6,
        )
        for g in gpu_stats(samples)
    )


def _roles(bundle: Bundle, host_cpus: int | None) -> tuple[RoleWindow, ...]:
    out = []
    for role, cpu in sorted(cpu_by_role(bundle.processes).items()):
        if role == "host":
            # The HOST_TOTAL row is in percent of ALL cores; times the core count it is in percent of one
            # core like every other role, so one panel can put the host beside the API server.
            if not host_cpus:
                continue
            scale = float(host_cpus)
            mean = None if cpu.mean_pct is None else cpu.mean_pct * scale
            peak = None if cpu.max_pct is None else cpu.max_pct * scale
            out.append(RoleWindow(role, mean, peak, 1))
        else:
            out.append(RoleWindow(role, cpu.mean_pct, cpu.max_pct, cpu.process_count))
    return tuple(out)


def _last_census(censuses: list[SocketCensus]) -> SocketCensus | None:
    return max(censuses, key=lambda c: c.t_unix) if censuses else None


def build_snapshot(
    bundle: Bundle,
    report: Report,
    *,
    window_end_t_unix: float,
    collection_s: float,
    host_cpus: int | None,
    tcp_states: Iterable[str] = (),
) -> Snapshot:
    """The snapshot of one window. `tcp_states` are the state names to report as 0 when a census ran."""
    census = _last_census(bundle.sockets)
    port_sockets = host_sockets = None
    if census is not None:
        port_sockets = dict.fromkeys(tcp_states, 0) | census.port_states if census.port is not None else None
        host_sockets = dict.fromkeys(tcp_states, 0) | census.host_states
    has_host_rows = any(p.name != HOST_TOTAL for p in bundle.processes)
    up = {
        "vllm": len(bundle.dumps) > 0,
        "gpu": len(bundle.gpu) > 0,
        "host": has_host_rows,
        "sockets": census is not None,
    }
    return Snapshot(
        report=report,
        window_end_t_unix=window_end_t_unix,
        window_s=report.window_s,
        collection_s=collection_s,
        gpus=_gpus(bundle.gpu),
        roles=_roles(bundle, host_cpus),
        serving_port=census.port if census is not None else None,
        port_sockets=port_sockets,
        host_sockets=host_sockets,
        collector_up=up,
        vllm_version=bundle.server.version,
        model=bundle.server.model_id,
    )
