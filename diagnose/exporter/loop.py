"""The background collection: windows back to back, each diagnosed, the last good one published.

Each window uses the same pipeline as `rerank-doctor check --url`: `build_sources` ->
`collect_window` -> `diagnose.pipeline.diagnose`. The sources are built anew for every window because
`collect_window` owns their lifetime (it starts and closes NVML, and drops a source that failed).
A window that gets no /metrics at all is a failure: the last good snapshot stays, marked stale.
Nothing here raises out of the thread: an unexpected error is a failed window with its one-line reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from diagnose.exporter.snapshot import COLLECTORS, build_snapshot, collector_up
from diagnose.exporter.state import ExporterState
from diagnose.readings import Bundle
from diagnose.thresholds import Thresholds

# Hours of windows must not grow memory: nothing from a window is kept past its snapshot.


class CollectionLoop:
    def __init__(
        self,
        url: str,
        state: ExporterState,
        *,
        window_s: float = 30.0,
        interval_s: float = 5.0,
        metrics_interval_s: float = 30.0,
        pid: int | None = None,
        api_key: str | None = None,
        timeout_s: float = 5.0,
        use_gpu: bool = True,
        thresholds: Thresholds | None = None,
        retry_s: float = 5.0,
        build_sources: Callable[..., tuple[Any, list[Any]]] | None = None,
        collect_window: Callable[..., Bundle] | None = None,
        server_info_every: int = 10,
    ) -> None:
        self.url = url
        self.state = state
        self.window_s = window_s
        self.interval_s = interval_s
        self.metrics_interval_s = min(metrics_interval_s, window_s)
        self.pid = pid
        self._api_key = api_key
        self.timeout_s = timeout_s
        self.use_gpu = use_gpu
        self.thresholds = thresholds or Thresholds()
        self.retry_s = retry_s
        self._build_sources = build_sources
        self._collect_window = collect_window
        self._kept: dict[str, Any] = {}
        self.server_info_every = server_info_every
        self._known_pid: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- one window -----------------------------------------------------------------------------
    def run_once(self) -> bool:
        """Collect and diagnose one window; publish it. True when it produced a report."""
        from diagnose.collect import run, sampler
        from diagnose.collect.sockets import TCP_STATES
        from diagnose.pipeline import diagnose, metrics_issue

        build_sources = self._build_sources or run.build_sources
        collect_window = self._collect_window or sampler.collect_window

        started = time.monotonic()
        try:
            sources, notes = build_sources(
                self.url, pid=self.pid, api_key=self._api_key, timeout_s=self.timeout_s, use_gpu=self.use_gpu
            )
            self._reuse(sources)
            bundle = collect_window(
                sources,
                duration_s=self.window_s,
                interval_s=self.interval_s,
                metrics_interval_s=self.metrics_interval_s,
                clock=self._clock,
                sleep=self._sleep,
            )
            bundle.issues[:0] = notes
        except Exception as err:  # a bug or an unforeseen failure: a failed window, never a dead thread
            self.state.fail(
                f"collection failed: {type(err).__name__}: {err}", dict.fromkeys(COLLECTORS, False)
            )
            return False
        # The root of vLLM's process tree, found by its port this window, is where the next window starts:
        # finding it by port walks every process's socket table (~0.1 s); by pid it is one lookup. When
        # vLLM restarts, the old pid is gone, the window finds nothing, and the next one searches again.
        self._known_pid = bundle.server.pids[0] if bundle.server.pids else None
        if not bundle.dumps:
            first = metrics_issue(bundle)
            reason = first.reason if first else f"no /metrics from {self.url}"
            self.state.fail(reason, collector_up(bundle))
            return False
        try:
            report = diagnose(bundle, self.thresholds, source=self.url)
        except Exception as err:
            self.state.fail(f"diagnosis failed: {type(err).__name__}: {err}", collector_up(bundle))
            return False
        self.state.publish(
            build_snapshot(
                bundle,
                report,
                window_end_t_unix=time.time(),
                collection_s=time.monotonic() - started,
                tcp_states=TCP_STATES.values(),
            )
        )
        return True

    def _reuse(self, sources: Any) -> None:
        """Keep the vLLM, host and socket sources across windows (one HTTP connection pool; psutil's
        per-process CPU baselines and cached command lines), and start from the known vLLM pid."""
        if getattr(sources, "vllm", None) is not None and "vllm" not in self._kept:
            self._kept["vllm"] = _CachedServerInfo(sources.vllm, self.server_info_every)
        for name in ("vllm", "host", "sockets"):
            kept = self._kept.get(name)
            if kept is not None and getattr(sources, name, None) is not None:
                setattr(sources, name, kept)
            elif getattr(sources, name, None) is not None:
                self._kept[name] = getattr(sources, name)
        if self.pid is None and self._known_pid is not None and hasattr(sources, "pid"):
            sources.pid = self._known_pid

    # --- the thread -----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rerank-doctor-collect", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.run_once():
                self._stop.wait(self.retry_s)  # vLLM down or hanging: don't hammer it

    # collect_window runs on these: once stop() is called its clock jumps past the window's end and
    # its sleeps return at once, so the thread ends within one beat instead of one window.
    def _clock(self) -> float:
        return time.monotonic() + (1e9 if self._stop.is_set() else 0.0)

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)


class _CachedServerInfo:
    """A VllmSource whose server_info() (/health, /version, /v1/models: three requests, ~30 ms of CPU)
    is asked every `every` windows instead of every window: the version and model do not change while
    the server runs, and each window's /metrics scrapes already say whether it answers. A failed answer
    is never cached, so a restarted server is seen again at the next window."""

    def __init__(self, source: Any, every: int) -> None:
        self._source = source
        self._every = max(1, every)
        self._cached: Any = None
        self._uses = 0

    def server_info(self) -> Any:
        if self._cached is None or self._uses >= self._every:
            info, issues = self._source.server_info()
            # A copy: collect_window writes the pids and flags into what it is handed.
            self._cached = (replace(info, pids=list(info.pids)), []) if info.healthy and not issues else None
            self._uses = 1
            return info, issues
        self._uses += 1
        info, issues = self._cached
        return replace(info, pids=list(info.pids)), list(issues)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)
