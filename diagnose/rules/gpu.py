"""Step 1, `gpu`: the GPU is busy nearly all the time AND requests wait for it.

NVML's utilization is the share of time a kernel was running, not SM occupancy: a small model can read
"100 %" while most SMs idle. So busy alone is not "GPU-bound": the rule also wants queue time growing
(requests waiting at least half their inference time, or a waiting queue). Busy without waiting is
the GPU keeping up — headroom is small, but it is not a fault.
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.base import Needs, current_flag, ladder, more_engines, pct, pick, secs
from diagnose.thresholds import Thresholds


class GpuRule:
    id = "gpu"
    step = 1
    label = "gpu"
    needs: Needs = ("gpu_util_median_pct",)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        median = ev.gpu_util_median_pct
        busy = ladder(median, t["busy_warning_pct"], t["busy_critical_pct"])
        if median is None or busy == Severity.OK:
            return None  # below the busy line the GPU is not the limit, whatever the latency
        numbers = pick(
            ev,
            "gpu_util_median_pct",
            "gpu_util_mean_pct",
            "gpu_util_max_pct",
            "gpu_power_mean_w",
            "gpu_power_max_w",
            "gpu_sm_clock_min_mhz",
            "queue_mean_s",
            "inference_mean_s",
            "waiting_max",
        )
        nvml = (
            f"NVML says a kernel was running {pct(median)} of the time (median; mean "
            f"{pct(ev.gpu_util_mean_pct)}, "
            f"max {pct(ev.gpu_util_max_pct)}) — that is time busy, not SM occupancy."
        )
        power = ""
        if ev.gpu_power_mean_w is not None:
            power = f" Power {ev.gpu_power_mean_w:.0f} W mean, {ev.gpu_power_max_w:.0f} W max"
            power += (
                f", SM clock down to {ev.gpu_sm_clock_min_mhz:.0f} MHz." if ev.gpu_sm_clock_min_mhz else "."
            )

        # "Queue time growing": requests wait at least half their inference time, or some wait at a scrape.
        signals = []
        if ev.queue_mean_s is not None and ev.inference_mean_s:
            signals.append(ev.queue_mean_s >= t["queue_over_inference_min"] * ev.inference_mean_s)
        if ev.waiting_max is not None:
            signals.append(ev.waiting_max >= 1)
        waiting = any(signals) if signals else None
        queue_text = (
            f"Requests waited {secs(ev.queue_mean_s)} on average in the queue against "
            f"{secs(ev.inference_mean_s)} of inference; up to {ev.waiting_max:.0f} waiting at a scrape."
            if ev.waiting_max is not None
            else f"Queue {secs(ev.queue_mean_s)} against inference {secs(ev.inference_mean_s)}."
        )
        if waiting is False:
            # Not a fault: the GPU is busy but keeps up — nobody waits for it.
            return Finding(
                rule_id=self.id,
                label=self.label,
                step=self.step,
                severity=Severity.INFO,
                title=f"GPU busy {pct(median)} of the time but keeping up: requests do not wait",
                detail=f"{nvml} {queue_text} Little headroom is left; more load will queue.{power}",
                numbers=numbers,
            )
        severity, confidence = busy, "high"
        if waiting is None:
            # No queue evidence (no /metrics): say so and do not claim more than a warning.
            severity, confidence = min(busy, Severity.WARNING), "medium"
            queue_text = "Queue time is unknown (no vLLM metrics in the window)."
        return Finding(
            rule_id=self.id,
            label=self.label,
            step=self.step,
            severity=severity,
            title=f"GPU-bound: busy {pct(median)} of the time and requests queue for it",
            detail=f"{nvml} {queue_text}{power} Less CPU work will not help; more GPU capacity will.",
            numbers=numbers,
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
