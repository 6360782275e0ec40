"""Step 1, `gpu`: the GPU is busy nearly all the time AND requests wait for it.

NVML's utilization is the share of time a kernel was running, not SM occupancy: a small model can read
"100 %" while most SMs idle. So busy alone is not "GPU-bound": the rule also wants queue time growing
(requests waiting at least half their inference time, or a waiting queue). Busy without waiting is
the GPU keeping up — headroom is small, but it is not a fault.
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.gpu import Gpu
from diagnose.derive.sections.latency import Latency
from diagnose.derive.sections.scheduler import Scheduler
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.base import Rule, current_flag, ladder, more_engines, pct, pick, secs
from diagnose.thresholds import Thresholds


class GpuRule(Rule):
    id = "gpu"
    step = 1
    label = "gpu"
    # A GPU busy at its line is the limit even when the KV cache is also short: more blocks cannot add
    # compute (a starved cache shows as a GPU far below its line: one request per step, 41 % on the H200).
    explains = ("cache-thrash",)
    needs = (Gpu.gpu_util_median_pct,)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        median = ev.gpu.gpu_util_median_pct
        busy = ladder(median, t["busy_warning_pct"], t["busy_critical_pct"])
        if median is None or busy == Severity.OK:
            return None  # below the busy line the GPU is not the limit, whatever the latency
        numbers = pick(
            ev,
            Gpu.gpu_util_median_pct,
            Gpu.gpu_util_mean_pct,
            Gpu.gpu_util_max_pct,
            Gpu.gpu_power_mean_w,
            Gpu.gpu_power_max_w,
            Gpu.gpu_sm_clock_min_mhz,
            Latency.queue_mean_s,
            Latency.inference_mean_s,
            Scheduler.waiting_max,
        )
        nvml = (
            f"NVML says a kernel was running {pct(median)} of the time (median; mean "
            f"{pct(ev.gpu.gpu_util_mean_pct)}, "
            f"max {pct(ev.gpu.gpu_util_max_pct)}) — that is time busy, not SM occupancy."
        )
        power = ""
        if ev.gpu.gpu_power_mean_w is not None:
            power = f" Power {ev.gpu.gpu_power_mean_w:.0f} W mean, {ev.gpu.gpu_power_max_w:.0f} W max"
            power += (
                f", SM clock down to {ev.gpu.gpu_sm_clock_min_mhz:.0f} MHz."
                if ev.gpu.gpu_sm_clock_min_mhz
                else "."
            )

        # "Queue time growing": requests wait at least half their inference time, or some wait at a scrape.
        signals = []
        if ev.latency.queue_mean_s is not None and ev.latency.inference_mean_s:
            signals.append(
                ev.latency.queue_mean_s >= t["queue_over_inference_min"] * ev.latency.inference_mean_s
            )
        if ev.scheduler.waiting_max is not None:
            signals.append(ev.scheduler.waiting_max >= 1)
        waiting = any(signals) if signals else None
        queue_text = (
            f"Requests waited {secs(ev.latency.queue_mean_s)} on average in the queue against "
            f"{secs(ev.latency.inference_mean_s)} of inference; up to {ev.scheduler.waiting_max:.0f} "
            f"waiting at a scrape."
            if ev.scheduler.waiting_max is not None
            else f"Queue {secs(ev.latency.queue_mean_s)} against inference "
            f"{secs(ev.latency.inference_mean_s)}."
        )
        if waiting is False:
            # Not a fault: the GPU is busy but keeps up — nobody waits for it.
            return self.finding(
                severity=Severity.INFO,
                title=f"GPU busy {pct(median)} of the time but keeping up: requests do not wait",
                detail=f"{nvml} {queue_text} Little headroom is left; more load will queue.{power}",
                numbers=numbers,
            )
        severity, confidence = busy, "high"
        title = f"GPU-bound: busy {pct(median)} of the time and requests queue for it"
        if waiting is None:
            # No queue evidence (no /metrics): say so and do not claim more than a warning.
            severity, confidence = min(busy, Severity.WARNING), "medium"
            queue_text = "Queue time is unknown (no vLLM metrics in the window)."
            title = f"GPU busy {pct(median)} of the time; whether requests queue for it is unknown"
        return self.finding(
            severity=severity,
            title=title,
            detail=f"{nvml} {queue_text}{power} Less CPU work will not help; more GPU capacity will.",
            numbers=numbers,
            utilization=median / 100.0,
            suggestions=[
                more_engines(
                    ev,
                    "one engine per GPU: throughput grows with GPUs when the GPU is the limit (or replicas)",
                ),
                Suggestion(
                    "--quantization",
                    "set",
                    current_flag(ev, "--quantization", "none"),
                    "fp8",
                    "fewer weight bytes, faster matmuls on Hopper; check scores still agree (bypass step)",
                ),
            ],
            confidence=confidence,
        )


RULE = GpuRule()
