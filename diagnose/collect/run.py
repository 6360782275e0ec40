"""Wiring for a live collection: builds the sources for a URL, shows progress, writes the bundle.

The imports of psutil and pynvml happen here, at the edge; nothing below the collectors sees them.
"""

from __future__ import annotations

import socket
from pathlib import Path

from diagnose.bundle import BundleWriter
from diagnose.collect.sampler import CollectionInterrupted, Progress, Sources, collect_window
from diagnose.collect.vllm import VllmSource
from diagnose.readings import Bundle, CollectorIssue
from diagnose.urls import is_loopback_host, parse_server_url


def url_port(url: str) -> int:
    return parse_server_url(url).effective_port


def is_this_host(url: str) -> bool:
    """True when the server runs on this machine, so its processes and sockets can be seen from here."""
    host = parse_server_url(url).host
    return is_loopback_host(host) or host == socket.gethostname().lower()


def build_sources(
    url: str, *, pid: int | None, api_key: str | None, timeout_s: float, use_gpu: bool
) -> tuple[Sources, list[CollectorIssue]]:
    vllm = VllmSource(url, api_key=api_key, timeout_s=timeout_s)
    sources = Sources(vllm=vllm, port=url_port(vllm.url), pid=pid)
    notes: list[CollectorIssue] = []
    if is_this_host(vllm.url) or pid is not None:
        from diagnose.collect.host import HostSource
        from diagnose.collect.sockets import SocketSource

        sources.host = HostSource()
        sources.sockets = SocketSource()
    else:
        notes.append(
            CollectorIssue(
                0.0,
                "host",
                f"{vllm.url} is not on this host: per-process CPU and the socket census are skipped",
                "run rerank-doctor on the serving host (or pass --pid there) to see the vLLM processes",
            )
        )
    if use_gpu:
        from diagnose.collect.gpu import NvmlSource

        sources.gpu = NvmlSource()
    return sources, notes


def collect_to_folder(
    *,
    url: str,
    out: Path | None,
    duration_s: float,
    interval_s: float = 1.0,
    metrics_interval_s: float = 5.0,
    pid: int | None = None,
    api_key: str | None = None,
    timeout_s: float = 5.0,
    use_gpu: bool = True,
    show_progress: bool = True,
) -> tuple[Bundle, Progress]:
    """Collects one window from a live server; writes it to `out` as it goes when `out` is given."""
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    sources, notes = build_sources(url, pid=pid, api_key=api_key, timeout_s=timeout_s, use_gpu=use_gpu)
    settings = {"duration_s": duration_s, "interval_s": interval_s, "metrics_interval_s": metrics_interval_s}
    writer = BundleWriter(out, url=sources.vllm.url, settings=settings) if out else None
    console = Console(stderr=True)
    last = Progress()
    try:
        with RichProgress(
            TextColumn("[bold]collecting[/] {task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
            TimeElapsedColumn(),
            console=console,
            disable=not show_progress or not console.is_terminal,
            transient=True,
        ) as bar:
            task = bar.add_task(sources.vllm.url, total=duration_s)

            def on_progress(p: Progress) -> None:
                nonlocal last
                last = p
                bar.update(
                    task,
                    completed=min(p.elapsed_s, duration_s),
                    description=f"{sources.vllm.url}: {p.dumps} scrapes, {p.gpu_samples} GPU, "
                    f"{p.process_samples} process samples, {len(p.issues)} issues",
                )

            try:
                bundle = collect_window(
                    sources,
                    duration_s=duration_s,
                    interval_s=interval_s,
                    metrics_interval_s=metrics_interval_s,
                    writer=writer,
                    on_progress=on_progress,
                )
            except CollectionInterrupted as stop:
                # The partial window goes up whole, with the same notes a full one would have.
                stop.bundle.issues[:0] = notes
                if writer:
                    writer.set_issues(stop.bundle.issues)
                raise
        bundle.issues[:0] = notes
        if writer:
            writer.set_issues(bundle.issues)
    finally:
        if writer:
            writer.close()
    return bundle, last
