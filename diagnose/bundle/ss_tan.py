"""`ss -tan` / `ss -tanp` output: a hand-run socket table, read as a census on the serving port. Pure.

    State     Recv-Q Send-Q Local Address:Port  Peer Address:Port Process
    TIME-WAIT 0      0          127.0.0.1:8000     127.0.0.1:46374
    ESTAB     0      0      [::ffff:10.0.0.5]:8000 [::ffff:10.0.0.9]:51000 users:(("python3",pid=7,fd=4))

ss names states its own way (ESTAB, TIME-WAIT); they are read as the kernel's (ESTABLISHED, TIME_WAIT), as
the rest of the tool counts them. `-p` adds the process column, which is kept for whoever owns the port.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from diagnose.readings import SocketCensus

# ss's state words (iproute2 misc/ss.c sstate_name) -> the kernel's names (include/net/tcp_states.h).
SS_STATES: dict[str, str] = {
    "ESTAB": "ESTABLISHED",
    "SYN-SENT": "SYN_SENT",
    "SYN-RECV": "SYN_RECV",
    "FIN-WAIT-1": "FIN_WAIT1",
    "FIN-WAIT-2": "FIN_WAIT2",
    "TIME-WAIT": "TIME_WAIT",
    "UNCONN": "CLOSE",
    "CLOSE-WAIT": "CLOSE_WAIT",
    "LAST-ACK": "LAST_ACK",
    "LISTEN": "LISTEN",
    "CLOSING": "CLOSING",
}

# One socket line: state, two queue sizes, local and peer "address:port" (IPv6 in brackets, "*" for any),
# then the optional process column.
_LINE = re.compile(
    r"^(?P<state>[A-Z][A-Z0-9-]*)\s+\d+\s+\d+\s+(?P<local>\S+):(?P<lport>\d+|\*)\s+"
    r"(?P<peer>\S+):(?P<pport>\d+|\*)(?:\s+(?P<process>\S.*?))?\s*$"
)
_HEADER = re.compile(r"^State\s+Recv-Q\s+Send-Q\s+Local Address:Port\s+Peer Address:Port")


@dataclass(frozen=True, slots=True)
class SsSocket:
    """One TCP socket from `ss -tan`: its state (kernel name) and ports; the owner with `-p`."""

    state: str
    local_port: int | None  # None for "*"
    peer_port: int | None
    process: str | None = None  # `users:(("python3",pid=7,fd=4))`, with -p only


def looks_like_ss_tan(text: str) -> bool:
    """True when the text is `ss -tan[p]` output (its header, or socket lines only)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return False
    if _HEADER.match(lines[0]):
        return True
    return all(_LINE.match(line) and line.split()[0] in SS_STATES for line in lines[:20])


def parse_ss_tan(text: str) -> list[SsSocket]:
    """Every socket line of `ss -tan` / `ss -tanp` output; headers and other lines are skipped."""
    sockets = []
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match is None or match.group("state") not in SS_STATES:
            continue
        sockets.append(
            SsSocket(
                state=SS_STATES[match.group("state")],
                local_port=_port(match.group("lport")),
                peer_port=_port(match.group("pport")),
                process=match.group("process"),
            )
        )
    return sockets


def census_on_port(sockets: list[SsSocket], port: int | None, t_unix: float) -> SocketCensus:
    """The census as the collector takes it: sockets whose local OR peer port is `port`, and all of them."""
    host = Counter(s.state for s in sockets)
    on_port = Counter(s.state for s in sockets if port is not None and port in (s.local_port, s.peer_port))
    return SocketCensus(t_unix=t_unix, port=port, port_states=dict(on_port), host_states=dict(host))


def listening_ports(sockets: list[SsSocket]) -> list[int]:
    """Ports with a LISTEN socket, the one with the most other sockets on it first."""
    listening = {s.local_port for s in sockets if s.state == "LISTEN" and s.local_port is not None}
    traffic = Counter(
        port
        for s in sockets
        if s.state != "LISTEN"
        for port in {s.local_port, s.peer_port}
        if port in listening
    )
    return sorted(listening, key=lambda p: (-traffic[p], p))


def _port(text: str) -> int | None:
    return None if text == "*" else int(text)
