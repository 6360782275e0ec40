"""Step 1, `cpu` (the model's compute on a CPU build): requests wait for `VLLM::Worker`, which runs the
model on the host's cores.

On the CPU build the model runs in its own process, `VLLM::Worker` (DESIGN §2), which spin-waits near
90 % of a core under any load: its CPU alone proves nothing. What shows that the model's compute binds
is saturation in front of it — requests queue at least as long as the work takes (the `queueing`
thresholds, one definition of "requests wait") — on a host with no GPU. Measured on the 2-core lab: 16
callers × 20 documents × 50 words queued 2.6 s for 0.42 s of inference, host 86-100 % busy.

Not a fault: the Worker busy while nothing waits (the spin-wait), or a GPU build (the `gpu` rule judges
the model's compute there).
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.cpu import Cpu
from diagnose.derive.sections.gpu import Gpu
from diagnose.derive.sections.latency import Latency
from diagnose.derive.sections.scheduler import Scheduler
from diagnose.derive.sections.traffic import Traffic
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.base import Rule, more_engines, pct, pick, secs
from diagnose.thresholds import Thresholds


class ModelCpuRule(Rule):
    id = "cpu-model"
    step = 1
    label = "cpu"
    # On a CPU build the model's compute IS the host's cores: a busy host is this cause, seen from afar.
    # A starved KV cache beside a saturated model is contributing: with the cores full, more KV blocks
    # cannot raise throughput (the lab, docs/cache-thrash.md: removing the cap gave 0.96x the pairs/s).
    explains = ("cpu-host", "cache-thrash")
    needs = (Cpu.worker_cpu_mean_pct, Latency.queue_mean_s, Latency.inference_mean_s)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        if ev.gpu.gpu_count is not None:
            return None  # a GPU build: the gpu rule judges the model's compute
        queueing = thresholds.of("queueing")
        queue, work = ev.latency.queue_mean_s, ev.latency.inference_mean_s
        if queue is None or work is None:
            return None
        if queue < queueing["queue_warning_s"] or queue < queueing["queue_over_inference_min"] * work:
            return None  # nothing waits for the model: the Worker's CPU is its spin-wait
        host = ev.cpu.host_cpu_mean_pct
        critical = host is not None and host >= thresholds.of("cpu-host")["busy_critical_pct"]
        host_text = f", host at {pct(host)} of all cores" if host is not None else ""
        return self.finding(
            severity=Severity.CRITICAL if critical else Severity.WARNING,
            title=f"Model compute on the CPU is the limit: requests wait {secs(queue)} for {secs(work)} "
            "of inference",
            detail="The model runs on the host's cores here (VLLM::Worker at "
            f"{pct(ev.cpu.worker_cpu_mean_pct)} "
            f"of a core{host_text}; no GPU). Each engine request waited {secs(queue)} in vLLM's queue for "
            f"{secs(work)} of inference: the model's compute cannot keep up with the offered load. The "
            "Worker's CPU alone proves nothing (it spin-waits near 90 % at rest); the queue in front of it "
            "does.",
            numbers=pick(
                ev,
                Cpu.worker_cpu_mean_pct,
                Cpu.host_cpu_mean_pct,
                Cpu.engine_core_cpu_mean_pct,
                Latency.queue_mean_s,
                Latency.inference_mean_s,
                Scheduler.waiting_max,
                Traffic.engine_requests_per_s,
                Gpu.gpu_count,
            ),
            suggestions=[
                more_engines(ev, "one more engine per rank, on cores of its own (or more replicas)"),
                Suggestion(
                    "host: cores",
                    "raise",
                    None,
                    None,
                    "the model's compute is CPU time here: more cores (or a GPU) raise capacity",
                ),
            ],
            utilization=None if host is None else host / 100.0,
        )


RULE = ModelCpuRule()
