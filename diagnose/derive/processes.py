"""Which vLLM process is which, and how busy each role was over a window. Pure: no psutil here.

vLLM names its processes with setproctitle as `<prefix>::<name>` (prefix `VLLM` unless
VLLM_PROCESS_NAME_PREFIX says otherwise; vllm/utils/system_utils.py `set_process_title`):
- `VLLM::EngineCore`, or `VLLM::EngineCore_DP<rank>` with data parallelism (vllm/v1/engine/core.py);
- `VLLM::Worker`, `VLLM::Worker_TP<rank>`... (vllm/v1/executor/multiproc_executor.py): the model runner
  on the CPU build, and on GPU builds only when tensor/pipeline parallelism spawns workers;
- `VLLM::APIServer_<index>` with `--api-server-count N` (vllm/v1/utils.py), `VLLM::APIServer_DP<rank>`
  under the DP supervisor; `VLLM::DPCoordinator` is bookkeeping, not a server.
A single API server keeps its command line (`python -m vllm.entrypoints.openai.api_server ...` or
`vllm serve ...`), which is how it is recognised.

CPU is judged per process, in percent of ONE core, because the bottleneck vLLM hits is one Python
process pinned at one core (DESIGN §2): two API servers at 50 % each are not "100 % busy".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from diagnose.readings import HOST_TOTAL, ProcessSample

ROLES = ("api_server", "engine_core", "worker", "host", "other")

_TITLE = re.compile(r"^\S*::(?P<title>APIServer|EngineCore|Worker|DPCoordinator)(?:_|\s|$)")
_TITLE_ROLE = {"APIServer": "api_server", "EngineCore": "engine_core", "Worker": "worker"}
_API_CMD = re.compile(r"vllm\.entrypoints\.|(?:^|[\s/])vllm\s+serve(?:\s|$)")
# A shell or launcher whose command line merely contains `vllm serve` (`bash -c "vllm serve ..."`)
# runs nothing itself; counting it as an API server would double the count.
_WRAPPERS = frozenset(
    {"sh", "bash", "dash", "zsh", "ksh", "fish", "sudo", "su", "nohup", "timeout", "tini", "dumb-init", "env"}
)


def role_of(name: str, cmd: str) -> str:
    """The role of one process: api_server, engine_core, worker, host (the HOST_TOTAL row) or other."""
    if name == HOST_TOTAL:
        return "host"
    for text in (name, cmd.lstrip()):
        titled = _TITLE.match(text)
        if titled:
            return _TITLE_ROLE.get(titled.group("title"), "other")
    if name in _WRAPPERS:
        return "other"
    # multiprocessing's resource_tracker / spawn helpers carry no vllm.entrypoints in their command line.
    if _API_CMD.search(cmd):
        return "api_server"
    return "other"


def is_titled_api_server(name: str, cmd: str) -> bool:
    """True for a `VLLM::APIServer_N` process of multi-API-server mode (not the launcher above them)."""
    return any(
        (m := _TITLE.match(text)) is not None and m.group("title") == "APIServer"
        for text in (name, cmd.lstrip())
    )


@dataclass(frozen=True, slots=True)
class RoleCpu:
    """CPU of one role over a window, from per-process samples (psutil cpu_percent).

    The figures are those of the BUSIEST process of the role (highest mean), in percent of one core:
    with several API servers, the one that saturates first is the one that limits (DESIGN §2:
    requests spread unevenly, 62 to 696 per server). For the `host` role they are the HOST_TOTAL row,
    in percent of ALL cores.

    Note: on the CPU build `VLLM::Worker` spin-waits near 90 % of a core even at 3 calls/s, so a worker
    near 100 % is not by itself saturation.
    """

    role: str
    mean_pct: float | None  # busiest process: mean cpu_percent over the window; None if never readable
    max_pct: float | None  # busiest process: highest single sample
    busiest_pid: int | None  # the process the figures above describe
    process_count: int  # distinct processes of this role seen in the window
    sample_count: int  # samples with a value behind mean_pct
    # Sum of every process's mean in this role (cores' worth in use); None unless every process of the
    # role has samples (a sum over some of them would pass for all, and the busiest's share for 100 %).
    total_mean_pct: float | None


def _in_window(t: float, t0: float | None, t1: float | None) -> bool:
    # A sample at t covers the interval that ENDS at t, so one taken exactly at t0 belongs before it.
    return (t0 is None or t > t0) and (t1 is None or t <= t1)


def cpu_by_role(
    samples: Iterable[ProcessSample], t0: float | None = None, t1: float | None = None
) -> dict[str, RoleCpu]:
    """Per-role CPU over (t0, t1] (either bound may be None: open). Roles with no process are absent.

    In multi-API-server mode the launcher process (`vllm serve ...`, parent of the `VLLM::APIServer_N`
    processes) only supervises; once titled API servers are seen, the launcher counts as `other`.
    """
    chosen = [s for s in samples if _in_window(s.t_unix, t0, t1)]
    titled_api = any(is_titled_api_server(s.name, s.cmd) for s in chosen)

    # Keyed by (pid, name): a pid reused by an unrelated process within the window stays apart.
    values: dict[tuple[int, str], list[float]] = {}
    peaks: dict[tuple[int, str], list[float]] = {}  # each sample's highest reading (its own, or its max)
    roles: dict[tuple[int, str], str] = {}
    for s in chosen:
        key = (s.pid, s.name)
        if key not in roles:
            role = role_of(s.name, s.cmd)
            if role == "api_server" and titled_api and not is_titled_api_server(s.name, s.cmd):
                role = "other"
            roles[key] = role
            values[key] = []
            peaks[key] = []
        if s.cpu_percent is not None:
            values[key].append(s.cpu_percent)
            peaks[key].append(s.cpu_max_percent if s.cpu_max_percent is not None else s.cpu_percent)

    out: dict[str, RoleCpu] = {}
    for role in ROLES:
        keys = [k for k, r in roles.items() if r == role]
        if not keys:
            continue
        means = {k: sum(values[k]) / len(values[k]) for k in keys if values[k]}
        if not means:
            out[role] = RoleCpu(role, None, None, None, len(keys), 0, None)
            continue
        # Busiest first; ties go to the lower pid so the answer does not depend on sample order.
        busiest = min(means, key=lambda k: (-means[k], k[0]))
        out[role] = RoleCpu(
            role=role,
            mean_pct=means[busiest],
            max_pct=max(peaks[busiest]),
            busiest_pid=busiest[0],
            process_count=len(keys),
            sample_count=len(values[busiest]),
            total_mean_pct=sum(means.values()) if len(means) == len(keys) else None,
        )
    return out
