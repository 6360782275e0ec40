"""Serves the exporter's registry over HTTP (prometheus_client's threaded server)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from diagnose.exporter.collector import ReportCollector


def build_registry(collector: ReportCollector, *, self_metrics: bool = True) -> CollectorRegistry:
    """Our collector, plus the exporter's own process_*/python_* series (its CPU and memory) when asked."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if self_metrics:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return registry


def serve(registry: CollectorRegistry, *, bind: str, port: int) -> Any:
    """Starts the HTTP server thread; returns (server, thread) from prometheus_client."""
    return start_http_server(port, addr=bind, registry=registry)
