"""`rerank-doctor export`: serve the live diagnosis as Prometheus metrics (`rerank_doctor_*`).

A background thread collects windows back to back (the same pipeline as `check --url`); scrapes format
the last good one and never wait on vLLM. Binds 127.0.0.1 unless --bind says otherwise: the metrics
name processes and ports of the serving host, which is nobody else's business by default.
"""

from __future__ import annotations

import argparse

from diagnose.commands.server_args import add_server_arguments
from diagnose.units import positive_duration

HELP = "serve the live diagnosis (verdict, findings, GPU, per-process CPU, sockets) as Prometheus metrics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the vLLM server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--port", type=int, default=9400, help="port to serve /metrics on (default 9400)")
    parser.add_argument(
        "--bind",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 inside a container)",
    )
    parser.add_argument(
        "--window",
        type=positive_duration,
        default=30.0,
        help="length of each collection window (default 30s)",
    )
    parser.add_argument(
        "--interval",
        type=positive_duration,
        default=5.0,
        # psutil's cpu_percent is the mean since the previous call, so a 5 s beat still gives the
        # window's true mean CPU at a fifth of the sampling cost (the exporter's budget is 0.5 % of a core).
        help="GPU/CPU/socket beat (default 5s)",
    )
    parser.add_argument(
        "--metrics-interval",
        type=positive_duration,
        help="vLLM /metrics period (default: the window: one scrape at each end, enough for its counters; "
        "Prometheus scrapes vLLM's gauges itself)",
    )
    parser.add_argument(
        "--stale-after",
        type=positive_duration,
        help="mark values stale when the last good window is older than this (default 3 windows)",
    )
    parser.add_argument(
        "--timeout", type=positive_duration, default=5.0, help="per-request limit (default 5s)"
    )
    parser.add_argument("--thresholds", help="TOML file overriding rule thresholds (as for `check`)")
    add_server_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import signal
    import sys
    import threading

    from diagnose.errors import DoctorError
    from diagnose.exit_status import ExitStatus
    from diagnose.exporter.collector import ReportCollector
    from diagnose.exporter.loop import CollectionLoop
    from diagnose.exporter.server import build_registry, serve
    from diagnose.exporter.state import ExporterState
    from diagnose.thresholds import load
    from diagnose.urls import base_url

    if not 0 < args.port < 65536:
        raise DoctorError(
            f"--port {args.port} is not a TCP port", "use 1-65535, e.g. --port 9400", ExitStatus.USAGE
        )
    thresholds = load(args.thresholds)
    url = base_url(args.url)
    state = ExporterState()
    stale_after_s = args.stale_after or 3 * args.window
    collector = ReportCollector(state, url=url, stale_after_s=stale_after_s)
    try:
        server, _ = serve(build_registry(collector), bind=args.bind, port=args.port)
    except OSError as err:
        raise DoctorError(
            f"cannot listen on {args.bind}:{args.port}: {err.strerror or err}",
            "pick a free port with --port, or stop what listens there",
            ExitStatus.USAGE,
        ) from None
    loop = CollectionLoop(
        url,
        state,
        window_s=args.window,
        interval_s=args.interval,
        metrics_interval_s=args.metrics_interval or args.window,
        pid=args.pid,
        api_key=args.api_key,
        timeout_s=args.timeout,
        use_gpu=not args.no_gpu,
        thresholds=thresholds,
    )
    loop.start()
    print(
        f"rerank-doctor export: serving http://{args.bind}:{args.port}/metrics for {url} "
        f"(a {args.window:g} s window, first values after one window)",
        file=sys.stderr,
        flush=True,
    )
    done = threading.Event()
    # `docker stop` sends SIGTERM: finish cleanly (exit 0) instead of dying mid-window.
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()  # until SIGTERM, or Ctrl-C (the CLI maps KeyboardInterrupt to 130)
    finally:
        loop.stop()
        server.shutdown()
    return int(ExitStatus.OK)
