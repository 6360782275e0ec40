"""The exporters beside vLLM, as Prometheus keeps them -> one replica's GPU, process and socket readings
(pure): our own `rerank-doctor export` sidecar (`rerank_doctor_*`) and NVIDIA's dcgm-exporter
(`DCGM_FI_DEV_*`). The vLLM series themselves are assemble.py's."""

from __future__ import annotations

from diagnose.fleet.client import Series
from diagnose.fleet.queries import MAX_SUFFIX
from diagnose.readings import HOST_TOTAL, Bundle, GpuSample, ProcessSample, SocketCensus

# Our exporter's roles -> a process name the derivation's role finder (derive/processes.py) recognises.
_ROLE_PROCESS = {
    "engine_core": ("VLLM::EngineCore", ""),
    "worker": ("VLLM::Worker", ""),
}


def exporter_readings(bundle: Bundle, series: list[Series]) -> None:
    """Our exporter's series of one replica into its Bundle: per-role CPU (as process samples the
    derivation's role finder recognises), the host's CPU, the socket censuses, and NVML's GPU rows
    where no dcgm-exporter row came first (dcgm_readings runs before: it is the cluster's own source)."""
    nvml = not bundle.gpu
    cpu: dict[str, list[tuple[float, float]]] = {}
    # The exporter's window maxima beside its means: the busiest process's, and the whole host's (%).
    cpu_max: dict[str, dict[float, float]] = {}
    host_cpu: dict[float, float] = {}
    host_cpu_max: dict[float, float] = {}
    together: dict[str, dict[float, float]] = {}  # role -> t -> every process of the role, summed
    counts: dict[str, float] = {}
    sockets: dict[tuple[float, int], dict[str, int]] = {}
    recent: dict[tuple[float, int], int] = {}  # (t, port) -> TIME_WAIT closed in the last 5 s
    host: dict[float, dict[str, int]] = {}  # t -> the whole host's sockets by state
    gpu: dict[tuple[float, int], dict[str, float]] = {}
    gpu_names: dict[int, str] = {}
    for s in series:
        metric = s.labels.get("__name__", "")
        role = s.labels.get("role", "")
        if metric == "rerank_doctor_process_cpu_percent" and role:
            cpu.setdefault(role, []).extend(s.points)
        elif metric == "rerank_doctor_process_cpu_max_percent" and role:
            cpu_max.setdefault(role, {}).update(s.points)
        elif metric in ("rerank_doctor_host_cpu_ratio", "rerank_doctor_host_cpu_max_ratio"):
            # The whole host as a fraction of ALL its cores: the bundle's HOST_TOTAL row, in percent.
            into = host_cpu if metric == "rerank_doctor_host_cpu_ratio" else host_cpu_max
            into.update((t, 100.0 * v) for t, v in s.points)
        elif metric == "rerank_doctor_role_cpu_percent" and role:
            together.setdefault(role, {}).update(s.points)
        elif metric == "rerank_doctor_processes" and role:
            counts[role] = max(counts.get(role, 0.0), max(v for _, v in s.points))
        elif metric == "rerank_doctor_port_sockets":
            port, state = s.labels.get("port", ""), s.labels.get("state", "")
            if port.isdigit() and state:
                for t, v in s.points:
                    sockets.setdefault((t, int(port)), {})[state] = int(v)
        elif metric == "rerank_doctor_port_time_wait_recent_sockets":
            port = s.labels.get("port", "")
            if port.isdigit():
                for t, v in s.points:
                    recent[(t, int(port))] = int(v)
        elif metric == "rerank_doctor_host_sockets" and (state := s.labels.get("state", "")):
            for t, v in s.points:
                host.setdefault(t, {})[state] = int(v)
        elif nvml and metric.startswith("rerank_doctor_gpu_") and s.labels.get("gpu", "").isdigit():
            index = int(s.labels["gpu"])
            if s.labels.get("name"):
                gpu_names[index] = s.labels["name"]
            for t, v in s.points:
                gpu.setdefault((t, index), {})[metric] = v
    bundle.processes.extend(
        ProcessSample(t, 0, 0, HOST_TOTAL, v, None, "", cpu_max_percent=host_cpu_max.get(t))
        for t, v in sorted(host_cpu.items())
    )
    for role, points in cpu.items():
        if role == "host":
            continue  # the whole host comes as rerank_doctor_host_cpu_ratio (above), not as a role
        n = max(1, int(counts.get(role, 1)))
        for i in range(n):
            if role == "api_server":
                pname, cmd = (
                    (f"VLLM::APIServer_{i}", "")
                    if n > 1
                    else ("python", "python -m vllm.entrypoints.openai.api_server")
                )
            else:
                pname, cmd = _ROLE_PROCESS.get(role, (role, ""))
            pid = 1000 * (1 + sorted(cpu).index(role)) + i
            totals = together.get(role, {})
            for t, v in points:
                # The exporter serves the busiest process of a role and, when it measured them all, the
                # role's total; the others get the rest in equal parts. That keeps what the derivation
                # reads of them exact (their sum: the busiest one's share), and nothing shows them one by
                # one. Without the total they are counted, not measured (their share stays unknown).
                total = totals.get(t)
                peak = cpu_max.get(role, {}).get(t) if i == 0 else None
                if i == 0:
                    value: float | None = v
                elif total is not None and total >= v:
                    value = (total - v) / (n - 1)
                else:
                    value = None
                bundle.processes.append(
                    ProcessSample(t, pid, 1, pname, value, None, cmd, cpu_max_percent=peak)
                )
    bundle.sockets.extend(
        SocketCensus(
            t,
            port,
            port_states=states,
            host_states=host.get(t, {}),
            port_time_wait_recent=recent.get((t, port)),
        )
        for (t, port), states in sorted(sockets.items())
    )
    if gpu:
        for (t, index), values in sorted(gpu.items()):
            util = values.get("rerank_doctor_gpu_utilization_ratio")
            used = values.get("rerank_doctor_gpu_memory_used_bytes")
            total = values.get("rerank_doctor_gpu_memory_total_bytes")
            clock = values.get("rerank_doctor_gpu_sm_clock_hertz")
            bundle.gpu.append(
                GpuSample(
                    t,
                    index,
                    None if util is None else util * 100.0,
                    None if used is None else used / 2**20,
                    None if total is None else total / 2**20,
                    values.get("rerank_doctor_gpu_power_watts"),
                    None if clock is None else clock / 1e6,
                    gpu_names.get(index),
                )
            )


def dcgm_readings(bundle: Bundle, series: list[Series]) -> None:
    """dcgm-exporter's series of one replica into its Bundle's GPU rows (the exporter's NVML rows are then
    left out)."""
    rows: dict[tuple[float, int], dict[str, float]] = {}
    models: dict[int, str] = {}
    for s in series:
        gpu = s.labels.get("gpu", "")
        if not gpu.isdigit():
            continue
        if s.labels.get("modelName"):
            models[int(gpu)] = s.labels["modelName"]
        for t, v in s.points:
            rows.setdefault((t, int(gpu)), {})[s.labels.get("__name__", "")] = v
    if not rows:
        return
    bundle.gpu = []
    for (t, index), values in sorted(rows.items()):
        used, free = values.get("DCGM_FI_DEV_FB_USED"), values.get("DCGM_FI_DEV_FB_FREE")
        bundle.gpu.append(
            GpuSample(
                t,
                index,
                values.get("DCGM_FI_DEV_GPU_UTIL"),
                used,
                used + free if used is not None and free is not None else None,
                values.get("DCGM_FI_DEV_POWER_USAGE"),
                values.get("DCGM_FI_DEV_SM_CLOCK"),
                models.get(index),
                util_max_pct=values.get("DCGM_FI_DEV_GPU_UTIL" + MAX_SUFFIX),
                power_max_w=values.get("DCGM_FI_DEV_POWER_USAGE" + MAX_SUFFIX),
            )
        )
