"""The running tally of a load run: one `Call` per request, plus the live numbers the progress shows.

All times are `loop.time()` (monotonic seconds). The recorder is touched only from the event loop's
thread, so it needs no locks.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from diagnose.stress.outcomes import OK, UNFINISHED


@dataclass(slots=True)
class Call:
    intended: float  # when the schedule meant to send it (closed loop: = sent)
    sent: float  # when the request coroutine started sending
    done: float | None  # when the full answer (or the error) arrived; None while in flight / unfinished
    kind: str  # see diagnose.stress.outcomes
    status: int | None  # HTTP status, None when there was no answer
    docs: int


@dataclass(slots=True)
class Recorder:
    calls: list[Call] = field(default_factory=list)
    # (kind, status, message) -> count; messages are the server's, one line each
    errors: Counter[tuple[str, int | None, str]] = field(default_factory=Counter)
    in_flight: int = 0
    ok: int = 0
    failed: int = 0
    # Latest latencies (s) for the live p95 only; the report uses every call.
    recent_latency_s: deque[float] = field(default_factory=lambda: deque(maxlen=2000))

    def start(self, intended: float, sent: float, docs: int) -> Call:
        call = Call(intended=intended, sent=sent, done=None, kind=UNFINISHED, status=None, docs=docs)
        self.calls.append(call)
        self.in_flight += 1
        return call

    def finish(self, call: Call, done: float, kind: str, status: int | None, message: str = "") -> None:
        call.done = done
        call.kind = kind
        call.status = status
        self.in_flight -= 1
        self.recent_latency_s.append(done - call.intended)
        if kind == OK:
            self.ok += 1
        else:
            self.failed += 1
            self.errors[(kind, status, message)] += 1

    def abandon(self, call: Call, why: str = "still in flight when the run was interrupted") -> None:
        """The run stopped (Ctrl-C, or the drain's bound) with this call in flight: its latency is unknown."""
        self.in_flight -= 1
        self.errors[(UNFINISHED, None, why)] += 1
