"""TCP sockets on the serving port (a census per sample): TIME_WAIT floods mean clients do not reuse
connections."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from diagnose.derive.section import Section, build, num, unknown
from diagnose.readings import SocketCensus


@dataclass(frozen=True, slots=True, kw_only=True)
class Sockets(Section):
    serving_port: int | None = num("the port vLLM serves on (from the URL or its listening socket)")
    time_wait_on_port_max: float | None = num("TIME_WAIT sockets on the serving port, max over the censuses")
    established_on_port_max: float | None = num("ESTABLISHED sockets on the serving port, max")


def derive_sockets(samples: Sequence[SocketCensus], no_census: str | None) -> Sockets:
    """`no_census` is the socket collector's reason, when it produced nothing."""
    on_port = [s for s in samples if s.port is not None]
    if not on_port:
        return unknown(
            Sockets,
            no_census
            or (
                "no socket census on the serving port (run on the serving host)"
                if not samples
                else "the serving port is unknown"
            ),
        )
    values = {
        "serving_port": on_port[-1].port,
        "time_wait_on_port_max": max(s.port_states.get("TIME_WAIT", 0) for s in on_port),
        "established_on_port_max": max(s.port_states.get("ESTABLISHED", 0) for s in on_port),
    }
    return build(Sockets, values, {})
