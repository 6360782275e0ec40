"""A lean HTTP/1.1 client for the load itself: pre-built request bytes, one write per call, keep-alive pool.

Why not aiohttp for the load: on a 2-core box aiohttp spends ~0.3 ms of CPU per call building and
parsing what is, for a load generator, always the same request. That CPU is taken from the event loop
that must send on schedule: at 1,000 calls/s it made the open loop's schedule lag p99 tens of ms, i.e.
the generator, not the server, was the bottleneck (benchmarks/loadgen.py measures both). Here a call is
one `transport.write` of bytes built before the clock starts and a small parser for the answer
(Content-Length, chunked, or read-to-close). aiohttp is still used for everything else (the model
lookup, the check call, /metrics), where speed does not matter.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module

from diagnose.urls import parse_server_url


class ConnectFailed(ConnectionError):
    """The TCP (or TLS) connection could not be opened: refused, unreachable, ..."""


class Disconnected(ConnectionError):
    """The server closed the connection before a complete answer."""


class BadResponse(ConnectionError):
    """The bytes that came back are not an HTTP/1.x response we can read."""


def request_bytes(base_url: str, endpoint: str, body: bytes, headers: dict[str, str], close: bool) -> bytes:
    """The whole request, ready to write. `headers` may carry Authorization: it stays in memory only."""
    url = parse_server_url(base_url)
    host = f"[{url.host}]" if ":" in url.host else url.host
    if url.port is not None:
        host += f":{url.port}"
    lines = [f"POST {url.prefix}{endpoint} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection(asyncio.Protocol):
    __slots__ = (
        "_body_start",
        "_buf",
        "_chunked",
        "_keep_alive",
        "_length",
        "_status",
        "closed",
        "transport",
        "waiter",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self._buf = bytearray()
        self._status = 0
        self._length: int | None = None
        self._chunked = False
        self._keep_alive = True
        self._body_start = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self._body_start >= 0 and self._length is None and not self._chunked:
            # No Content-Length and not chunked: the body runs to the close (HTTP/1.0 style).
            waiter.set_result((self._status, bytes(self._buf[self._body_start :]), False))
        else:
            waiter.set_exception(Disconnected("server closed the connection before answering"))

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            return  # bytes nobody asked for (or after a timeout): the connection is dropped on reuse
        buf = self._buf
        buf += data
        try:
            if self._body_start < 0 and not self._parse_head():
                return
            done = self._body()
        except (ValueError, IndexError) as exc:
            waiter.set_exception(BadResponse(f"unreadable HTTP response: {exc}"))
            return
        if done is not None:
            waiter.set_result((self._status, done, self._keep_alive))

    def _parse_head(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        version, status = head[0].split(" ", 2)[:2]
        self._status = int(status)
        self._keep_alive = version == "HTTP/1.1"
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                self._length = int(value)
            elif name == "transfer-encoding":
                self._chunked = "chunked" in value.lower()
            elif name == "connection":
                token = value.strip().lower()
                self._keep_alive = token == "keep-alive" or (self._keep_alive and token != "close")
        if 100 <= self._status < 200:  # an interim answer (we never send Expect): skip it
            del self._buf[: end + 4]
            return self._parse_head()
        self._body_start = end + 4
        return True

    def _body(self) -> bytes | None:
        start = self._body_start
        if self._chunked:
            return self._chunked_body(start)
        if self._length is not None:
            if len(self._buf) - start >= self._length:
                return bytes(self._buf[start : start + self._length])
            return None
        if self._status in (204, 304):
            return b""
        self._keep_alive = False
        return None  # read to close: connection_lost completes it

    def _chunked_body(self, pos: int) -> bytes | None:
        buf = self._buf
        out = bytearray()
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buf[pos:line_end]).split(b";", 1)[0], 16)
            pos = line_end + 2
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", pos - 2)
                return bytes(out) if trailer_end >= 0 else None
            if len(buf) < pos + size + 2:
                return None
            out += buf[pos : pos + size]
            pos += size + 2

    def begin(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[tuple[int, bytes, bool]]:
        self._reset()
        self.waiter = loop.create_future()
        return self.waiter


class Http1Pool:
    """Keep-alive connections to one server; `force_close` opens a fresh one per call instead."""

    def __init__(self, base_url: str, force_close: bool = False, connect_timeout_s: float = 10.0):
        url = parse_server_url(base_url)  # the one --url grammar (diagnose/urls.py)
        self.host = url.host
        self.port = url.effective_port
        self.ssl = ssl_module.create_default_context() if url.scheme == "https" else None
        self.force_close = force_close
        self.connect_timeout_s = connect_timeout_s
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(
                    _Connection,
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )
        except TimeoutError:
            raise ConnectFailed("connect timed out") from None
        except OSError as exc:
            raise ConnectFailed(exc.strerror or str(exc) or type(exc).__name__) from None
        self._all.add(conn)
        return conn

    async def request(self, raw: bytes, timeout_s: float) -> tuple[int, bytes]:
        """Send `raw`, return (status, body).

        Raises TimeoutError, ConnectFailed, Disconnected or BadResponse; the connection is then dropped.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        conn = None
        while self._idle:
            candidate = self._idle.pop()
            if not candidate.closed:
                conn = candidate
                break
        if conn is None:
            async with asyncio.timeout_at(deadline):
                conn = await self._connect(loop)
        transport = conn.transport
        assert transport is not None
        waiter = conn.begin(loop)
        timer = loop.call_at(deadline, _expire, waiter)
        transport.write(raw)
        try:
            status, body, keep_alive = await waiter
        except BaseException:
            # Timeout, reset or cancellation mid-answer: this connection's state is unknown; drop it.
            self._drop(conn)
            raise
        finally:
            timer.cancel()
            conn.waiter = None
        if keep_alive and not self.force_close and not conn.closed:
            self._idle.append(conn)
        else:
            self._drop(conn)
        return status, body

    def _drop(self, conn: _Connection) -> None:
        self._all.discard(conn)
        if conn.transport is not None and not conn.closed:
            conn.transport.close()

    def close(self) -> None:
        for conn in list(self._all):
            self._drop(conn)
        self._idle.clear()


def _expire(waiter: asyncio.Future[tuple[int, bytes, bool]]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no complete answer within the timeout"))
