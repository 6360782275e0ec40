"""Step 1, `cpu` (API server): the one Python process that speaks HTTP is at ~100 % of a core.

The signature measured on vLLM 0.26 / H200 (DESIGN §2): the busiest API-server process near 100 % of one
core, HTTP latency far above vLLM's e2e, e2e far above queue + inference, GPU mostly idle. The API server
tokenizes every document, builds the engine requests and turns results into JSON; none of that is GPU
work, so a faster GPU changes nothing. The frontend ratio (HTTP mean over queue + inference mean) says
how much latency the frontend adds: ~1-2 unloaded, 6 to 150 in the H200 captures.
"""

from __future__ import annotations

import math

from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.client import Client
from diagnose.derive.sections.config import server_version
from diagnose.derive.sections.cpu import Cpu
from diagnose.derive.sections.gpu import Gpu
from diagnose.derive.sections.latency import Latency
from diagnose.derive.sections.traffic import Traffic
from diagnose.derive.versions import renderer_advice
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.base import Rule, current_flag, frontend_ratio, ladder, pct, pick, secs, times
from diagnose.thresholds import Thresholds

# Renderer (tokenizer) threads per API server to propose where the version has them.
RENDERER_WORKERS = 4


class ApiServerCpuRule(Rule):
    id = "cpu-api-server"
    step = 1
    label = "cpu"
    # A hot API server feeds EngineCore in bursts: relieve the frontend first (DESIGN §2, H200 1 vs 8).
    explains = ("cpu-engine-core",)
    needs = ((Cpu.api_server_cpu_mean_pct, Cpu.api_server_cpu_metrics_pct),)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        cpu = (
            ev.cpu.api_server_cpu_mean_pct
            if ev.cpu.api_server_cpu_mean_pct is not None
            else ev.cpu.api_server_cpu_metrics_pct
        )
        if cpu is None or cpu < t["busy_warning_pct"]:
            return None  # the API server has a core's worth of room: not the limit
        ratio, basis = frontend_ratio(ev)
        confidence = "high" if basis == "http" else "medium"
        source = "host samples" if ev.cpu.api_server_cpu_mean_pct is not None else "process_cpu_seconds_total"
        count = ev.config.flag_api_server_count or ev.cpu.api_server_count
        who = f"The busiest of {count} API servers" if count and count > 1 else "The API server"
        # Means, not p95s: the means are exact (sum/count) while the HTTP buckets are coarse above 10 s.
        chain = (
            f"HTTP mean {secs(ev.latency.http_mean_s)} ≫ vLLM e2e {secs(ev.latency.e2e_mean_s)} ≫ "
            f"queue {secs(ev.latency.queue_mean_s)} + inference {secs(ev.latency.inference_mean_s)}"
            if basis == "http"
            else f"vLLM e2e {secs(ev.latency.e2e_mean_s)} ≫ queue {secs(ev.latency.queue_mean_s)} + "
            f"inference "
            f"{secs(ev.latency.inference_mean_s)} (no HTTP histogram)"
        )
        gpu = (
            f" GPU busy {pct(ev.gpu.gpu_util_mean_pct)} (NVML mean)."
            if ev.gpu.gpu_util_mean_pct is not None
            else ""
        )
        detail = (
            f"{who} used {pct(cpu)} of one core on average ({source}). It is one Python process: "
            f"it tokenizes every document, builds the engine requests and writes the JSON, none of it on the "
            f"GPU. {chain}: the frontend adds {times(ratio)} the engine's time.{gpu}"
        )
        share = ev.cpu.api_server_busiest_share_ratio
        if share is not None and count and count > 1:
            # Calls spread unevenly over API servers: the busiest binds before the others are full.
            detail += (
                f" The busiest API server did {share:.0%} of the API servers' CPU work "
                f"(evenly: {1 / count:.0%})."
            )
        if ev.client.bypass_overhead_share is not None and ev.client.bypass_direct_pairs_per_s is not None:
            # Step 4 agrees when the model alone is fast and most of the served time is the serving path.
            detail += (
                f" Bypass: the model alone scored {ev.client.bypass_direct_pairs_per_s:.0f} pairs/s, served "
                f"{ev.client.bypass_served_pairs_per_s or 0:.0f} pairs/s: "
                f"{ev.client.bypass_overhead_share:.0%} of the "
                "served time is serving, not the model."
            )
        if ratio is None:
            severity, confidence = Severity.WARNING, "medium"
            detail = (
                f"{who} used {pct(cpu)} of one core on average ({source}): a throughput ceiling. "
                f"Latency histograms are missing, so how much latency it adds is unknown.{gpu}"
            )
        else:
            severity = ladder(ratio, t["frontend_ratio_warning"], t["frontend_ratio_critical"], info=0.0)
            if severity == Severity.INFO:
                # Not yet a fault: busy, but the frontend barely adds latency. The next load step will.
                return self.finding(
                    severity=Severity.INFO,
                    title=f"API server busy ({pct(cpu)} of a core) but not yet adding latency",
                    detail=f"{detail} Throughput is near this process's ceiling.",
                    numbers=self._numbers(ev, ratio),
                    confidence=confidence,
                )
        current = count or 1
        proposed = current * (4 if severity == Severity.CRITICAL else 2)
        suggestions = [
            Suggestion(
                "--api-server-count",
                "raise",
                current_flag(ev, "--api-server-count", "1"),
                str(proposed),
                f"{current} → {proposed} frontend processes share tokenization and HTTP; helps only with a "
                f"free core per extra API server; the engine core may bind next (~630 pairs/s on an H200)",
            )
        ]
        advice = renderer_advice(server_version(ev.config), ev.config.flags, RENDERER_WORKERS)
        if advice is not None:
            # vLLM 0.20-0.26 preprocess a rerank call's documents on one thread (vLLM issue #43444);
            # 0.27 added a pool of renderer workers (PR #49153).
            suggestions.append(
                Suggestion(
                    advice.flag,
                    "raise" if advice.upgrade_to is None else "upgrade",
                    f"{advice.current} (vLLM {ev.config.vllm_version})",
                    str(advice.proposed)
                    if advice.upgrade_to is None
                    else f"vLLM ≥{advice.upgrade_to}, {advice.proposed}",
                    advice.why,
                )
            )
        few = thresholds.of("request-pattern")["few_docs_per_call"]
        if ev.traffic.docs_per_call is not None and ev.traffic.docs_per_call < few:
            suggestions.append(
                Suggestion(
                    "client: documents per call",
                    "raise",
                    f"{ev.traffic.docs_per_call:.1f}",
                    str(math.ceil(few * 4)),
                    "fewer, larger requests: the per-call HTTP and JSON work is paid once per call",
                )
            )
        return self.finding(
            severity=severity,
            title=f"API-server CPU-bound: {pct(cpu)} of one core; frontend adds {times(ratio)} engine time",
            detail=detail,
            numbers=self._numbers(ev, ratio),
            suggestions=suggestions,
            confidence=confidence,
            utilization=cpu / 100.0,
        )

    @staticmethod
    def _numbers(ev: Evidence, ratio: float | None) -> dict[str, float | int | str | None]:
        numbers = pick(
            ev,
            Cpu.api_server_cpu_mean_pct,
            Cpu.api_server_cpu_max_pct,
            Cpu.api_server_cpu_metrics_pct,
            Cpu.api_server_count,
            Cpu.api_server_busiest_share_ratio,
            Latency.http_mean_s,
            Latency.http_p95_s,
            Latency.e2e_mean_s,
            Latency.queue_mean_s,
            Latency.inference_mean_s,
            Gpu.gpu_util_mean_pct,
            Traffic.docs_per_call,
            Client.bypass_direct_pairs_per_s,
            Client.bypass_served_pairs_per_s,
            Client.bypass_overhead_share,
        )
        numbers["frontend_ratio"] = ratio
        return numbers


RULE = ApiServerCpuRule()
