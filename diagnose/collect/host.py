"""The vLLM processes on this host and their CPU: which process is the bottleneck (DESIGN §2).

Finding them: the process LISTENING on the serving port is an API server. In multi-API-server mode the
launcher (`vllm serve ... --api-server-count N`) opens the socket and its `VLLM::APIServer_<i>`
children inherit it, so several processes hold it; the launcher is their common ancestor. From the
topmost vLLM process, the whole tree below it is taken: API servers, `VLLM::EngineCore`, `VLLM::Worker`
(the CPU build's model runner), and helpers such as multiprocessing's resource_tracker.

CPU: psutil's `cpu_percent(None)` is the CPU used since the previous call on the SAME Process object,
so the objects are kept between samples; the first call only primes and is not reported. A pid that
now belongs to another process (create_time changed) is primed afresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import psutil

from diagnose.derive.processes import role_of
from diagnose.readings import HOST_TOTAL, CollectorIssue, ProcessSample
from diagnose.redact import redact_command_line

_FIX = "pass --pid PID, or run on the host that serves the port (as root to see other users' processes)"


class HostSource:
    """Finds the vLLM process tree and samples its CPU. `ps` is the psutil module (tests pass a fake)."""

    def __init__(
        self, ps: Any = psutil, clock: Callable[[], float] = time.time, rediscover_every_s: float = 10.0
    ) -> None:
        self._ps = ps
        self._clock = clock
        # pid -> (Process, create_time) for processes whose cpu_percent has been primed.
        self._known: dict[int, tuple[Any, float | None]] = {}
        self._host_primed = False
        # Walking the tree reads every /proc/*/stat (psutil's ppid_map): ~3 ms a beat on a quiet host,
        # most of a 1 Hz sample's budget. vLLM's tree changes only when it (re)starts workers, so the
        # walk is redone every `rediscover_every_s`, and at once when a known process is gone.
        self._rediscover_every_s = rediscover_every_s
        self._tree: dict[int, Any] = {}
        self._tree_roots: tuple[int, ...] = ()
        self._tree_at: float | None = None
        # (pid, create_time) -> redacted command line: argv is read and redacted once per process.
        self._cmds: dict[tuple[int, float | None], str] = {}

    def cores(self) -> int | None:
        """Logical CPUs of this host: the bound a process's CPU (% of one core) cannot pass."""
        cpu_count = getattr(self._ps, "cpu_count", None)
        count = cpu_count() if callable(cpu_count) else None
        return count if isinstance(count, int) and count > 0 else None

    # -- finding ----------------------------------------------------------------------------------

    def find_vllm(
        self, port: int | None = None, pid: int | None = None
    ) -> tuple[list[int], str | None, CollectorIssue | None]:
        """(pids of the vLLM tree, root first; the API server's redacted command line; issue or None)."""
        ps = self._ps
        start: list[int] = []
        if pid is not None:
            if not ps.pid_exists(pid):
                return [], None, self._issue(f"no process with pid {pid} on this host", _FIX)
            start = [pid]
        elif port is not None:
            start = self._listeners(port)
            if not start:
                return (
                    [],
                    None,
                    self._issue(
                        f"no process on this host is listening on TCP port {port} (or it belongs to "
                        "another user)",
                        _FIX,
                    ),
                )
        else:
            return [], None, self._issue("neither a serving port nor a pid was given", _FIX)

        root = self._topmost_vllm(start[0])
        try:
            proc = ps.Process(root)
            tree = [proc, *proc.children(recursive=True)]
        except ps.NoSuchProcess:
            return [], None, self._issue(f"process {root} exited while it was being looked at", _FIX)
        except ps.AccessDenied:
            return [root], None, self._issue(f"not allowed to list the children of process {root}", _FIX)
        pids = [p.pid for p in tree]
        for p in tree:
            self._prime(p)
        self._prime_host()
        return pids, self._api_server_cmd(tree, start), None

    def _listeners(self, port: int) -> list[int]:
        """Pids LISTENING on `port`. Cheap first: only processes that look like vLLM are asked for their
        sockets (psutil parses the socket table once per process asked). Then, for a vLLM started under
        another name, the host-wide table, which costs one full parse (~1 s under a TIME_WAIT flood)."""
        ps = self._ps
        found: list[int] = []
        for proc in ps.process_iter(["pid", "name", "cmdline"]):
            info = proc.info
            cmd = " ".join(info.get("cmdline") or [])
            if role_of(info.get("name") or "", cmd) in ("api_server", "engine_core", "worker") and (
                self._listens(proc, port)
            ):
                found.append(info["pid"])
        if found:
            return sorted(found)
        try:
            conns = ps.net_connections(kind="tcp")
        except (ps.AccessDenied, OSError):
            return []
        return sorted(
            {
                c.pid
                for c in conns
                if c.pid and c.status == ps.CONN_LISTEN and c.laddr and c.laddr.port == port
            }
        )

    def _listens(self, proc: Any, port: int) -> bool:
        ps = self._ps
        try:
            # psutil >= 6 names it net_connections; older releases call it connections.
            get = getattr(proc, "net_connections", None) or proc.connections
            conns = get(kind="tcp")
        except (ps.NoSuchProcess, ps.AccessDenied, ps.ZombieProcess):
            return False
        return any(c.status == ps.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns)

    def _topmost_vllm(self, pid: int) -> int:
        """Walk up while the parent is a vLLM process too (APIServer_N -> launcher; EngineCore -> server)."""
        ps = self._ps
        current = pid
        for _ in range(64):  # a bound, in case of a cycle in a fake or a racing table
            try:
                parent = ps.Process(current).parent()
                if parent is None or parent.pid <= 1:
                    return current
                if role_of(parent.name(), " ".join(parent.cmdline())) == "other":
                    return current
                current = parent.pid
            except (ps.NoSuchProcess, ps.AccessDenied, ps.ZombieProcess):
                return current
        return current

    def _api_server_cmd(self, tree: list[Any], listeners: list[int]) -> str | None:
        """The launcher's (or single API server's) command line: it holds the flags the user typed."""
        ps = self._ps
        by_pid = {p.pid: p for p in tree}
        for candidate in [tree[0].pid, *listeners]:
            proc = by_pid.get(candidate)
            if proc is None:
                continue
            try:
                argv = proc.cmdline()
            except (ps.NoSuchProcess, ps.AccessDenied, ps.ZombieProcess):
                continue
            if role_of(proc.name(), " ".join(argv)) == "api_server":
                return redact_command_line(argv)
        return None

    # -- sampling ---------------------------------------------------------------------------------

    def sample(self, pids: Iterable[int]) -> list[ProcessSample]:
        """One row per process of the tree under `pids` (newcomers are primed, reported next time), plus
        the HOST_TOTAL row. Vanished processes are skipped; unreadable fields are None."""
        now = self._clock()
        rows: list[ProcessSample] = [self._host_row(now)]
        current = self._walk_tree(tuple(pids), now)
        for pid, proc in current.items():
            known = self._known.get(pid)
            created = self._create_time(proc)
            if known is None or (created is not None and known[1] is not None and created != known[1]):
                self._prime(proc)  # new, or the pid was reused by another process
                continue
            row = self._row(known[0], now, created)
            if row is not None:
                rows.append(row)
            else:
                self._tree_at = None  # a process of the tree is gone: walk it again next beat
        for pid in list(self._known):
            if pid not in current:
                del self._known[pid]  # gone: forget it, so a reused pid is primed afresh
        return rows

    def _walk_tree(self, roots: tuple[int, ...], now: float) -> dict[int, Any]:
        """The processes under `roots`, walked again only when due (see __init__)."""
        due = self._tree_at is None or now - self._tree_at >= self._rediscover_every_s
        if not due and roots == self._tree_roots:
            return self._tree
        ps = self._ps
        current: dict[int, Any] = {}
        for pid in roots:
            try:
                proc = self._known[pid][0] if pid in self._known else ps.Process(pid)
                current[pid] = proc
                for child in proc.children(recursive=True):
                    current.setdefault(
                        child.pid, self._known[child.pid][0] if child.pid in self._known else child
                    )
            except (ps.NoSuchProcess, ps.ZombieProcess, ps.AccessDenied):
                continue
        self._tree, self._tree_roots, self._tree_at = current, roots, now
        return current

    def _row(self, proc: Any, now: float, created: float | None = None) -> ProcessSample | None:
        ps = self._ps
        cmd = self._cmds.get((proc.pid, created))
        try:
            with proc.oneshot():
                name = self._field(proc.name)
                ppid = self._field(proc.ppid)
                cpu = self._field(lambda: proc.cpu_percent(None))
                mem = self._field(proc.memory_info)
                if cmd is None:
                    argv = self._field(proc.cmdline)
                    # setproctitle pads the title with spaces (`VLLM::EngineCore      `): trimmed.
                    cmd = redact_command_line(argv).strip() if argv else ""
                    self._cmds[(proc.pid, created)] = cmd
        except (ps.NoSuchProcess, ps.ZombieProcess):
            return None
        return ProcessSample(
            t_unix=now,
            pid=proc.pid,
            ppid=ppid if isinstance(ppid, int) else 0,
            name=name or "",
            cpu_percent=float(cpu) if cpu is not None else None,
            rss_mb=round(mem.rss / 2**20, 1) if mem is not None else None,
            cmd=cmd,
        )

    def _field(self, get: Callable[[], Any]) -> Any:
        """One reading; None when access is denied (unknown, not 0). A vanished process propagates."""
        try:
            return get()
        except self._ps.AccessDenied:
            return None

    def _host_row(self, now: float) -> ProcessSample:
        ps = self._ps
        cpu: float | None = None
        if self._host_primed:
            cpu = float(ps.cpu_percent(None))
        else:
            ps.cpu_percent(None)
            self._host_primed = True
        used_mb = round(ps.virtual_memory().used / 2**20, 1)
        return ProcessSample(now, 0, 0, HOST_TOTAL, cpu, used_mb, "host")

    def _prime(self, proc: Any) -> None:
        ps = self._ps
        try:
            proc.cpu_percent(None)
        except (ps.NoSuchProcess, ps.ZombieProcess):
            return
        except ps.AccessDenied:
            pass  # kept anyway: its rows will carry None CPU, which says "could not read"
        self._known[proc.pid] = (proc, self._create_time(proc))

    def _create_time(self, proc: Any) -> float | None:
        ps = self._ps
        try:
            return float(proc.create_time())
        except (ps.NoSuchProcess, ps.ZombieProcess, ps.AccessDenied):
            return None

    def _prime_host(self) -> None:
        if not self._host_primed:
            self._ps.cpu_percent(None)
            self._host_primed = True

    def _issue(self, reason: str, fix: str) -> CollectorIssue:
        return CollectorIssue(t_unix=self._clock(), collector="host", reason=reason, fix=fix)
