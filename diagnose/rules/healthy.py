"""`healthy`: nothing binds. Shows the headroom, so "healthy" is a claim with numbers, not an absence.

The engine adds this finding only when no other finding is a warning or worse. An idle window (no
requests) is healthy too, but says that nothing was judged under load.
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.cpu import Cpu
from diagnose.derive.sections.gpu import Gpu
from diagnose.derive.sections.latency import Latency
from diagnose.derive.sections.scheduler import Scheduler
from diagnose.derive.sections.traffic import Traffic
from diagnose.report import Finding, Severity
from diagnose.rules.base import Rule, is_idle, pct, pick, ratio_pct, secs
from diagnose.thresholds import Thresholds


class HealthyRule(Rule):
    id = "healthy"
    step = 1
    label = "healthy"
    kind = "advice"
    needs = ()

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        room = []
        if ev.gpu.gpu_util_mean_pct is not None:
            room.append(f"GPU busy {pct(ev.gpu.gpu_util_mean_pct)} (max {pct(ev.gpu.gpu_util_max_pct)})")
        api = (
            ev.cpu.api_server_cpu_mean_pct
            if ev.cpu.api_server_cpu_mean_pct is not None
            else ev.cpu.api_server_cpu_metrics_pct
        )
        if api is not None:
            room.append(f"busiest API server {pct(api)} of a core")
        if ev.cpu.engine_core_cpu_mean_pct is not None:
            room.append(f"EngineCore {pct(ev.cpu.engine_core_cpu_mean_pct)} of a core")
        if ev.cpu.host_cpu_mean_pct is not None:
            room.append(f"host {pct(ev.cpu.host_cpu_mean_pct)} of all cores")
        if ev.scheduler.kv_usage_max_ratio is not None:
            room.append(f"KV cache at most {ratio_pct(ev.scheduler.kv_usage_max_ratio)} used")
        if ev.latency.queue_p95_s is not None:
            room.append(f"queue p95 {secs(ev.latency.queue_p95_s)}")
        headroom = "; ".join(room) if room else "no resource readings"
        numbers = pick(
            ev,
            Gpu.gpu_util_mean_pct,
            Cpu.api_server_cpu_mean_pct,
            Cpu.engine_core_cpu_mean_pct,
            Cpu.host_cpu_mean_pct,
            Scheduler.kv_usage_max_ratio,
            Latency.queue_p95_s,
            Latency.http_p95_s,
            Traffic.calls_per_s,
        )
        if is_idle(ev):
            window = f"{ev.window_s:.0f} s " if ev.window_s else ""
            return self.finding(
                severity=Severity.OK,
                title=f"Idle: no requests in the {window}window",
                detail=f"Nothing was served, so nothing was judged under load. At rest: {headroom}. "
                "Collect again while traffic flows (or run `rerank-doctor stress`).",
                numbers=numbers,
                confidence="low",
            )
        return self.finding(
            severity=Severity.OK,
            title="Healthy: no resource binds",
            detail=f"Headroom: {headroom}.",
            numbers=numbers,
        )


RULE = HealthyRule()
