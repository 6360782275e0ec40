"""The exporter's shared state: the last good snapshot and how the latest attempt went.

Written by the collection thread, read by scrapes. One lock, held only to swap references, so a scrape
never waits for a window (which takes seconds and may hang on a slow vLLM) — it waits at most for a
pointer copy.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from diagnose.exporter.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class StateView:
    """An immutable copy of the state, taken once per scrape."""

    snapshot: Snapshot | None  # the last window that produced a report
    last_attempt_ok: bool | None  # None before the first window ends
    last_attempt_t_unix: float | None
    last_error: str | None  # why the latest window failed (one line), None when it did not
    collector_up: dict[str, bool] = field(default_factory=dict)  # as of the latest attempt
    windows_ok: int = 0
    windows_failed: int = 0


class ExporterState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._view = StateView(None, None, None, None)

    def publish(self, snapshot: Snapshot) -> None:
        with self._lock:
            old = self._view
            self._view = StateView(
                snapshot=snapshot,
                last_attempt_ok=True,
                last_attempt_t_unix=snapshot.window_end_t_unix,
                last_error=None,
                collector_up=dict(snapshot.collector_up),
                windows_ok=old.windows_ok + 1,
                windows_failed=old.windows_failed,
            )

    def fail(self, reason: str, collector_up: dict[str, bool], t_unix: float | None = None) -> None:
        """The latest window produced nothing usable: keep the last good snapshot, remember why."""
        with self._lock:
            old = self._view
            self._view = StateView(
                snapshot=old.snapshot,
                last_attempt_ok=False,
                last_attempt_t_unix=time.time() if t_unix is None else t_unix,
                last_error=reason,
                collector_up=dict(collector_up),
                windows_ok=old.windows_ok,
                windows_failed=old.windows_failed + 1,
            )

    def view(self) -> StateView:
        with self._lock:
            return self._view
