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
    total_mean_pct: float | None = None  # every process of the role together (None: not all measured)


@dataclass(frozen=True, slots=True)
class Snapshot:
    report: Report
    window_end_t_unix: float  # wall clock when the window closed
    window_s: float | None  # first to last /metrics dump
    collection_s: float  # wall time the window and its diagnosis took
    gpus: tuple[GpuWindow, ...] = ()
    roles: tuple[RoleWindow, ...] = ()  # percent of ONE core
    host_cpu_mean_ratio: float | None = None  # the whole host, fraction of ALL cores (0-1)
    host_cpu_max_ratio: float | None = None
    serving_port: int | None = None
    port_sockets: dict[str, int] | None = None  # last census on the serving port: state -> count
    host_sockets: dict[str, int] | None = None  # last census, whole host
    # Last census: TIME_WAIT sockets on the port closed in the last RECENT_CLOSE_S (None: no timers seen).
    port_time_wait_recent: int | None = None
    collector_up: dict[str, bool] = field(default_factory=dict)
    vllm_version: str | None = None
    model: str | None = None
    flags: str | None = None  # the vLLM command line, secrets redacted (ServerInfo.flags)


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


def _roles(bundle: Bundle) -> tuple[RoleWindow, ...]:
    """vLLM's processes, in percent of ONE core. The host is not a process: it is exported apart, in the
    unit `check` and bundles give it (a fraction of ALL cores), so one quantity has one unit everywhere."""
    return tuple(
        RoleWindow(role, cpu.mean_pct, cpu.max_pct, cpu.process_count, cpu.total_mean_pct)
        for role, cpu in sorted(cpu_by_role(bundle.processes).items())
        if role != "host"
    )


def _ratio(pct: object) -> float | None:
    return float(pct) / 100.0 if isinstance(pct, (int, float)) else None


def collector_up(bundle: Bundle) -> dict[str, bool]:
    """Which collectors produced readings this window: the one definition for the exporter's
    `rerank_doctor_collector_up` (a host source counts when it saw a vLLM process, not only the host row)."""
    return {
        "vllm": len(bundle.dumps) > 0,
        "gpu": len(bundle.gpu) > 0,
        "host": any(p.name != HOST_TOTAL for p in bundle.processes),
        "sockets": bool(bundle.sockets),
    }


def _last_census(censuses: list[SocketCensus]) -> SocketCensus | None:
    return max(censuses, key=lambda c: c.t_unix) if censuses else None


def build_snapshot(
    bundle: Bundle,
    report: Report,
    *,
    window_end_t_unix: float,
    collection_s: float,
    tcp_states: Iterable[str] = (),
) -> Snapshot:
    """The snapshot of one window. `tcp_states` are the state names to report as 0 when a census ran."""
    census = _last_census(bundle.sockets)
    port_sockets = host_sockets = None
    if census is not None:
        port_sockets = dict.fromkeys(tcp_states, 0) | census.port_states if census.port is not None else None
        host_sockets = dict.fromkeys(tcp_states, 0) | census.host_states
    up = collector_up(bundle)
    return Snapshot(
        report=report,
        window_end_t_unix=window_end_t_unix,
        window_s=report.window_s,
        collection_s=collection_s,
        gpus=_gpus(bundle.gpu),
        roles=_roles(bundle),
        # The report's own numbers (HOST_TOTAL rows, percent of all cores), as a 0-1 ratio.
        host_cpu_mean_ratio=_ratio(report.evidence.get("host_cpu_mean_pct")),
        host_cpu_max_ratio=_ratio(report.evidence.get("host_cpu_max_pct")),
        serving_port=census.port if census is not None else None,
        port_sockets=port_sockets,
        host_sockets=host_sockets,
        port_time_wait_recent=census.port_time_wait_recent if census is not None else None,
        collector_up=up,
        vllm_version=bundle.server.version,
        model=bundle.server.model_id,
        flags=bundle.server.flags,
    )
