"""Readings that contradict each other are reported as such, never resolved silently.

A GPU busy while vLLM finished no request in the window means the GPU readings and the /metrics are not
about the same work: another process holds the GPU (gpu-processes.csv names it), or the files of a bundle
come from different hosts or times. The verdict keeps its label but drops to low confidence.
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.gpu import Gpu
from diagnose.derive.sections.traffic import Traffic
from diagnose.report import Finding, Severity
from diagnose.rules.base import Rule, pct, pick
from diagnose.thresholds import Thresholds


class ReadingsDisagreeRule(Rule):
    id = "readings-disagree"
    step = 1
    label = "undetermined"
    kind = "conflict"
    needs = (Gpu.gpu_util_mean_pct, Traffic.engine_requests_delta)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        busy = ev.gpu.gpu_util_mean_pct
        line = thresholds.of(self.id)["gpu_busy_pct"]
        if busy is None or busy < line or ev.traffic.engine_requests_delta != 0:
            return None  # an idle GPU with no traffic, or a busy one with traffic: they agree
        return self.finding(
            severity=Severity.WARNING,
            title=f"The GPU was busy {pct(busy)} while vLLM finished no request: the readings disagree",
            detail=f"NVML saw a kernel running {pct(busy)} of the time, yet vLLM's request counters did not "
            "move in the window. Another process may hold this GPU (see gpu-processes.csv or "
            "`nvidia-smi`), or the bundle's files come from different hosts or times. The verdict is kept "
            "at low confidence until the readings agree.",
            numbers=pick(ev, Gpu.gpu_util_mean_pct, Gpu.gpu_util_max_pct, Traffic.engine_requests_delta),
        )


RULE = ReadingsDisagreeRule()
