"""Step 1, `cpu` (host): the whole machine is out of CPU, so every vLLM process competes for cores.

Read from the host row of the process samples (percent of ALL cores). It includes everything on the
host — a load generator running next to the server shows here too, which is worth knowing: the
H200 captures ran the client on the same machine.

Capped by "does it matter" (dr-elephant's Severity.min): a busy host whose requests neither queue nor
wait is INFO. Measured on the 2-core CPU lab: the host sat at 82-87 % of all cores at 2 calls/s with a
0 s queue and nothing waiting, because `VLLM::Worker` spin-waits ~90 % of a core (DESIGN §2) and other
work shared the machine; calling that a warning would be a false alarm on every small box.
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.cpu import Cpu
from diagnose.derive.sections.latency import Latency
from diagnose.derive.sections.scheduler import Scheduler
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.base import Rule, frontend_ratio, ladder, pct, pick, secs, times
from diagnose.thresholds import Thresholds


def starvation_signs(ev: Evidence, thresholds: Thresholds) -> list[str] | None:
    """What shows that work waits (queue, waiting gauge, frontend latency); None when none is known."""
    queueing = thresholds.of("queueing")
    signs: list[str] = []
    known = False
    if ev.latency.queue_mean_s is not None and ev.latency.inference_mean_s is not None:
        known = True
        if (
            ev.latency.queue_mean_s >= queueing["queue_warning_s"]
            and ev.latency.queue_mean_s >= queueing["queue_over_inference_min"] * ev.latency.inference_mean_s
        ):
            signs.append(
                f"requests queued {secs(ev.latency.queue_mean_s)} for "
                f"{secs(ev.latency.inference_mean_s)} of work"
            )
    if ev.scheduler.waiting_max is not None:
        known = True
        if ev.scheduler.waiting_max >= thresholds.of("cpu-engine-core")["waiting_warning"]:
            signs.append(f"up to {ev.scheduler.waiting_max:.0f} requests waited")
    ratio, _ = frontend_ratio(ev)
    if ratio is not None:
        known = True
        if ratio >= thresholds.of("cpu-api-server")["frontend_ratio_warning"]:
            signs.append(f"the frontend added {times(ratio)} the engine's time")
    return signs if known else None


class HostCpuRule(Rule):
    id = "cpu-host"
    step = 1
    label = "cpu"
    needs = (Cpu.host_cpu_mean_pct,)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        severity = ladder(ev.cpu.host_cpu_mean_pct, t["busy_warning_pct"], t["busy_critical_pct"])
        if severity == Severity.OK:
            return None  # cores to spare on the host: vLLM's processes are not starved by neighbours
        vllm = []
        if ev.cpu.api_server_cpu_mean_pct is not None:
            vllm.append(f"busiest API server {pct(ev.cpu.api_server_cpu_mean_pct)}")
        if ev.cpu.engine_core_cpu_mean_pct is not None:
            vllm.append(f"EngineCore {pct(ev.cpu.engine_core_cpu_mean_pct)}")
        share = f" vLLM's own processes: {', '.join(vllm)} (of one core each)." if vllm else ""
        numbers = pick(
            ev,
            Cpu.host_cpu_mean_pct,
            Cpu.host_cpu_max_pct,
            Cpu.api_server_cpu_mean_pct,
            Cpu.engine_core_cpu_mean_pct,
            Cpu.worker_cpu_mean_pct,
            Latency.queue_mean_s,
            Scheduler.waiting_max,
        )
        signs = starvation_signs(ev, thresholds)
        if signs == []:
            # Not a fault: the cores are used, but nothing waits for them (on CPU builds VLLM::Worker
            # spin-waits ~90 % of a core even at 3 calls/s, DESIGN §2).
            spin = (
                f" VLLM::Worker alone used {pct(ev.cpu.worker_cpu_mean_pct)} of a core; it spin-waits."
                if ev.cpu.worker_cpu_mean_pct is not None
                else ""
            )
            return self.finding(
                severity=Severity.INFO,
                title=f"Host CPU busy ({pct(ev.cpu.host_cpu_mean_pct)} of all cores) but nothing "
                f"waits for it",
                detail=f"The host ran at {pct(ev.cpu.host_cpu_mean_pct)} of all its cores, yet "
                f"requests did not "
                f"queue or wait.{share}{spin} Not a limit yet: the next load step may make it one.",
                numbers=numbers,
            )
        why = f" Meanwhile {'; '.join(signs)}." if signs else ""
        return self.finding(
            severity=severity,
            title=f"Host CPU saturated: {pct(ev.cpu.host_cpu_mean_pct)} of all cores on average",
            detail=f"The host ran at {pct(ev.cpu.host_cpu_mean_pct)} of all its cores (max "
            f"{pct(ev.cpu.host_cpu_max_pct)}), so vLLM's processes wait for a core.{share}{why} "
            f"Anything else on "
            "the host (a load generator, tokenizer threads, other services) counts here.",
            numbers=numbers,
            confidence="high" if signs else "medium",
            utilization=(ev.cpu.host_cpu_mean_pct or 0.0) / 100.0,
            suggestions=[
                Suggestion(
                    "host: other CPU work",
                    "lower",
                    None,
                    None,
                    "move the load client and other services off the serving host, or give it more cores; "
                    "each API server and the engine core need a full core",
                )
            ],
        )


RULE = HostCpuRule()
