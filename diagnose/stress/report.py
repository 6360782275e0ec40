"""`LoadReport`: what a load run measured, built from the recorded calls (pure), and its JSON form.

Open loop: `latency` counts from each call's INTENDED send time, so calls that queued behind a stall
(in the server, or in the generator itself) carry that wait; `service_time` counts from the actual
send, for comparison. Closed loop: only service time exists, and `omission` says what that hides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from diagnose.stress.outcomes import OK, UNFINISHED
from diagnose.stress.recorder import Recorder
from diagnose.stress.server_view import ServerView
from diagnose.stress.stats import LagSummary, LatencySummary, OmissionEstimate, omission_estimate

SCHEMA_VERSION = 1

CLOSED_LOOP_NOTE = (
    "closed loop: latency is service time only. A worker waiting on a slow answer sends nothing "
    "meanwhile, so stalls are under-counted (coordinated omission); `omission` estimates the sends "
    "they delayed. Use --rate (open loop) for latency users would see."
)


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    kind: str
    status: int | None
    message: str
    count: int


@dataclass(slots=True)
class LoadReport:
    mode: str  # "open" | "closed"
    target: dict[str, Any]  # base_url, endpoint, model, auth ("bearer" or None; never the key)
    settings: dict[str, Any]
    started_unix: float
    elapsed_s: float  # first intended send to the last answer (or the stop)
    send_window_s: float  # first intended send to when sending stopped
    stopped_by: str  # "duration" | "max_requests" | "interrupt" | "window" (the collection's closed)
    calls_sent: int
    calls_ok: int
    calls_failed: int
    calls_unfinished: int
    target_rate_per_s: float | None  # open loop only (the rate after any ramp)
    offered_rate_per_s: float | None  # open loop: scheduled calls / send window
    achieved_send_rate_per_s: float | None  # calls actually sent / send window
    calls_per_s: float | None  # successful calls / elapsed
    pairs_per_s: float | None  # documents of successful calls / elapsed
    latency: LatencySummary  # successful calls; open loop: from intended send time
    service_time: LatencySummary  # successful calls, from actual send time
    schedule_lag: LagSummary | None  # open loop only
    omission: OmissionEstimate | None  # closed loop only
    errors: list[ErrorGroup]
    bodies: dict[str, Any]
    server: ServerView | None
    server_problem: str | None  # why there is no server view
    notes: list[str] = field(default_factory=list)

    @property
    def interrupted(self) -> bool:
        return self.stopped_by == "interrupt"

    def errors_by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for group in self.errors:
            counts[group.kind] = counts.get(group.kind, 0) + group.count
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "mode": self.mode,
            "target": dict(self.target),
            "settings": dict(self.settings),
            "started_unix": self.started_unix,
            "elapsed_s": self.elapsed_s,
            "send_window_s": self.send_window_s,
            "stopped_by": self.stopped_by,
            "interrupted": self.interrupted,
            "calls": {
                "sent": self.calls_sent,
                "ok": self.calls_ok,
                "failed": self.calls_failed,
                "unfinished": self.calls_unfinished,
            },
            "target_rate_per_s": self.target_rate_per_s,
            "offered_rate_per_s": self.offered_rate_per_s,
            "achieved_send_rate_per_s": self.achieved_send_rate_per_s,
            "calls_per_s": self.calls_per_s,
            "pairs_per_s": self.pairs_per_s,
            "latency": self.latency.to_dict(),
            "latency_measured_from": "intended send time" if self.mode == "open" else "actual send time",
            "service_time": self.service_time.to_dict(),
            "schedule_lag": self.schedule_lag.to_dict() if self.schedule_lag else None,
            "omission": self.omission.to_dict() if self.omission else None,
            "errors_by_kind": self.errors_by_kind(),
            "errors": [
                {"kind": g.kind, "status": g.status, "message": g.message, "count": g.count}
                for g in self.errors
            ],
            "bodies": dict(self.bodies),
            "server": self.server.to_dict() if self.server else None,
            "server_problem": self.server_problem,
            "notes": list(self.notes),
        }


def build_report(
    *,
    recorder: Recorder,
    mode: str,
    target: dict[str, Any],
    settings: dict[str, Any],
    started_unix: float,
    t0: float,
    send_end: float,
    end: float,
    stopped_by: str,
    scheduled: int | None,
    target_rate_per_s: float | None,
    bodies: dict[str, Any],
    server: ServerView | None,
    server_problem: str | None,
) -> LoadReport:
    """Summarize the recorded calls. Times are loop.time() seconds; t0 is the first intended send."""
    calls = recorder.calls
    done_ok = [c for c in calls if c.kind == OK and c.done is not None]
    latencies = [c.done - c.intended for c in done_ok if c.done is not None]
    service = [c.done - c.sent for c in done_ok if c.done is not None]
    elapsed = max(end - t0, 1e-9)
    send_window = max(send_end - t0, 1e-9)
    unfinished = sum(1 for c in calls if c.kind == UNFINISHED)
    notes: list[str] = []
    omission = None
    lag = None
    if mode == "open":
        lag = LagSummary.of([c.sent - c.intended for c in calls])
    else:
        omission = omission_estimate(service)
        notes.append(CLOSED_LOOP_NOTE)
    if unfinished:
        notes.append(
            f"{unfinished} calls were still in flight when the run stopped; their latency is unknown "
            "and they are not in the percentiles (the slowest calls are the likeliest to be missing)"
        )
    repeats = len(calls) / bodies["distinct"] if bodies.get("distinct") else None
    if repeats is not None and repeats > 1:
        notes.append(
            f"each distinct body was sent ~{repeats:.1f} times: repeated (query, document) pairs can hit "
            "vLLM's prefix cache; raise --distinct-bodies for a colder cache"
        )
    errors = sorted(
        (ErrorGroup(kind, status, message, n) for (kind, status, message), n in recorder.errors.items()),
        key=lambda g: -g.count,
    )
    pairs_ok = sum(c.docs for c in done_ok)
    return LoadReport(
        mode=mode,
        target=target,
        settings=settings,
        started_unix=started_unix,
        elapsed_s=elapsed,
        send_window_s=send_window,
        stopped_by=stopped_by,
        calls_sent=len(calls),
        calls_ok=len(done_ok),
        calls_failed=len(calls) - len(done_ok) - unfinished,
        calls_unfinished=unfinished,
        target_rate_per_s=target_rate_per_s,
        offered_rate_per_s=(scheduled / send_window) if scheduled is not None else None,
        achieved_send_rate_per_s=len(calls) / send_window,
        calls_per_s=len(done_ok) / elapsed,
        pairs_per_s=pairs_ok / elapsed,
        latency=LatencySummary.of(latencies),
        service_time=LatencySummary.of(service),
        schedule_lag=lag,
        omission=omission,
        errors=errors,
        bodies={**bodies, "sent_per_distinct_body": repeats},
        server=server,
        server_problem=server_problem,
        notes=notes,
    )
