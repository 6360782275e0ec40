"""Small real HTTP servers on 127.0.0.1 that misbehave on purpose, for collector and stress tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; version=0.0.4; charset=utf-8"
    delay_s: float = 0.0  # before the headers
    drip_s: float = 0.0  # between 1-byte chunks of the body (a slow link)
    # Fault modes beyond a slow link, each what a broken proxy or a dying server really does:
    headers: dict[str, str] = field(default_factory=dict)  # extra headers (e.g. a Content-Encoding lie)
    content_length: int | None = None  # the declared length when it differs from the body (cut short)
    stall_after_headers_s: float = 0.0  # headers sent, then silence before the body
    close_after_bytes: int | None = None  # send this much of the body, then drop the connection


@contextmanager
def serve(
    routes: dict[str, Route | list[Route]], seen_headers: list[dict[str, str]] | None = None
) -> Iterator[str]:
    """Serves `routes` by path on a free 127.0.0.1 port; yields the base URL.

    A list of routes is a script: the n-th request to that path gets the n-th route, and the last one
    repeats (a server that answers well, then breaks). Each request's headers are appended to
    `seen_headers` when given.
    """
    hits: dict[str, int] = {}
    lock = threading.Lock()

    def pick(path: str) -> Route | None:
        found = routes.get(path)
        if not isinstance(found, list):
            return found
        with lock:
            n = hits.get(path, 0)
            hits[path] = n + 1
        return found[min(n, len(found) - 1)]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if seen_headers is not None:
                seen_headers.append(dict(self.headers.items()))
            route = pick(self.path.split("?")[0])
            if route is None:
                route = Route(status=404, body=b'{"detail":"Not Found"}', content_type="application/json")
            time.sleep(route.delay_s)
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            length = len(route.body) if route.content_length is None else route.content_length
            self.send_header("Content-Length", str(length))
            for name, value in route.headers.items():
                self.send_header(name, value)
            self.end_headers()
            try:
                if route.stall_after_headers_s:
                    self.wfile.flush()
                    time.sleep(route.stall_after_headers_s)
                if route.close_after_bytes is not None:
                    self.wfile.write(route.body[: route.close_after_bytes])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif route.drip_s:
                    for i in range(len(route.body)):
                        self.wfile.write(route.body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(route.drip_s)
                else:
                    self.wfile.write(route.body)
            except OSError:  # the client gave up (timeout) or we dropped the connection on purpose
                self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_listener() -> Iterator[str]:
    """Accepts TCP connections and never answers: a hung server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(1)
        for conn in held:
            conn.close()
        sock.close()


def closed_port_url() -> str:
    """A URL on a 127.0.0.1 port that nothing listens on (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


@contextmanager
def serve_gzip(path: str, compressed: bytes) -> Iterator[str]:
    """Serves one gzip-encoded body, as prometheus_client does for clients that accept gzip."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != path:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(compressed)))
            self.end_headers()
            self.wfile.write(compressed)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
