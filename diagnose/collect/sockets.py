"""TCP sockets by state on the serving port and on the host: the TIME_WAIT-flood check.

A client that opens a new connection per rerank call leaves one TIME_WAIT socket per call behind for
60 s, so the census has to stay cheap exactly when there are tens of thousands of them. Measured by
benchmarks/sockets.py with 30,000 TIME_WAIT sockets (median of the same run):
- idle 16-core host: psutil.net_connections(kind="tcp") 389 ms; our /proc/net/tcp path 92 ms; our
  netlink census 12.4 ms, of which 10.1 ms is the kernel's walk of its socket hash;
- this project's 2-core VM at load average ~6: psutil 1,666 ms; /proc 226 ms; netlink 37 ms.
On the VM, merely reading /proc/net/tcp (28,000 lines of 150 bytes that the kernel formats) took
43-87 ms, which no parser can win back.
So the census asks the kernel over netlink first, with ONE dump for IPv4 and IPv6 together (the
legacy TCPDIAG_GETSOCK request dumps every family in one walk; SOCK_DIAG_BY_FAMILY would need a
walk per family), and counts the binary replies without a Python loop per socket. /proc/net/tcp{,6}
is the fallback where netlink is not allowed (some sandboxes), and the pure parsers below also read
recorded files.

Host-wide totals from a hand-run `ss -s` or a copy of /proc/net/sockstat (bundle files) are parsed
by `parse_ss_s` / `parse_sockstat`.
"""

from __future__ import annotations

import collections
import re
import socket
import struct
import sys
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path

from diagnose.bundle.sockstat import parse_sockstat, parse_ss_s
from diagnose.readings import RECENT_CLOSE_S, CollectorIssue, SocketCensus, TcpTotals

# Re-exported: tests and callers import the host-wide parsers from here too.
__all__ = ["SocketSource", "TcpTotals", "parse_proc_net_tcp", "parse_sockstat", "parse_ss_s"]

# The kernel's TCP states (include/net/tcp_states.h), as /proc/net/tcp prints them in hex.
TCP_STATES: dict[int, str] = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "NEW_SYN_RECV",
}
_HEX_STATE = {f"{code:02X}": name for code, name in TCP_STATES.items()}

# ---------------------------------------------------------------------------------------------------
# /proc/net/tcp and /proc/net/tcp6 (pure)
# ---------------------------------------------------------------------------------------------------

# A line: "  12: 0100007F:1F40 0100007F:A2C4 06 00000000:00000000 03:00000D1B ...". A port is the only
# field written as ":XXXX " (four hex digits after a colon, then a space): the queues and timers after
# the state have eight digits after their colon. So ":XXXX XX " is always "remote port, state".
_ANY_STATE = re.compile(r":[0-9A-F]{4} ([0-9A-F]{2}) ")


def _port_pattern(port: int) -> re.Pattern[str]:
    # Starts with a literal (":1F40 "), which the regex engine scans for quickly. After it comes either
    # the state (the port was the remote one) or the remote address (the port was the local one).
    return re.compile(rf":{port:04X} (?:([0-9A-F]{{2}}) |[0-9A-F]+:[0-9A-F]{{4}} ([0-9A-F]{{2}}) )")


def parse_proc_net_tcp(text: str, port: int | None) -> tuple[dict[str, int], dict[str, int]]:
    """(port_states, host_states) from the text of /proc/net/tcp or /proc/net/tcp6.

    `port_states` counts sockets whose local OR remote port is `port` (empty when port is None).
    One regex pass per count instead of splitting 30,000 lines into fields (see the module doc).
    """
    host = {
        _HEX_STATE.get(code, f"UNKNOWN_{code}"): n
        for code, n in collections.Counter(_ANY_STATE.findall(text)).items()
    }
    ports: dict[str, int] = {}
    if port is not None:
        for remote_hit, local_hit in _port_pattern(port).findall(text):
            code = remote_hit or local_hit
            name = _HEX_STATE.get(code, f"UNKNOWN_{code}")
            ports[name] = ports.get(name, 0) + 1
    return ports, host


# ---------------------------------------------------------------------------------------------------
# /proc/net/sockstat and `ss -s` (pure)
# ---------------------------------------------------------------------------------------------------


# /proc/net/sockstat and `ss -s` are bundle files: their parsers live in diagnose/bundle/sockstat.py.

# ---------------------------------------------------------------------------------------------------
# sock_diag netlink replies (pure over the bytes received)
# ---------------------------------------------------------------------------------------------------

_NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_EXPIRES = struct.Struct("=I")
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_TCPDIAG_GETSOCK = 18
# struct inet_diag_msg follows the 16-byte header: family(1) state(1) timer(1) retrans(1), then
# sport(2, big-endian) dport(2, big-endian) ... So from a message's start:
_STATE_AT = 17
_SPORT_AT = 20
_DPORT_AT = 22
# ... then the 48-byte sockid ends at 68, where idiag_expires (u32, host byte order) begins: for a
# TIME_WAIT socket, the milliseconds its 60 s timer has left (inet_twsk_diag_fill).
_EXPIRES_AT = 68
_MESSAGE_MIN = 16 + 72  # nlmsghdr + inet_diag_msg
_TIME_WAIT = 6
_TIME_WAIT_MS = 60_000  # TCP_TIMEWAIT_LEN
# A TIME_WAIT socket closed less than RECENT_CLOSE_S ago has more than this left on its timer.
_RECENT_LEFT_MS = int(_TIME_WAIT_MS - RECENT_CLOSE_S * 1000)
# The expires bytes from least to most significant, whatever the host's byte order.
_EXPIRES_BYTES = tuple(range(_EXPIRES_AT, _EXPIRES_AT + 4))[:: 1 if sys.byteorder == "little" else -1]
_COLUMNS_AT = (_STATE_AT, _SPORT_AT, _SPORT_AT + 1, _DPORT_AT, _DPORT_AT + 1, *_EXPIRES_BYTES)
_ZERO_ALL = bytes(256)


def _flags_where(column: bytes, value: int | range) -> int:
    """An int with one set bit per row whose byte equals `value` (or lies in it): translate maps those
    bytes to 0x01 and every other byte to 0x00 (one C pass), so ANDs and bit_count() count rows without a
    Python loop. Bit 8*i is row i."""
    table = bytearray(_ZERO_ALL)
    for byte in [value] if isinstance(value, int) else value:
        table[byte] = 1
    return int.from_bytes(column.translate(table), "little")


@dataclass(frozen=True, slots=True)
class DiagCounts:
    """What one sock_diag dump counted, by numeric state."""

    ports: dict[int, int]
    host: dict[int, int]
    done: bool  # the dump reached NLMSG_DONE (a census cut short is not a census)
    port_time_wait_recent: int  # TIME_WAIT on the port closed in the last RECENT_CLOSE_S


class NetlinkError(Exception):
    """The kernel answered the sock_diag request with an error."""


def count_diag_replies(buffers: Iterable[bytes], port: int | None) -> DiagCounts:
    """The census by numeric state, from the raw replies of a sock_diag dump.

    The replies come in buffers of ~32 KB holding ~340 messages each. Most buffers hold messages of
    one size (every TIME_WAIT socket's reply is alike), so those buffers are set aside by size, joined,
    and counted column-wise with byte slicing: a few C passes instead of a Python step per socket.
    A buffer with mixed sizes (listeners and connections carry more attributes) is walked message by
    message. Counting is order-free, so the two ways add up to the same census.
    """
    ports: collections.Counter[int] = collections.Counter()
    host: collections.Counter[int] = collections.Counter()
    port_be = port.to_bytes(2, "big") if port is not None else None
    # Columns cut from buffers made only of same-size messages: states, local port hi/lo, remote hi/lo,
    # and the timer's four bytes from least to most significant.
    columns: tuple[list[bytes], ...] = tuple([] for _ in _COLUMNS_AT)
    recent = 0
    done = False
    for buf in buffers:
        end = len(buf)
        off = 0
        while off + 16 <= end:
            mlen, mtype, _flags, _seq, _pid = _NLMSG_HDR.unpack_from(buf, off)
            if mtype == _NLMSG_DONE:
                done = True
                break
            if mtype == _NLMSG_ERROR:
                errno = -struct.unpack_from("=i", buf, off + 16)[0] if mlen >= 20 else 0
                raise NetlinkError(f"sock_diag answered errno {errno}")
            step = (mlen + 3) & ~3
            if step < _MESSAGE_MIN:
                raise NetlinkError(f"sock_diag message of {mlen} bytes is too short")
            # At a buffer's start only: is the buffer one run of same-size replies (up to a final DONE)?
            # Trying at every message would rescan the rest of the buffer each time.
            if off == 0:
                body_end = end - 20 if end >= 20 + step and _is_done(buf, end - 20) else end
                rows = body_end // step
                if rows > 1 and rows * step == body_end and _uniform(buf, body_end, step, mtype):
                    for column, at in zip(columns, _COLUMNS_AT, strict=True):
                        column.append(buf[at:body_end:step])
                    off = body_end
                    continue
            state = buf[off + _STATE_AT]
            host[state] += 1
            if port_be is not None and port_be in (
                buf[off + _SPORT_AT : off + _SPORT_AT + 2],
                buf[off + _DPORT_AT : off + _DPORT_AT + 2],
            ):
                ports[state] += 1
                if state == _TIME_WAIT and _EXPIRES.unpack_from(buf, off + _EXPIRES_AT)[0] > _RECENT_LEFT_MS:
                    recent += 1
            off += step
        if done:
            break
    if columns[0]:
        recent += _count_columns([b"".join(column) for column in columns], port_be, ports, host)
    return DiagCounts(dict(ports), dict(host), done, recent)


def _is_done(buf: bytes, at: int) -> bool:
    mlen, mtype = struct.unpack_from("=IH", buf, at)
    return mtype == _NLMSG_DONE and mlen == 20


def _uniform(buf: bytes, stop: int, step: int, mtype: int) -> bool:
    """Does buf[:stop] hold only messages of length `step` and type `mtype`? (column checks, no loop)

    Only the low two bytes of each length are compared: a dump's messages are far below 64 KiB. A
    message with 1-3 bytes of padding has a length unlike `step` and sends the buffer the slow way,
    which is still correct.
    """
    rows = stop // step
    return (
        buf[0:stop:step] == bytes([step & 0xFF]) * rows
        and buf[1:stop:step] == bytes([step >> 8 & 0xFF]) * rows
        and buf[4:stop:step] == bytes([mtype & 0xFF]) * rows
    )


def _count_columns(
    columns: list[bytes],
    port_be: bytes | None,
    ports: collections.Counter[int],
    host: collections.Counter[int],
) -> int:
    """Counts sockets from the columns of _COLUMNS_AT (row i of each is socket i); returns how many
    TIME_WAIT sockets on the port closed in the last RECENT_CLOSE_S."""
    states, local_hi, local_lo, remote_hi, remote_lo, expires_0, expires_1, expires_2, expires_3 = columns
    # bytes.count per known state is a C scan each; Counter(states) would touch a dict per socket.
    present = {code: n for code in TCP_STATES if (n := states.count(code))}
    if sum(present.values()) != len(states):  # a state this table does not know: count them all
        present = dict(collections.Counter(states))
    host.update(present)
    if port_be is None:
        return 0
    hi, lo = port_be
    on_port = (_flags_where(local_hi, hi) & _flags_where(local_lo, lo)) | (
        _flags_where(remote_hi, hi) & _flags_where(remote_lo, lo)
    )
    if not on_port:
        return 0
    for state in present:
        hits = (_flags_where(states, state) & on_port).bit_count()
        if hits:
            ports[state] += hits
    if _TIME_WAIT not in present:
        return 0
    # More than _RECENT_LEFT_MS (< 65,536) left: the two high bytes are 0, and the low 16 bits exceed it,
    # i.e. the second byte is above its high byte, or equal to it with the low byte above its low byte.
    limit_hi, limit_lo = divmod(_RECENT_LEFT_MS, 256)
    small = _flags_where(expires_3, 0) & _flags_where(expires_2, 0)
    above = _flags_where(expires_1, range(limit_hi + 1, 256)) | (
        _flags_where(expires_1, limit_hi) & _flags_where(expires_0, range(limit_lo + 1, 256))
    )
    return (_flags_where(states, _TIME_WAIT) & on_port & small & above).bit_count()


def _diag_request() -> bytes:
    """A legacy TCPDIAG_GETSOCK dump request for every TCP socket of every family and state.

    struct inet_diag_req: family, src_len, dst_len, ext (1 byte each), sockid (48), states (4), dbs (4).
    The kernel turns this request into family AF_UNSPEC (inet_diag_dump_compat), which dumps IPv4 and
    IPv6 in ONE walk of its socket hash: the walk is most of the cost under a TIME_WAIT flood.
    """
    all_states = (1 << 13) - 1  # bits 0-12: every state, NEW_SYN_RECV included
    body = struct.pack("=BBBB", socket.AF_INET, 0, 0, 0) + bytes(48) + struct.pack("=II", all_states, 0)
    flags = 0x1 | 0x300  # NLM_F_REQUEST | NLM_F_DUMP
    return _NLMSG_HDR.pack(16 + len(body), _TCPDIAG_GETSOCK, flags, 1, 0) + body


def _netlink_dump(timeout_s: float = 2.0) -> Generator[bytes, None, None]:
    """The raw reply buffers of one sock_diag dump, as they arrive (I/O; raises OSError).

    The reader stops consuming at the NLMSG_DONE message; closing the generator closes the socket.
    A kernel that never finishes the dump ends in a timeout (OSError), and the census falls back.
    """
    af_netlink = getattr(socket, "AF_NETLINK", None)
    if af_netlink is None:
        raise OSError("no netlink on this platform")
    netlink_sock_diag = 4
    with socket.socket(af_netlink, socket.SOCK_RAW, netlink_sock_diag) as sock:
        sock.settimeout(timeout_s)
        sock.sendall(_diag_request())
        while True:
            buf = sock.recv(1 << 20)
            if not buf:
                return
            yield buf


def _named(counts: dict[int, int]) -> dict[str, int]:
    return {TCP_STATES.get(code, f"UNKNOWN_{code}"): n for code, n in sorted(counts.items())}


# ---------------------------------------------------------------------------------------------------
# The collector
# ---------------------------------------------------------------------------------------------------


class SocketSource:
    """Takes the TCP census: `census(port)` -> SocketCensus, or CollectorIssue when nothing is readable.

    `proc_root` is where /proc is (tests point it at a folder). Netlink is used only for the real
    /proc, since it always describes the live host; `netlink=False` forces the /proc files.
    """

    def __init__(
        self,
        proc_root: str | Path = "/proc",
        clock: Callable[[], float] = time.time,
        netlink: bool | None = None,
        dump: Callable[[], Iterable[bytes]] = _netlink_dump,
    ) -> None:
        self._proc = Path(proc_root)
        self._clock = clock
        self._netlink = (str(proc_root) == "/proc") if netlink is None else netlink
        self._dump = dump
        self.method: str | None = None  # "netlink" or "proc": what the last census used (for reports)

    def census(self, port: int | None) -> SocketCensus | CollectorIssue:
        if self._netlink:
            replies: Iterable[bytes] = ()
            try:
                replies = self._dump()
                counts = count_diag_replies(replies, port)
                if counts.done:
                    self.method = "netlink"
                    return SocketCensus(
                        self._clock(),
                        port,
                        _named(counts.ports),
                        _named(counts.host),
                        counts.port_time_wait_recent if port is not None else None,
                    )
            except (OSError, NetlinkError):
                pass
            finally:
                close = getattr(replies, "close", None)
                if close is not None:
                    close()  # the generator's `with` closes the netlink socket
            # Not allowed here (e.g. a sandbox without sock_diag): the /proc files, from now on.
            self._netlink = False
        return self._census_from_proc(port)

    def _census_from_proc(self, port: int | None) -> SocketCensus | CollectorIssue:
        port_states: collections.Counter[str] = collections.Counter()
        host_states: collections.Counter[str] = collections.Counter()
        read_any = False
        error = ""
        for name in ("tcp", "tcp6"):
            path = self._proc / "net" / name
            try:
                text = path.read_text(encoding="ascii", errors="replace")
            except FileNotFoundError:
                continue  # no IPv6 on this host: nothing to count there
            except OSError as exc:
                error = f"{path}: {exc.strerror or exc}"
                continue
            read_any = True
            on_port, on_host = parse_proc_net_tcp(text, port)
            port_states.update(on_port)
            host_states.update(on_host)
        if not read_any:
            return CollectorIssue(
                t_unix=self._clock(),
                collector="sockets",
                reason=f"cannot read the TCP socket table ({error or f'{self._proc}/net/tcp is missing'})",
                fix="run on the host that serves the port, with /proc mounted (as root inside a container)",
            )
        self.method = "proc"
        return SocketCensus(self._clock(), port, dict(port_states), dict(host_states))

    def sockstat_text(self) -> str | None:
        """The text of /proc/net/sockstat (kept in a bundle as sockstat.txt), or None if unreadable."""
        try:
            return (self._proc / "net" / "sockstat").read_text(encoding="ascii", errors="replace")
        except OSError:
            return None
