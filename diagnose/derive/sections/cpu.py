"""CPU by vLLM process role (percent of ONE core) and of the host (percent of ALL cores).

Per-process samples come from psutil (or a bundle's processes.csv); with a single API server, vLLM's own
process_cpu_seconds_total gives the API server's CPU too (multi-API-server mode drops process_* series).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from diagnose.derive import plausible, window
from diagnose.derive.processes import cpu_by_role
from diagnose.derive.section import Section, build, group, num
from diagnose.metrics.exposition import ParsedDump
from diagnose.readings import ProcessSample

PROCESS_FIELDS = (
    "api_server_count",
    "api_server_cpu_mean_pct",
    "api_server_cpu_max_pct",
    "engine_core_cpu_mean_pct",
    "engine_core_cpu_max_pct",
    "worker_cpu_mean_pct",
)
HOST_FIELDS = ("host_cpu_mean_pct", "host_cpu_max_pct")


@dataclass(frozen=True, slots=True, kw_only=True)
class Cpu(Section):
    api_server_count: int | None = num("API-server processes seen (psutil)")
    api_server_cpu_mean_pct: float | None = num("the busiest API server, mean, % of one core")
    api_server_cpu_max_pct: float | None = num("the busiest API server, max, % of one core")
    api_server_cpu_metrics_pct: float | None = num("process_cpu_seconds_total rate (one API server only)")
    api_server_busiest_share_ratio: float | None = num(
        "the busiest API server's share of all API servers' CPU (1/N when evenly loaded; several only)"
    )
    engine_core_cpu_mean_pct: float | None = num("VLLM::EngineCore (busiest), mean, % of one core")
    engine_core_cpu_max_pct: float | None = num("same, max")
    worker_cpu_mean_pct: float | None = num("VLLM::Worker (CPU builds; spin-waits, not saturation), mean")
    host_cpu_mean_pct: float | None = num("the host, mean, % of ALL cores")
    host_cpu_max_pct: float | None = num("the host, max, % of ALL cores")


@dataclass(frozen=True, slots=True)
class CpuInputs:
    """What the CPU section is derived from, and why each part may be absent."""

    samples: Sequence[ProcessSample]
    bounds: tuple[float | None, float | None]  # the window (t0, t1]; (None, None) when unknown
    host_issue: str | None  # the host collector's reason, when it produced nothing
    dumps: tuple[ParsedDump, ParsedDump] | None  # first and last /metrics dump, for process_cpu_seconds
    window_s: float | None
    no_dumps: str = "one scrape: counters need two (a window of at least two /metrics dumps)"
    host_cores: int | None = None  # the bound no process's CPU can pass (None: not recorded)


def derive_cpu(inputs: CpuInputs) -> Cpu:
    why: dict[str, str] = {}
    values: dict[str, object] = {}
    # process_cpu_seconds_total is the API server's own process, and exists only with ONE API server
    # (with several, vLLM uses prometheus multiprocess mode and drops process_* series).
    cpu_s = window.delta(*inputs.dumps, "process_cpu") if inputs.dumps is not None else None
    if cpu_s is not None and inputs.window_s:
        values["api_server_cpu_metrics_pct"] = 100.0 * cpu_s / inputs.window_s
    elif inputs.dumps is None:
        why["api_server_cpu_metrics_pct"] = inputs.no_dumps
    else:
        why["api_server_cpu_metrics_pct"] = (
            "no process_cpu_seconds_total (several API servers, or not exported)"
        )

    roles = cpu_by_role(inputs.samples, *inputs.bounds) or cpu_by_role(inputs.samples)
    host = roles.get("host")
    if host is not None and host.mean_pct is not None:
        values["host_cpu_mean_pct"], values["host_cpu_max_pct"] = host.mean_pct, host.max_pct
    else:
        group(why, HOST_FIELDS, inputs.host_issue or "no host CPU samples (run on the serving host)")
    if not any(role in roles for role in ("api_server", "engine_core", "worker")):
        reason = inputs.host_issue or "no per-process CPU samples of vLLM (run on the serving host)"
        group(why, PROCESS_FIELDS, reason)
        return build(Cpu, values, why)
    api = roles.get("api_server")
    if api is not None:
        values["api_server_count"] = api.process_count
        values["api_server_cpu_mean_pct"], values["api_server_cpu_max_pct"] = api.mean_pct, api.max_pct
        # vLLM spreads calls unevenly over API servers (62 to 696 each on the H200, DESIGN §2): the
        # busiest one's share of their CPU says how uneven. /metrics cannot: it sums every API server.
        if api.process_count > 1 and api.mean_pct is not None and api.total_mean_pct:
            values["api_server_busiest_share_ratio"] = api.mean_pct / api.total_mean_pct
        else:
            why["api_server_busiest_share_ratio"] = "one API server (or no CPU samples of them)"
    else:
        group(
            why,
            ["api_server_count", "api_server_cpu_mean_pct", "api_server_cpu_max_pct"],
            "no API-server process seen",
        )
    core = roles.get("engine_core")
    if core is not None:
        values["engine_core_cpu_mean_pct"], values["engine_core_cpu_max_pct"] = core.mean_pct, core.max_pct
    else:
        group(
            why, ["engine_core_cpu_mean_pct", "engine_core_cpu_max_pct"], "no VLLM::EngineCore process seen"
        )
    worker = roles.get("worker")
    if worker is not None:
        values["worker_cpu_mean_pct"] = worker.mean_pct
    else:
        why["worker_cpu_mean_pct"] = "no VLLM::Worker process (GPU builds run the model inside EngineCore)"
    # A process cannot use more cores than the host has: past that the reading is suspect (a counter
    # reset, a sample window that does not match), set aside with the reason the rule will quote.
    for name in (*PROCESS_FIELDS[1:], "api_server_cpu_metrics_pct"):
        value = values.get(name)
        if isinstance(value, float):
            checked = plausible.process_cpu_pct(value, inputs.host_cores, name)
            if not checked.ok:
                values[name], why[name] = None, checked.suspect or "suspect"
    return build(Cpu, values, why, default="no readable CPU sample for this process")
