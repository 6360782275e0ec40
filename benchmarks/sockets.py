"""Socket census speed under a TIME_WAIT flood: ours (/proc/net/tcp parser) vs psutil.net_connections.

The doctor takes a census every second during a collection window, and the case it must handle is the
one it diagnoses: a client that opens a connection per request leaves tens of thousands of TIME_WAIT
sockets behind. psutil.net_connections(kind="tcp") took 400-900 ms there, which would eat the beat.
Target: <= 30 ms for the census with 30,000 TIME_WAIT sockets.

How: real sockets on loopback only. A listener on 127.0.0.x, many short connections that the CLIENT
closes first (the side that closes first holds TIME_WAIT, 60 s on Linux). One destination address
gives at most one ephemeral port range (e.g. 28,232 ports) of TIME_WAIT, so the connections are
spread over several 127.0.0.x listeners. The count is bounded (--target) and the run stops by itself.

    python benchmarks/sockets.py [--target 30000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diagnose.collect.sockets import SocketSource, _netlink_dump
from diagnose.readings import CollectorIssue

HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
MAX_SECONDS = 45.0  # TIME_WAIT lasts 60 s: building slower than that would lose the first ones


def make_time_wait(target: int) -> tuple[int, list[socket.socket]]:
    """Open and close `target` loopback connections, client side first. Returns (made, listeners)."""
    listeners = []
    for host in HOSTS:
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((host, 0))
        lsock.listen(128)
        listeners.append(lsock)
    per_listener = -(-target // len(listeners))
    made = 0
    started = time.monotonic()
    for lsock in listeners:
        addr = lsock.getsockname()
        for _ in range(per_listener):
            if made >= target or time.monotonic() - started > MAX_SECONDS:
                return made, listeners
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                client.connect(addr)
            except OSError as exc:  # ephemeral ports exhausted for this destination: next listener
                client.close()
                print(f"  {addr[0]}:{addr[1]} stopped after an error: {exc}", file=sys.stderr)
                break
            server, _ = lsock.accept()
            client.close()  # FIN from the client first: the client socket ends in TIME_WAIT
            server.close()
            made += 1
    return made, listeners


def best_ms(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median ms, min ms) over `repeat` calls."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=int, default=30_000, help="TIME_WAIT sockets to create (bounded)")
    parser.add_argument("--repeat", type=int, default=7, help="timed calls of each census")
    args = parser.parse_args()
    if not 1 <= args.target <= 100_000:
        parser.error("--target must be between 1 and 100000")

    import psutil

    t = time.monotonic()
    made, listeners = make_time_wait(args.target)
    print(f"made {made} client-closed loopback connections in {time.monotonic() - t:.1f} s")
    source = SocketSource()
    port = listeners[0].getsockname()[1]
    census = source.census(port)
    if isinstance(census, CollectorIssue):
        print(f"census failed: {census.reason}")
        return 1
    host_tw = census.host_states.get("TIME_WAIT", 0)
    print(f"host TIME_WAIT now: {host_tw} (port {port}: {census.port_states.get('TIME_WAIT', 0)})")
    print(f"/proc/net/sockstat: {(source.sockstat_text() or '').splitlines()[1:2]}")

    ours_med, ours_min = best_ms(lambda: source.census(port), args.repeat)

    def kernel_only() -> None:
        # The same dump, received but not counted: how much of the census is the kernel's walk.
        replies = _netlink_dump()
        for buf in replies:
            if len(buf) >= 20 and buf[-16] == 3:  # NLMSG_DONE closes the dump
                break
        replies.close()

    kernel_med, kernel_min = best_ms(kernel_only, args.repeat)
    proc_source = SocketSource(netlink=False)  # the fallback where netlink is not allowed
    proc_med, proc_min = best_ms(lambda: proc_source.census(port), max(3, args.repeat // 2))
    ps_med, ps_min = best_ms(lambda: psutil.net_connections(kind="tcp"), max(3, args.repeat // 2))
    for lsock in listeners:
        lsock.close()

    print(f"ours   census(port):                    median {ours_med:7.1f} ms  (min {ours_min:.1f})")
    print(f"  of which the kernel dump, uncounted:  median {kernel_med:7.1f} ms  (min {kernel_min:.1f})")
    print(f"ours   census, /proc/net/tcp fallback:  median {proc_med:7.1f} ms  (min {proc_min:.1f})")
    print(f"psutil net_connections(kind='tcp'):     median {ps_med:7.1f} ms  (min {ps_min:.1f})")
    load = os.getloadavg()[0]
    print(f"method used: {source.method}; load average now: {load:.1f} on {os.cpu_count()} cores")
    print(f"ratio psutil/ours (median): {ps_med / ours_med:.1f}x; target ours <= 30 ms at 30,000 TIME_WAIT")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
