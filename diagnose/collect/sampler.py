"""Collects one window: every source sampled on a fixed beat, /metrics scraped less often.

Each reading is appended to the bundle writer the moment it arrives, so Ctrl-C or a crash keeps what
was gathered. Failures become CollectorIssue values (the first of each kind kept, repeats counted);
only an unreachable server at the very first scrape ends the window early, since waiting out the
duration would gather nothing the user asked for. A scrape that fails after others worked keeps the
window: what arrived is diagnosed, with a note saying a later scrape was lost.

Ctrl-C (and SIGTERM, which the CLI turns into the same) is never swallowed: the window is closed (the
writer gets server.json and issues.json) and `CollectionInterrupted` carries the partial bundle up, so
`check` can still diagnose it and `watch` stops. It is a KeyboardInterrupt, so a caller that does not
handle it still ends with exit 130.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from diagnose.readings import Bundle, CollectorIssue, MetricsDump, ServerInfo


class _Writer(Protocol):
    def add_dump(self, dump: MetricsDump) -> None: ...
    def add_gpu(self, samples: Any) -> None: ...
    def add_gpu_processes(self, rows: Any) -> None: ...
    def add_processes(self, samples: Any) -> None: ...
    def add_sockets(self, census: Any) -> None: ...
    def set_server(self, server: ServerInfo) -> None: ...
    def set_issues(self, issues: Any) -> None: ...


@dataclass
class Sources:
    """The collectors for one window; any may be None (not asked for, or not available here)."""

    vllm: Any = None  # diagnose.collect.vllm.VllmSource
    host: Any = None  # diagnose.collect.host.HostSource
    sockets: Any = None  # diagnose.collect.sockets.SocketSource
    gpu: Any = None  # diagnose.collect.gpu.NvmlSource
    port: int | None = None  # the serving port, for the socket census and finding the vLLM processes
    pid: int | None = None  # the vLLM API server's pid, when the port does not lead to it


@dataclass
class Progress:
    """What the window has gathered so far; handed to the progress callback on every beat."""

    elapsed_s: float = 0.0
    duration_s: float = 0.0
    dumps: int = 0
    gpu_samples: int = 0
    process_samples: int = 0
    socket_samples: int = 0
    issues: list[CollectorIssue] = field(default_factory=list)
    stopped_early: str | None = None


class CollectionInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a window: what was collected until then, and for how long."""

    def __init__(self, bundle: Bundle, progress: Progress):
        super().__init__(progress.stopped_early or "interrupted")
        self.bundle = bundle
        self.progress = progress


class _Issues:
    """Keeps the first issue of each (collector, reason) and counts the repeats."""

    def __init__(self, bundle: Bundle):
        self._bundle = bundle
        self._seen: dict[tuple[str, str], int] = {}

    def add(self, issue: CollectorIssue | None) -> None:
        if issue is None:
            return
        key = (issue.collector, issue.reason)
        self._seen[key] = self._seen.get(key, 0) + 1
        if self._seen[key] == 1:
            self._bundle.issues.append(issue)


def collect_window(
    sources: Sources,
    *,
    duration_s: float,
    interval_s: float = 1.0,
    metrics_interval_s: float = 5.0,
    sockets_interval_s: float = 5.0,
    writer: _Writer | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Bundle:
    # The window's dumps as text (~50 KB a scrape; parsed only when the window is diagnosed, one pass).
    dumps: list[MetricsDump] = []
    bundle = Bundle(dumps=dumps)
    issues = _Issues(bundle)
    progress = Progress(duration_s=duration_s, issues=bundle.issues)

    def start_sources() -> None:
        if sources.vllm is not None:
            bundle.server, server_issues = sources.vllm.server_info()
            for issue in server_issues:
                issues.add(issue)
        if sources.host is not None:
            pids, flags, issue = sources.host.find_vllm(port=sources.port, pid=sources.pid)
            bundle.server.pids = list(pids)
            bundle.server.flags = bundle.server.flags or flags
            bundle.server.host_cores = sources.host.cores()
            issues.add(issue)
        if sources.gpu is not None:
            issue = sources.gpu.start()
            issues.add(issue)
            if issue is not None:
                sources.gpu = None  # no NVML here: stated once, not retried every beat

    def scrape() -> bool:
        result = sources.vllm.scrape()
        if isinstance(result, CollectorIssue):
            issues.add(result)
            if bundle.dumps:
                # Lost data is not lost work: the dumps that arrived are the window, and it says so.
                issues.add(
                    CollectorIssue(
                        result.t_unix,
                        "collect",
                        f"a later /metrics scrape failed ({result.reason}); the window is diagnosed "
                        "from the scrapes that arrived before it",
                        result.fix,
                    )
                )
            return False
        dumps.append(result)
        for issue in sources.vllm.dump_issues(result):
            issues.add(issue)
        if writer:
            writer.add_dump(result)
        progress.dumps += 1
        return True

    next_census = 0.0

    def sample_others() -> None:
        nonlocal next_census
        if sources.gpu is not None:
            gpus, gpu_procs, issue = sources.gpu.sample()
            issues.add(issue)
            bundle.gpu.extend(gpus)
            bundle.gpu_processes.extend(gpu_procs)
            if writer:
                writer.add_gpu(gpus)
                writer.add_gpu_processes(gpu_procs)
            progress.gpu_samples += len(gpus)
        if sources.host is not None and bundle.server.pids:
            samples = sources.host.sample(bundle.server.pids)
            bundle.processes.extend(samples)
            if writer:
                writer.add_processes(samples)
            progress.process_samples += len(samples)
        # The census walks the kernel's whole TCP hash (~3-5 ms, most of a beat's CPU), and a
        # TIME_WAIT socket lives 60 s on Linux: every few seconds sees a flood just as well.
        if sources.sockets is not None and clock() >= next_census:
            next_census = clock() + sockets_interval_s
            census = sources.sockets.census(sources.port)
            if isinstance(census, CollectorIssue):
                issues.add(census)
                sources.sockets = None
            else:
                bundle.sockets.append(census)
                if writer:
                    writer.add_sockets(census)
                progress.socket_samples += 1

    start = clock()
    next_scrape = start
    interrupted = False
    try:
        start_sources()
        # The window opens at its first scrape, not before the sources start: on a saturated server
        # /health, /version, /v1/models and the process scan took the whole 15 s of a CI window once,
        # and the "window" between its two scrapes was 13 ms.
        start = next_scrape = clock()
        if sources.vllm is not None:
            first_ok = scrape()
            next_scrape = start + metrics_interval_s
            if not first_ok and bundle.server.healthy is None:
                progress.stopped_early = "the vLLM server could not be reached"
                return bundle
        beat = 0
        while True:
            now = clock()
            progress.elapsed_s = now - start
            if progress.elapsed_s >= duration_s:
                break
            sample_others()
            if sources.vllm is not None and clock() >= next_scrape:
                scrape()
                next_scrape += metrics_interval_s
            if on_progress:
                on_progress(progress)
            beat += 1
            sleep(max(0.0, start + beat * interval_s - clock()))
        if sources.vllm is not None:
            scrape()  # the window's closing scrape: counters need a before AND an after
    except KeyboardInterrupt:
        interrupted = True
        progress.stopped_early = f"interrupted after {clock() - start:.1f} s"
        issues.add(
            CollectorIssue(
                time.time(),
                "collect",
                f"interrupted after {clock() - start:.1f} s of a {duration_s:g} s window: "
                "the report covers what was collected until then",
            )
        )
    finally:
        progress.elapsed_s = clock() - start
        if sources.gpu is not None:
            sources.gpu.close()
        if writer:
            writer.set_server(bundle.server)
            writer.set_issues(bundle.issues)
        if on_progress:
            on_progress(progress)
    if interrupted:
        raise CollectionInterrupted(bundle, progress)
    return bundle
