"""Host-wide TCP totals from a hand-run `ss -s` or a copy of /proc/net/sockstat (bundle files). Pure.

One parser per format; `parse_host_tcp` picks by content, as a pasted file may carry either.
"""

from __future__ import annotations

import re

from diagnose.readings import TcpTotals

_SOCKSTAT_TCP = re.compile(r"^TCP:(?P<fields>(?:\s+\w+\s+\d+)+)\s*$", re.MULTILINE)


def parse_sockstat(text: str) -> TcpTotals | None:
    """The TCP line of /proc/net/sockstat ("TCP: inuse 4 orphan 0 tw 12 alloc 5 mem 1"); None if absent."""
    match = _SOCKSTAT_TCP.search(text)
    if match is None:
        return None
    words = match.group("fields").split()
    fields = {words[i]: int(words[i + 1]) for i in range(0, len(words) - 1, 2)}
    return TcpTotals(
        time_wait=fields.get("tw"),
        orphaned=fields.get("orphan"),
        in_use=fields.get("inuse"),
        source="/proc/net/sockstat",
    )


_SS_TCP = re.compile(r"^TCP:\s+(?P<total>\d+)\s+\((?P<fields>[^)]*)\)", re.MULTILINE)


def parse_ss_s(text: str) -> TcpTotals | None:
    """The "TCP:" line of `ss -s` ("TCP:   9 (estab 2, closed 0, orphaned 0, timewait 3)"); None if absent."""
    match = _SS_TCP.search(text)
    if match is None:
        return None
    fields: dict[str, int] = {}
    for part in match.group("fields").split(","):
        words = part.split()
        # Older iproute2 prints "timewait 3/0" (sockets/buckets): the first number is the sockets.
        if len(words) == 2 and words[1].split("/")[0].isdigit():
            fields[words[0]] = int(words[1].split("/")[0])
    return TcpTotals(
        time_wait=fields.get("timewait"),
        established=fields.get("estab"),
        orphaned=fields.get("orphaned"),
        total=int(match.group("total")),
        source="ss -s",
    )


def parse_host_tcp(text: str) -> TcpTotals | None:
    """`ss -s` or /proc/net/sockstat, whichever the text is; None when it is neither."""
    return parse_ss_s(text) or parse_sockstat(text)
