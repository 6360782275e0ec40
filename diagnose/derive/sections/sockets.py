"""TCP sockets on the serving port (a census per sample): TIME_WAIT floods mean clients do not reuse
connections."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from diagnose.derive.host_sockets import host_time_wait
from diagnose.derive.section import Section, build, num
from diagnose.readings import RECENT_CLOSE_S, SocketCensus, TcpTotals


@dataclass(frozen=True, slots=True, kw_only=True)
class Sockets(Section):
    serving_port: int | None = num("the port vLLM serves on (from the URL or its listening socket)")
    time_wait_on_port_max: float | None = num("TIME_WAIT sockets on the serving port, max over the censuses")
    established_on_port_max: float | None = num("ESTABLISHED sockets on the serving port, max")
    # From the kernel's TIME_WAIT timers (the netlink census): the flood going on now, told from a pile
    # left by connections closed before the window (each stays 60 s).
    time_wait_closed_per_s_max: float | None = num(
        "TIME_WAIT sockets on the serving port closed in the last 5 s, per second; max over the censuses"
    )
    # The fallback when no census of the serving port exists: every process's sockets, not only vLLM's.
    time_wait_host_max: float | None = num("TIME_WAIT on the whole host: the census, or a hand-run ss -s")
    time_wait_host_source: str | None = num('"census", "ss -s" or "/proc/net/sockstat"')


def derive_sockets(
    samples: Sequence[SocketCensus], no_census: str | None, host_tcp: TcpTotals | None = None
) -> Sockets:
    """`no_census` is the socket collector's reason, when it produced nothing; `host_tcp` a hand-run
    `ss -s` or /proc/net/sockstat from the bundle."""
    why: dict[str, str] = {}
    values: dict[str, object] = {}
    host = host_time_wait(list(samples), host_tcp)
    if host is not None:
        values.update(time_wait_host_max=host.time_wait, time_wait_host_source=host.source)
    else:
        reason = no_census or "no host-wide socket counts (no census, no ss-s.txt or sockstat.txt)"
        why.update(time_wait_host_max=reason, time_wait_host_source=reason)
    on_port = [s for s in samples if s.port is not None]
    if not on_port:
        reason = no_census or (
            "no socket census on the serving port (run on the serving host)"
            if not samples
            else "the serving port is unknown"
        )
        return build(Sockets, values, why, default=reason)
    values.update(
        serving_port=on_port[-1].port,
        time_wait_on_port_max=max(s.port_states.get("TIME_WAIT", 0) for s in on_port),
        established_on_port_max=max(s.port_states.get("ESTABLISHED", 0) for s in on_port),
    )
    recent = [s.port_time_wait_recent for s in on_port if s.port_time_wait_recent is not None]
    if recent:
        values["time_wait_closed_per_s_max"] = max(recent) / RECENT_CLOSE_S
    else:
        why["time_wait_closed_per_s_max"] = (
            "the census could not read socket timers (the /proc fallback, a pasted ss -tan, an older bundle)"
        )
    return build(Sockets, values, why)
