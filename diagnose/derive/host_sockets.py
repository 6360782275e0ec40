"""TIME_WAIT on the whole host: the fallback when no census on the serving port exists. Pure.

DESIGN §2: host-wide totals can come from anything on the host, so a rule reading this must say so and
judge at lower confidence than from the serving port's own counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from diagnose.readings import SocketCensus, TcpTotals


@dataclass(frozen=True, slots=True)
class HostTimeWait:
    """Host-wide TCP sockets: every process's, not only vLLM's."""

    time_wait: int  # sockets in TIME_WAIT on the host (max over the window for a census)
    established: int | None  # ESTABLISHED on the host, where the source counts it (sockstat does not)
    source: str  # "census" (the collector's host-wide counts), "ss -s" or "/proc/net/sockstat"


def host_time_wait(sockets: list[SocketCensus], host_tcp: TcpTotals | None) -> HostTimeWait | None:
    """The host's TIME_WAIT from the census's host-wide counts, else a hand-run `ss -s` / sockstat."""
    with_host = [s for s in sockets if s.host_states]
    if with_host:
        return HostTimeWait(
            time_wait=max(s.host_states.get("TIME_WAIT", 0) for s in with_host),
            established=max(s.host_states.get("ESTABLISHED", 0) for s in with_host),
            source="census",
        )
    if host_tcp is not None and host_tcp.time_wait is not None:
        return HostTimeWait(
            time_wait=host_tcp.time_wait, established=host_tcp.established, source=host_tcp.source
        )
    return None
