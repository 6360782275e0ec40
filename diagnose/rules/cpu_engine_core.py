"""Step 1, `cpu` (engine core): the single `VLLM::EngineCore` process is the limit.

Measured on an H200 with `--api-server-count 8` (DESIGN §2): EngineCore at ~100 % of one core (~1.6 ms of
CPU per ~400-token pair, ≈ 630 pairs/s), GPU ~50 %, API servers idle, thousands waiting. Its 100 % is
real scheduling work, and no flag splits one engine core: only more engines (data parallel, replicas)
add scheduling capacity.

Not a fault: EngineCore busy while nothing waits (it keeps up), or busy because the API server is the
limit and feeds it in bursts (cpu-api-server explains that; this rule then only notes it is next). The
API server is the limit only when it adds latency before the engine: a hot API server with the queue
inside the engine does not excuse the engine core.
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.cpu import Cpu
from diagnose.derive.sections.gpu import Gpu
from diagnose.derive.sections.scheduler import Scheduler
from diagnose.derive.sections.shape import Shape
from diagnose.derive.sections.traffic import Traffic
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.base import Rule, current_flag, frontend_ratio, ladder, more_engines, pct, pick
from diagnose.thresholds import Thresholds


class EngineCoreCpuRule(Rule):
    id = "cpu-engine-core"
    step = 1
    label = "cpu"
    needs = (Cpu.engine_core_cpu_mean_pct,)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        cpu = ev.cpu.engine_core_cpu_mean_pct
        busy = ladder(cpu, t["busy_warning_pct"], t["busy_critical_pct"])
        if busy == Severity.OK:
            return None
        numbers = pick(
            ev,
            Cpu.engine_core_cpu_mean_pct,
            Cpu.engine_core_cpu_max_pct,
            Cpu.api_server_cpu_mean_pct,
            Cpu.api_server_busiest_share_ratio,
            Scheduler.waiting_max,
            Scheduler.waiting_mean,
            Gpu.gpu_util_mean_pct,
            Traffic.engine_requests_per_s,
            Shape.tokens_per_step_mean,
        )
        api = (
            ev.cpu.api_server_cpu_mean_pct
            if ev.cpu.api_server_cpu_mean_pct is not None
            else ev.cpu.api_server_cpu_metrics_pct
        )
        head = f"VLLM::EngineCore used {pct(cpu)} of one core on average"
        # A hot API server limits first only when it adds latency before the engine (HTTP >> queue +
        # inference); with the queue inside the engine, requests wait on the scheduler, whatever the API
        # servers' CPU (H200, 8 API servers at 113 % each, EngineCore 112 %, 87,000 waiting).
        ratio, _ = frontend_ratio(ev)
        frontend_adds = ratio is None or ratio >= thresholds.of("cpu-api-server")["frontend_ratio_warning"]
        if api is not None and api >= t["api_server_hot_pct"] and frontend_adds:
            return self.finding(
                severity=Severity.INFO,
                title=f"Engine core busy too ({pct(cpu)}): the next limit once the API server is relieved",
                detail=f"{head}, while the API server is at {pct(api)} of a core and limits first. "
                "After raising --api-server-count, expect the engine core to bind next (measured with a "
                "0.6B reranker on an H200: ~630 pairs/s).",
                numbers=numbers,
            )
        waiting = ladder(ev.scheduler.waiting_max, t["waiting_warning"], t["waiting_critical"], info=0.0)
        gpu = (
            f" GPU busy {pct(ev.gpu.gpu_util_mean_pct)} (NVML mean): it waits on the scheduler."
            if ev.gpu.gpu_util_mean_pct is not None
            else ""
        )
        if ev.scheduler.waiting_max is None:
            severity, confidence = Severity(min(busy, Severity.WARNING)), "medium"
            queue = "The waiting queue is unknown (no vLLM gauges)."
        elif waiting <= Severity.INFO:
            # Not a fault: a busy scheduler that nobody waits for is keeping up.
            return self.finding(
                severity=Severity.INFO,
                title=f"Engine core busy ({pct(cpu)}) but keeping up: at most "
                f"{ev.scheduler.waiting_max:.0f} waiting",
                detail=f"{head}; requests do not pile up behind it yet.{gpu}",
                numbers=numbers,
            )
        else:
            # Capped by relevance: a busy core with a short queue is at most as bad as its queue.
            severity, confidence = Severity(min(busy, waiting)), "high"
            queue = f"Up to {ev.scheduler.waiting_max:.0f} requests waited at a scrape."
        if api is None:
            api_text = ""
        elif api >= t["api_server_hot_pct"]:
            api_text = (
                f" The API servers are busy too ({pct(api)} of a core) but add no latency before the engine "
                f"(HTTP mean {ratio:.1f}× queue + inference): requests wait in the engine's queue."
            )
        else:
            api_text = f" API servers are not hot ({pct(api)})."
        return self.finding(
            severity=severity,
            title=f"Engine-core CPU-bound: VLLM::EngineCore at {pct(cpu)} of one core with requests waiting",
            detail=f"{head}: it schedules every step and that work is serial. {queue}{api_text}{gpu} "
            "No flag splits one engine core; add engines.",
            numbers=numbers,
            suggestions=[
                more_engines(
                    ev, "each data-parallel rank runs its own EngineCore process (or run more replicas)"
                ),
                Suggestion(
                    "--max-num-batched-tokens",
                    "raise",
                    current_flag(ev, "--max-num-batched-tokens"),
                    str(2 * ev.config.flag_max_num_batched_tokens)
                    if ev.config.flag_max_num_batched_tokens
                    else "16384",
                    "larger steps spread the per-step scheduling cost (helps less than more engines)",
                ),
            ],
            confidence=confidence,
            utilization=cpu / 100.0 if cpu is not None else None,
        )


RULE = EngineCoreCpuRule()
