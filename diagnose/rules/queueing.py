"""Step 1, past capacity: requests wait in vLLM's queue about as long as they take to run, or longer.

The symptom all engine-side bottlenecks share. The resource rules name a cause when one crosses its own
threshold; this rule makes sure a server that queues is never called healthy, and says where the work
goes. On the CPU build the model runs in `VLLM::Worker`, so the model's compute IS that process (its
~90 % spin-wait at rest is why its CPU alone proves nothing, DESIGN §2); on a GPU build it is the GPU.
Measured on the lab: 8 calls/s × 20 documents × ~380 tokens into 2 cores gave a 2.6 s mean queue with
326 requests waiting; none of the H200 captures queued more than 32 ms (their limit, the API server,
sits in front of the queue).

Not a fault: a queue short next to the work itself (a burst absorbed), or under `queue_warning_s`.
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.cpu import Cpu
from diagnose.derive.sections.gpu import Gpu
from diagnose.derive.sections.latency import Latency
from diagnose.derive.sections.scheduler import Scheduler
from diagnose.derive.sections.shape import Shape
from diagnose.derive.sections.traffic import Traffic
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.base import Rule, more_engines, pct, pick, secs
from diagnose.thresholds import Thresholds


class QueueingRule(Rule):
    id = "queueing"
    step = 1
    label = "cpu"  # or "gpu": decided per window (see evaluate)
    needs = (Latency.queue_mean_s, Latency.inference_mean_s)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        queue, work = ev.latency.queue_mean_s, ev.latency.inference_mean_s
        if queue is None or work is None:
            return None
        if queue < t["queue_warning_s"] or queue < t["queue_over_inference_min"] * work:
            return None  # short against the work itself: a burst absorbed, not a server past capacity
        severity = Severity.CRITICAL if queue >= t["queue_critical_s"] else Severity.WARNING
        cpu_build = ev.cpu.worker_cpu_mean_pct is not None and ev.gpu.gpu_util_mean_pct is None
        if cpu_build:
            label = "cpu"
            where = (
                f"The model runs on the CPU here (VLLM::Worker at {pct(ev.cpu.worker_cpu_mean_pct)} "
                f"of a core, "
                f"host at {pct(ev.cpu.host_cpu_mean_pct)} of all cores): the model's compute is the limit."
            )
        elif ev.gpu.gpu_util_mean_pct is not None:
            label = "gpu"
            where = f"GPU busy {pct(ev.gpu.gpu_util_mean_pct)} of the time (NVML: a kernel was running)."
        else:
            label = "cpu"
            where = "No GPU or worker readings: the engine side is the limit, which part is not measured."
        waiting = (
            f" {ev.scheduler.waiting_mean:.0f} requests waited on average (max "
            f"{ev.scheduler.waiting_max:.0f})."
            if (ev.scheduler.waiting_mean is not None and ev.scheduler.waiting_max is not None)
            else ""
        )
        return Finding(
            rule_id=self.id,
            label=label,
            step=self.step,
            severity=severity,
            title=f"Past capacity: requests queue {secs(queue)} on average before {secs(work)} of work",
            detail=f"Each engine request waited {secs(queue)} in vLLM's queue for {secs(work)} of inference "
            f"({queue / work:.1f}×).{waiting} {where} Latency now grows with the offered load.",
            numbers=pick(
                ev,
                Latency.queue_mean_s,
                Latency.queue_p95_s,
                Latency.inference_mean_s,
                Scheduler.waiting_mean,
                Scheduler.waiting_max,
                Traffic.engine_requests_per_s,
                Shape.prompt_tokens_per_s,
                Cpu.worker_cpu_mean_pct,
                Gpu.gpu_util_mean_pct,
                Cpu.host_cpu_mean_pct,
            ),
            suggestions=[
                Suggestion(
                    "client: offered load",
                    "lower",
                    f"{ev.traffic.engine_requests_per_s:.1f} pairs/s served"
                    if ev.traffic.engine_requests_per_s
                    else None,
                    "cap calls in flight",
                    "past capacity every extra call only waits longer; queue at the client, not in vLLM",
                ),
                more_engines(
                    ev, "one more engine (and device) per rank, or more replicas: capacity is short"
                ),
            ],
        )


RULE = QueueingRule()
