"""Serves the exporter's registry over HTTP: prometheus_client's WSGI app on a thread-per-request server
whose listen backlog holds a whole fleet's scrapers.

Why not `prometheus_client.start_http_server`: its server keeps socketserver's listen backlog of 5, so
when many scrapers arrive at once (several Prometheus replicas, a federation, a dashboard refresh) the
kernel drops the SYNs past the fifth and each such client retries its connect after ~1 s. The same
server class with a backlog of LISTEN_BACKLOG answers them all at once (benchmarks/exporter.py
measures 100 concurrent scrapes against prometheus_client's own server in the same run).
"""

from __future__ import annotations

import socket
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from diagnose.exporter.collector import ReportCollector

# Connections the kernel queues before accept(); capped by net.core.somaxconn (4096 on current Linux).
LISTEN_BACKLOG = 1024


def build_registry(collector: ReportCollector, *, self_metrics: bool = True) -> CollectorRegistry:
    """Our collector, plus the exporter's own process_*/python_* series (its CPU and memory) when asked."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if self_metrics:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return registry


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one line per scrape on stderr is noise
        pass


def _server_class(bind: str, port: int) -> type[WSGIServer]:
    family = socket.getaddrinfo(bind or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True  # a scraper that hangs must not keep the exporter from exiting
        request_queue_size = LISTEN_BACKLOG
        address_family = family

    return Server


def make_exporter_server(registry: CollectorRegistry, *, bind: str, port: int) -> WSGIServer:
    """The bound, listening server, not yet answering (serve() starts it)."""
    app = make_wsgi_app(registry)
    return make_server(bind, port, app, _server_class(bind, port), handler_class=_QuietHandler)


def serve(registry: CollectorRegistry, *, bind: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Starts the HTTP server thread; returns (server, thread), as prometheus_client's does."""
    httpd = make_exporter_server(registry, bind=bind, port=port)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True, name="rerank-doctor-exporter-http")
    thread.start()
    return httpd, thread
