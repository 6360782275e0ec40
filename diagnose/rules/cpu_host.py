"""Step 1, `cpu` (host): the whole machine is out of CPU, so every vLLM process competes for cores.

Read from the host row of the process samples (percent of ALL cores). It includes everything on the
host — a load generator running next to the server shows here too, which is worth knowing: the
H200 captures ran the client on the same machine.
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.base import Needs, ladder, pct, pick
from diagnose.thresholds import Thresholds


class HostCpuRule:
    id = "cpu-host"
    step = 1
    label = "cpu"
    needs: Needs = ("host_cpu_mean_pct",)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        severity = ladder(ev.host_cpu_mean_pct, t["busy_warning_pct"], t["busy_critical_pct"])
        if severity == Severity.OK:
            return None  # cores to spare on the host: vLLM's processes are not starved by neighbours
        vllm = []
        if ev.api_server_cpu_mean_pct is not None:
            vllm.append(f"busiest API server {pct(ev.api_server_cpu_mean_pct)}")
        if ev.engine_core_cpu_mean_pct is not None:
            vllm.append(f"EngineCore {pct(ev.engine_core_cpu_mean_pct)}")
        share = f" vLLM's own processes: {', '.join(vllm)} (of one core each)." if vllm else ""
        return Finding(
            rule_id=self.id,
            label=self.label,
            step=self.step,
            severity=severity,
            title=f"Host CPU saturated: {pct(ev.host_cpu_mean_pct)} of all cores on average",
            detail=f"The host ran at {pct(ev.host_cpu_mean_pct)} of all its cores (max "
            f"{pct(ev.host_cpu_max_pct)}), so vLLM's processes wait for a core.{share} Anything else on the "
            "host (a load generator, tokenizer threads, other services) counts here.",
            numbers=pick(
                ev,
                "host_cpu_mean_pct",
                "host_cpu_max_pct",
                "api_server_cpu_mean_pct",
                "engine_core_cpu_mean_pct",
            ),
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
