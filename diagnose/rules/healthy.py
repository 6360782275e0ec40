"""`healthy`: nothing binds. Shows the headroom, so "healthy" is a claim with numbers, not an absence.

The engine adds this finding only when no other finding is a warning or worse. An idle window (no
requests) is healthy too, but says that nothing was judged under load.
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.report import Finding, Severity
from diagnose.rules.base import Needs, pct, pick, ratio_pct, secs
from diagnose.thresholds import Thresholds


def is_idle(ev: Evidence) -> bool:
    traffic = [v for v in (ev.calls_delta, ev.engine_requests_delta) if v is not None]
    return bool(traffic) and all(v == 0 for v in traffic)


class HealthyRule:
    id = "healthy"
    step = 1
    label = "healthy"
    needs: Needs = ()

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        room = []
        if ev.gpu_util_mean_pct is not None:
            room.append(f"GPU busy {pct(ev.gpu_util_mean_pct)} (max {pct(ev.gpu_util_max_pct)})")
        api = (
            ev.api_server_cpu_mean_pct
            if ev.api_server_cpu_mean_pct is not None
            else ev.api_server_cpu_metrics_pct
        )
        if api is not None:
            room.append(f"busiest API server {pct(api)} of a core")
        if ev.engine_core_cpu_mean_pct is not None:
            room.append(f"EngineCore {pct(ev.engine_core_cpu_mean_pct)} of a core")
        if ev.host_cpu_mean_pct is not None:
            room.append(f"host {pct(ev.host_cpu_mean_pct)} of all cores")
        if ev.kv_usage_max_ratio is not None:
            room.append(f"KV cache at most {ratio_pct(ev.kv_usage_max_ratio)} used")
        if ev.queue_p95_s is not None:
            room.append(f"queue p95 {secs(ev.queue_p95_s)}")
        headroom = "; ".join(room) if room else "no resource readings"
        numbers = pick(
            ev,
            "gpu_util_mean_pct",
            "api_server_cpu_mean_pct",
            "engine_core_cpu_mean_pct",
            "host_cpu_mean_pct",
            "kv_usage_max_ratio",
            "queue_p95_s",
            "http_p95_s",
            "calls_per_s",
        )
        if is_idle(ev):
            window = f"{ev.window_s:.0f} s " if ev.window_s else ""
            return Finding(
                rule_id=self.id,
                label=self.label,
                step=self.step,
                severity=Severity.OK,
                title=f"Idle: no requests in the {window}window",
                detail=f"Nothing was served, so nothing was judged under load. At rest: {headroom}. "
                "Collect again while traffic flows (or run `rerank-doctor stress`).",
                numbers=numbers,
                confidence="low",
            )
        return Finding(
            rule_id=self.id,
            label=self.label,
            step=self.step,
            severity=Severity.OK,
            title="Healthy: no resource binds",
            detail=f"Headroom: {headroom}.",
            numbers=numbers,
        )


RULE = HealthyRule()
