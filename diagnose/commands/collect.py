"""`rerank-doctor collect`: gather a replayable bundle from a live vLLM server."""

from __future__ import annotations

import argparse
from pathlib import Path

from diagnose.commands.server_args import add_server_arguments
from diagnose.units import positive_duration

HELP = "collect /metrics, GPU, per-process CPU and sockets over a window into a bundle folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the vLLM server, e.g. http://127.0.0.1:8000")
    parser.add_argument(
        "--duration", type=positive_duration, default=30.0, help="window length (default 30s)"
    )
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write (created)")
    parser.add_argument(
        "--interval", type=positive_duration, default=1.0, help="GPU/CPU/socket beat (default 1s)"
    )
    parser.add_argument(
        "--metrics-interval", type=positive_duration, default=5.0, help="/metrics scrape period (default 5s)"
    )
    parser.add_argument(
        "--timeout", type=positive_duration, default=5.0, help="per-request limit (default 5s)"
    )
    add_server_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress display")


def run(args: argparse.Namespace) -> int:
    from diagnose.collect.run import collect_to_folder
    from diagnose.collect.sampler import CollectionInterrupted
    from diagnose.exit_status import ExitStatus
    from diagnose.render.collection import print_collection_summary

    try:
        bundle, outcome = collect_to_folder(
            url=args.url,
            out=args.out,
            duration_s=args.duration,
            interval_s=args.interval,
            metrics_interval_s=args.metrics_interval,
            pid=args.pid,
            api_key=args.api_key,
            timeout_s=args.timeout,
            use_gpu=not args.no_gpu,
            show_progress=not args.quiet,
        )
    except CollectionInterrupted as stop:
        # Ctrl-C / SIGTERM: the bundle on disk is complete as far as it goes (server.json, issues.json).
        print_collection_summary(stop.bundle, args.out, stop.progress)
        return int(ExitStatus.INTERRUPTED)
    print_collection_summary(bundle, args.out, outcome)
    if not bundle.dumps:
        return int(ExitStatus.UNREACHABLE)
    return int(ExitStatus.OK)
