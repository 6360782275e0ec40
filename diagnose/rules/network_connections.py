"""Step 1, `network`: a TIME_WAIT flood on the serving port — clients open a connection per call.

Each closed TCP connection sits in TIME_WAIT for 60 s on Linux, so TIME_WAIT ≈ calls per minute means
no connection is reused: every call pays a TCP (and TLS) handshake, and at ~28 k sockets the client runs
out of ephemeral ports. Where the census read the kernel's TIME_WAIT timers, the pile is judged by what the
window's own closes keep up: a pile left by a flood that ended before the window is stated, not blamed.
Only the serving port's own count is judged: host-wide TIME_WAIT can come from
anything on the host (DESIGN §2); when only a host-wide count exists (a hand-run `ss -s`), it is used
at lower confidence, capped at a warning, and the finding says why.
"""

from __future__ import annotations

from collections.abc import Mapping

from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.sockets import Sockets
from diagnose.derive.sections.traffic import Traffic
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.base import Rule, count, ladder, pick
from diagnose.thresholds import Thresholds

TIME_WAIT_S = 60.0  # Linux's fixed TIME_WAIT length (TCP_TIMEWAIT_LEN)
KEEP_ALIVE = Suggestion(
    "client: HTTP keep-alive",
    "enable",
    "new connection per call",
    "one pooled session (requests.Session, aiohttp.ClientSession, httpx.Client)",
    "reusing connections removes the handshake from every call and the TIME_WAIT pile-up",
)


class ConnectionsRule(Rule):
    id = "network-connections"
    step = 1
    label = "network"
    # A new connection per call costs CPU on both ends (the handshake, an accept, a fresh HTTP parser),
    # and on a shared host the client's churn takes the cores vLLM needs: fix the connections first.
    # Measured on the lab (benchmarks/advice.py): keep-alive took p95 0.079 -> 0.048 s.
    explains = ("cpu-host", "cpu-api-server", "cpu-model")
    needs = ((Sockets.time_wait_on_port_max, Sockets.time_wait_host_max),)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        if ev.sockets.time_wait_on_port_max is None:
            return self._host_wide(ev, t)
        tw = ev.sockets.time_wait_on_port_max
        severity = ladder(tw, t["time_wait_warning"], t["time_wait_critical"])
        if severity == Severity.OK:
            return None  # connections are reused (or traffic is light): not a fault
        port = f" {ev.sockets.serving_port}" if ev.sockets.serving_port else ""
        closing = ev.sockets.time_wait_closed_per_s_max
        if closing is not None:
            # The pile the window's own closes keep up (steady state: 60 s of them). A pile far above it
            # was left by connections closed before the window: it binds nothing now.
            kept_up = closing * TIME_WAIT_S
            now = ladder(min(tw, kept_up), t["time_wait_warning"], t["time_wait_critical"])
            if now == Severity.OK:
                return self._left_over(ev, tw, closing, port)
            severity = now
        reuse = ""
        share: float | None = None
        if ev.traffic.calls_per_s:
            share = tw / (ev.traffic.calls_per_s * TIME_WAIT_S)
            reuse = (
                f" At {ev.traffic.calls_per_s:.1f} calls/s, a minute of calls is "
                f"{count(ev.traffic.calls_per_s * TIME_WAIT_S)}: "
                f"about {min(share, 1.0) * 100:.0f} % of calls opened a new connection."
            )
        return self.finding(
            severity=severity,
            title=f"TIME_WAIT flood on port{port}: {count(tw)} sockets — clients do not reuse connections",
            detail=f"Up to {count(tw)} sockets on the serving port were in TIME_WAIT (each stays 60 s after "
            f"close).{reuse} Every new connection costs a TCP handshake (and TLS), and ~28 k of them exhaust "
            "the client's ephemeral ports.",
            numbers=pick(
                ev,
                Sockets.time_wait_on_port_max,
                Sockets.time_wait_closed_per_s_max,
                Sockets.established_on_port_max,
                Traffic.calls_per_s,
                Sockets.serving_port,
            ),
            # How close to "no connection reused at all" (1.0); unknown without the call rate.
            utilization=None if share is None else min(share, 1.0),
            suggestions=[KEEP_ALIVE],
        )

    def _left_over(self, ev: Evidence, tw: float, closing: float, port: str) -> Finding:
        """TIME_WAIT high, but the window's closes could not keep it up: a flood that has ended."""
        return self.finding(
            severity=Severity.INFO,
            title=f"TIME_WAIT on port{port}: {count(tw)} sockets left from before the window — "
            f"{closing:.1f} closed per second during it",
            detail=f"{count(tw)} sockets on the serving port were in TIME_WAIT, but during the window only "
            f"{closing:.1f} connections a second were closed (the kernel's TIME_WAIT timers say how long ago "
            f"each closed), which would keep {count(closing * TIME_WAIT_S)} in TIME_WAIT. The pile is from "
            "connections closed before the window (each stays 60 s): whatever opened them has stopped, "
            "so it does not bind now. If it recurs, keep connections alive.",
            numbers=pick(
                ev, Sockets.time_wait_on_port_max, Sockets.time_wait_closed_per_s_max, Traffic.calls_per_s
            ),
            suggestions=[KEEP_ALIVE],
        )

    def _host_wide(self, ev: Evidence, t: Mapping[str, float]) -> Finding | None:
        """Only a host-wide count (a hand-run `ss -s`, /proc/net/sockstat): the same lines, at lower
        confidence and at most a warning, because every process on the host adds to it (DESIGN §2)."""
        tw = ev.sockets.time_wait_host_max
        severity = ladder(tw, t["time_wait_warning"], t["time_wait_critical"])
        if tw is None or severity == Severity.OK:
            return None
        source = ev.sockets.time_wait_host_source or "host-wide counts"
        calls = ev.traffic.calls_per_s
        # Corroborated when vLLM's own calls in a minute could have left them all.
        corroborated = bool(calls) and tw <= 1.2 * (calls or 0.0) * TIME_WAIT_S
        rate = (
            f" vLLM served {calls:.1f} calls/s: a minute of calls could leave them." if corroborated else ""
        )
        return self.finding(
            severity=Severity(min(severity, Severity.WARNING)),
            title=f"TIME_WAIT flood on the host: {count(tw)} sockets ({source}; no serving-port census)",
            detail=f"{count(tw)} TCP sockets on the host were in TIME_WAIT ({source}). Every process on the "
            f"host counts there, not only vLLM's clients, so this is a lead, not proof.{rate} A census of "
            "the serving port (`rerank-doctor collect` on the serving host, or `ss -tan` saved as "
            "ss-tan.txt) would say whose they are.",
            numbers=pick(ev, Sockets.time_wait_host_max, Sockets.time_wait_host_source, Traffic.calls_per_s),
            confidence="medium" if corroborated else "low",
            suggestions=[KEEP_ALIVE],
        )


RULE = ConnectionsRule()
