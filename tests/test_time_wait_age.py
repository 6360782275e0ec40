"""A TIME_WAIT pile is judged by what the window's own closes keep up, read from the kernel's timers.

Real sockets on 127.0.0.1: a listener and 1,500 connections that the client closes first, so each leaves a
TIME_WAIT socket on the listener's port for 60 s. Censused at once, the closes are recent (a flood going
on: a warning). Censused 5.5 s later the same sockets are still in TIME_WAIT, but none closed in the last
5 s: the pile is from before the window, and the finding says so instead of blaming the network.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from diagnose.collect.sockets import SocketSource
from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.sockets import derive_sockets
from diagnose.readings import RECENT_CLOSE_S, SocketCensus
from diagnose.report import Severity
from diagnose.rules.engine import run_rules

CONNECTIONS = 1500  # the warning line is 1,000 TIME_WAIT sockets; the count is exact (our own sockets)


@pytest.fixture
def flooded_port() -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    port = listener.getsockname()[1]
    for _ in range(CONNECTIONS):
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = listener.accept()
        client.close()  # the client closes first: its socket, whose remote port is `port`, is TIME_WAIT
        server.close()
    yield port
    listener.close()


def _network(census: SocketCensus):  # type: ignore[no-untyped-def]
    report = run_rules(Evidence(sockets=derive_sockets([census], None)))
    (found,) = [f for f in report.findings if f.rule_id == "network-connections"]
    return found


def test_a_pile_kept_up_by_the_window_is_a_flood_and_one_left_over_is_not(flooded_port: int) -> None:
    source = SocketSource(netlink=True)
    now = source.census(flooded_port)
    assert isinstance(now, SocketCensus) and source.method == "netlink"
    assert now.port_states["TIME_WAIT"] == CONNECTIONS and now.port_time_wait_recent == CONNECTIONS
    going_on = _network(now)
    assert going_on.severity == Severity.WARNING and going_on.label == "network"
    assert going_on.numbers["time_wait_closed_per_s_max"] == CONNECTIONS / RECENT_CLOSE_S

    time.sleep(RECENT_CLOSE_S + 0.5)
    later = source.census(flooded_port)
    assert isinstance(later, SocketCensus)
    assert later.port_states["TIME_WAIT"] == CONNECTIONS and later.port_time_wait_recent == 0
    left_over = _network(later)
    assert left_over.severity == Severity.INFO
    assert "left from before the window" in left_over.title
    assert run_rules(Evidence(sockets=derive_sockets([later], None))).verdict.label != "network"
