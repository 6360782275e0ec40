"""Step 1, a symptom: past capacity — requests wait in vLLM's queue about as long as they take to run.

What every engine-side bottleneck looks like, so it never names the resource: it sets how urgent the
verdict is, and the cause rules (gpu, cpu-engine-core, cpu-model, cache-thrash, ...) name what binds.
With no cause over its line the verdict is `undetermined` and says which reading is missing. Measured on
the lab: 8 calls/s × 20 documents × ~380 tokens into 2 cores gave a 2.6 s mean queue with 326 requests
waiting; none of the H200 captures queued more than 32 ms (their limit, the API server, sits in front of
the queue).

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
from diagnose.rules.base import Rule, more_engines, pick, secs
from diagnose.thresholds import Thresholds


class QueueingRule(Rule):
    id = "queueing"
    step = 1
    label = "undetermined"  # the verdict's label only when no cause is measured over its line
    kind = "symptom"
    needs = (Latency.queue_mean_s, Latency.inference_mean_s)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        queue, work = ev.latency.queue_mean_s, ev.latency.inference_mean_s
        if queue is None or work is None:
            return None
        if queue < t["queue_warning_s"] or queue < t["queue_over_inference_min"] * work:
            return None  # short against the work itself: a burst absorbed, not a server past capacity
        severity = Severity.CRITICAL if queue >= t["queue_critical_s"] else Severity.WARNING
        waiting = (
            f" {ev.scheduler.waiting_mean:.0f} requests waited on average (max "
            f"{ev.scheduler.waiting_max:.0f})."
            if (ev.scheduler.waiting_mean is not None and ev.scheduler.waiting_max is not None)
            else ""
        )
        return self.finding(
            severity=severity,
            title=f"Past capacity: requests queue {secs(queue)} on average before {secs(work)} of work",
            detail=f"Each engine request waited {secs(queue)} in vLLM's queue for {secs(work)} of inference "
            f"({queue / work:.1f}×).{waiting} Latency now grows with the offered load; the causes name what "
            "binds.",
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
