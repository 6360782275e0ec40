"""The TCP census: recorded socket tables, live loopback sockets, and the netlink reply counter.

tests/fixtures/sockets/ was recorded on this project's VM by tests/fixtures/sockets/record.py (see its
docstring): /proc/net/tcp{,6}, /proc/net/sockstat and `ss -s` at one moment, plus the census the netlink
path counted at that moment (census.json).
"""

from __future__ import annotations

import collections
import json
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from diagnose.collect.sockets import (
    DiagCounts,
    NetlinkError,
    SocketSource,
    count_diag_replies,
    parse_proc_net_tcp,
    parse_sockstat,
    parse_ss_s,
)
from diagnose.readings import RECENT_CLOSE_S, CollectorIssue, SocketCensus

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sockets"


def _both_families(port: int | None) -> tuple[dict[str, int], dict[str, int]]:
    ports: collections.Counter[str] = collections.Counter()
    host: collections.Counter[str] = collections.Counter()
    for name in ("proc_net_tcp.txt", "proc_net_tcp6.txt"):
        on_port, on_host = parse_proc_net_tcp((FIXTURES / name).read_text(), port)
        ports.update(on_port)
        host.update(on_host)
    return dict(ports), dict(host)


def test_proc_parser_agrees_with_the_netlink_census_recorded_at_the_same_moment() -> None:
    recorded = json.loads((FIXTURES / "census.json").read_text())
    ports, host = _both_families(recorded["port"])
    assert ports == recorded["port_states"]
    assert host == recorded["host_states"]
    # What record.py built on the port: 3+3 established pairs, 2+2 client-closed, 1+1 half-closed.
    assert ports == {"LISTEN": 2, "ESTABLISHED": 12, "TIME_WAIT": 4, "CLOSE_WAIT": 2, "FIN_WAIT2": 2}


def test_proc_parser_without_a_port_counts_only_the_host() -> None:
    ports, host = _both_families(None)
    assert ports == {}
    assert host["TIME_WAIT"] >= 300


def test_port_is_matched_as_local_or_remote_port_and_not_in_the_queue_columns() -> None:
    header = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    )
    text = header + (
        # local port 8000 (0x1F40): the server's accepted socket
        "   0: 0100007F:1F40 0100007F:A000 01 00000000:00000000 00:00000000 00000000     0        0 11 1 0\n"
        # remote port 8000: a local client's socket
        "   1: 0100007F:A000 0100007F:1F40 06 00000000:00000000 03:00000D1B 00000000     0        0 0 3 0\n"
        # rx_queue happens to read 0x1F40: not a port
        "   2: 0100007F:B000 0100007F:0050 01 00000000:00001F40 00:00000000 00000000     0        0 12 1 0\n"
        # 5-digit slot numbers shift every column: still parsed
        "10000: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 13 1 0\n"
    )
    ports, host = parse_proc_net_tcp(text, 8000)
    assert ports == {"ESTABLISHED": 1, "TIME_WAIT": 1, "LISTEN": 1}
    assert host == {"ESTABLISHED": 2, "TIME_WAIT": 1, "LISTEN": 1}


def test_sockstat_recording_gives_time_wait_orphans_and_in_use() -> None:
    totals = parse_sockstat((FIXTURES / "sockstat.txt").read_text())
    assert totals is not None
    assert (totals.time_wait, totals.orphaned, totals.in_use) == (330, 0, 11)
    assert totals.established is None  # sockstat does not say: unknown, not 0


def test_ss_s_recording_gives_the_tcp_line() -> None:
    totals = parse_ss_s((FIXTURES / "ss-s.txt").read_text())
    assert totals is not None
    assert (totals.total, totals.established, totals.time_wait, totals.orphaned) == (349, 14, 330, 0)


def test_ss_s_older_format_with_buckets_reads_the_socket_count() -> None:
    totals = parse_ss_s(
        "Total: 200 (kernel 0)\n"
        "TCP:   1520 (estab 12, closed 1500, orphaned 0, synrecv 0, timewait 1499/0), ports 0\n"
    )
    assert totals is not None
    assert (totals.time_wait, totals.established, totals.total) == (1499, 12, 1520)


def test_text_without_a_tcp_line_parses_to_none() -> None:
    assert parse_ss_s("Total: 3\n") is None
    assert parse_sockstat("sockets: used 3\nUDP: inuse 0 mem 0\n") is None


# -- live loopback sockets ---------------------------------------------------------------------------


@pytest.fixture
def loopback_port() -> Iterator[int]:
    """A listener on 127.0.0.1 with 2 established pairs and 3 client-closed (TIME_WAIT) connections."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    kept = []
    for i in range(5):
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = listener.accept()
        if i < 2:
            kept += [client, server]
        else:
            client.close()  # the client closes first: it holds TIME_WAIT
            server.close()
    yield port
    for s in [*kept, listener]:
        s.close()


def test_live_census_counts_this_tests_sockets_on_its_port(loopback_port: int) -> None:
    source = SocketSource()
    census = source.census(loopback_port)
    assert isinstance(census, SocketCensus)
    assert census.port == loopback_port
    assert census.port_states == {"ESTABLISHED": 4, "TIME_WAIT": 3, "LISTEN": 1}
    assert census.host_states["TIME_WAIT"] >= 3
    assert source.method in ("netlink", "proc")


def test_live_census_tells_time_wait_closed_just_now_from_older(loopback_port: int) -> None:
    # The fixture's 3 TIME_WAIT sockets closed a moment ago; 5.5 s later they are still in TIME_WAIT (for
    # 60 s) but no longer recent. The kernel's timers, not a clock of ours: no margin is at stake but the
    # 5 s look-back itself, and the census runs within ms of the sockets' close.
    source = SocketSource(netlink=True)
    now = source.census(loopback_port)
    assert isinstance(now, SocketCensus) and source.method == "netlink"
    assert now.port_time_wait_recent == 3
    time.sleep(RECENT_CLOSE_S + 0.5)
    later = source.census(loopback_port)
    assert isinstance(later, SocketCensus)
    assert later.port_states["TIME_WAIT"] == 3 and later.port_time_wait_recent == 0
    assert SocketSource(netlink=False).census(loopback_port).port_time_wait_recent is None  # /proc: unknown


def test_netlink_and_proc_files_give_the_same_port_census(loopback_port: int) -> None:
    via_netlink = SocketSource(netlink=True).census(loopback_port)
    via_proc = SocketSource(netlink=False).census(loopback_port)
    assert isinstance(via_netlink, SocketCensus) and isinstance(via_proc, SocketCensus)
    assert via_netlink.port_states == via_proc.port_states


def test_netlink_refused_falls_back_to_the_proc_files(loopback_port: int) -> None:
    def refused() -> Iterator[bytes]:
        raise PermissionError("sock_diag not allowed here")

    source = SocketSource(dump=refused)
    census = source.census(loopback_port)
    assert isinstance(census, SocketCensus)
    assert census.port_states["TIME_WAIT"] == 3
    assert source.method == "proc"


def test_proc_root_without_tcp6_is_fine(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp").write_text((FIXTURES / "proc_net_tcp.txt").read_text())
    port = json.loads((FIXTURES / "census.json").read_text())["port"]
    census = SocketSource(proc_root=tmp_path, clock=lambda: 5.0).census(port)
    assert isinstance(census, SocketCensus)
    assert (census.t_unix, census.port) == (5.0, port)
    assert census.port_states == {
        "LISTEN": 1,
        "CLOSE_WAIT": 1,
        "ESTABLISHED": 6,
        "TIME_WAIT": 2,
        "FIN_WAIT2": 1,
    }
    assert census.host_states["TIME_WAIT"] == 326


def test_unreadable_proc_is_an_issue_with_a_fix(tmp_path: Path) -> None:
    issue = SocketSource(proc_root=tmp_path / "nothing").census(8000)
    assert isinstance(issue, CollectorIssue)
    assert issue.collector == "sockets"
    assert "TCP socket table" in issue.reason
    assert issue.fix


# -- the netlink reply counter (pure) ----------------------------------------------------------------


def _reply(state: int, sport: int, dport: int, extra: int = 0, kind: int = 18, left_ms: int = 0) -> bytes:
    """One inet_diag reply: nlmsghdr, inet_diag_msg (family, state, timer, retrans, sockid, expires, the
    queues, uid, inode), attrs. `left_ms` is idiag_expires: a TIME_WAIT socket's time left, in ms."""
    body = struct.pack("=BBBB", socket.AF_INET, state, 0, 0) + struct.pack(">HH", sport, dport)
    body += bytes(52 - len(body)) + struct.pack("=I", left_ms)
    body += bytes(72 - len(body)) + bytes(extra)
    return struct.pack("=IHHII", 16 + len(body), kind, 2, 1, 0) + body


_DONE = struct.pack("=IHHIIi", 20, 3, 2, 1, 0, 0)


def test_uniform_and_mixed_buffers_count_the_same() -> None:
    # TIME_WAIT on the port with 0-59.9 s left on the timer: those above 55 s closed in the last 5 s
    # (55,000 ms is 0xD6D8: the bytes just around it, 0xD6xx and 0xD7xx, are covered both ways).
    left = [59_900, 55_001, 55_000, 54_999, 55_256, 0xD7_00, 0xD6_FF, 30_000, 1, 0]
    recent = sum(ms > 55_000 for ms in left * 5)
    sockets = [(6, 40000 + i, 8000, 0, 18, left[i % 10]) for i in range(50)]
    sockets += [(6, 40100 + i, 9000, 0, 18, 59_000) for i in range(30)]  # another port's: not counted
    sockets += [(1, 8000, 50000, 0, 18, 59_000), (10, 8000, 0)]  # not TIME_WAIT: not counted
    # Uniform: every message the same size, DONE at the end of the last buffer.
    uniform = [b"".join(_reply(*s) for s in sockets[:40]), b"".join(_reply(*s) for s in sockets[40:]) + _DONE]
    # Mixed: one message in each buffer carries an attribute, so every buffer is walked one by one.
    mixed = [
        _reply(*sockets[0][:3], extra=8, left_ms=sockets[0][5]) + b"".join(_reply(*s) for s in sockets[1:40]),
        _reply(*sockets[40][:3], extra=8, left_ms=sockets[40][5])
        + b"".join(_reply(*s) for s in sockets[41:]),
        _DONE,
    ]
    expected_port = {6: 50, 1: 1, 10: 1}
    expected_host = {6: 80, 1: 1, 10: 1}
    assert recent == 5 * 5  # 59,900, 55,001, 55,256, 0xD700 and 0xD6FF, five times each
    assert count_diag_replies(uniform, 8000) == DiagCounts(expected_port, expected_host, True, recent)
    assert count_diag_replies(mixed, 8000) == DiagCounts(expected_port, expected_host, True, recent)
    assert count_diag_replies(uniform, None) == DiagCounts({}, expected_host, True, 0)


def test_dump_cut_short_is_reported_as_not_done() -> None:
    counts = count_diag_replies([_reply(6, 1, 8000) * 3], 8000)
    assert counts == DiagCounts({6: 3}, {6: 3}, False, 0)


def test_kernel_error_reply_raises_netlink_error() -> None:
    error = struct.pack("=IHHIIi", 20, 2, 0, 1, 0, -22)
    with pytest.raises(NetlinkError, match="errno 22"):
        count_diag_replies([error], 8000)
