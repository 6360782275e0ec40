"""`rerank-doctor stress`: reranker-shaped open- or closed-loop load on a local vLLM, reported honestly."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from diagnose.commands.shared_args import add_seed_argument
from diagnose.defaults import DEFAULT_DOCS_PER_CALL, DEFAULT_DRAIN_S, DEFAULT_WORDS_PER_DOC

if TYPE_CHECKING:
    from diagnose.stress.config import LoadConfig

HELP = "send reranker-shaped load (open or closed loop) to a local vLLM and report latency honestly"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_argument_group("target")
    target.add_argument("--url", default="http://127.0.0.1:8000", help="vLLM base URL (default %(default)s)")
    target.add_argument(
        "--endpoint",
        default=None,
        help="/v1/rerank (default), /rerank, /v2/rerank, /score or /v1/score",
    )
    target.add_argument(
        "--model", default=None, help="served model name (default: first id of GET /v1/models)"
    )
    target.add_argument(
        "--api-key",
        default=None,
        help="sent as 'Authorization: Bearer'; never printed or saved (default: $VLLM_API_KEY)",
    )
    target.add_argument(
        "--yes-really", action="store_true", help="allow a target that is not 127.0.0.0/8, ::1 or localhost"
    )
    load = parser.add_argument_group("load (give --rate or --concurrency)")
    mode = load.add_mutually_exclusive_group()
    mode.add_argument(
        "--rate", type=float, default=None, help="open loop: calls/s (latency from intended send)"
    )
    mode.add_argument(
        "--concurrency", type=int, default=None, help="closed loop: workers sending back to back"
    )
    load.add_argument(
        "--arrival", choices=("poisson", "constant"), default="poisson", help="open-loop arrivals"
    )
    load.add_argument(
        "--ramp", default=None, help="open loop: ramp linearly to --rate over this long (e.g. 10s)"
    )
    load.add_argument(
        "--ramp-from", type=float, default=0.0, help="calls/s at the start of the ramp (default 0)"
    )
    load.add_argument("--duration", default="30s", help="how long to send (10s, 2m; default %(default)s)")
    load.add_argument("--max-requests", type=int, default=None, help="stop after this many calls")
    load.add_argument("--timeout", default="30s", help="per call (default %(default)s)")
    load.add_argument(
        "--drain",
        default=f"{DEFAULT_DRAIN_S:g}s",
        help="after sending stops, wait this long for calls in flight, then cancel them "
        "(default %(default)s)",
    )
    load.add_argument(
        "--new-connection-per-request",
        action="store_true",
        help="close each connection after its call (reproduces clients that churn sockets)",
    )
    shape = parser.add_argument_group("request shape")
    shape.add_argument(
        "--docs",
        default=str(DEFAULT_DOCS_PER_CALL),
        help="documents per call: 20, or a range 5-50 (default %(default)s)",
    )
    shape.add_argument(
        "--words",
        default=str(DEFAULT_WORDS_PER_DOC),
        help="words per document: 100, or 20-400 (default %(default)s)",
    )
    shape.add_argument("--query-words", type=int, default=12, help="words per query (default %(default)s)")
    shape.add_argument(
        "--qwen3-template",
        action="store_true",
        help="wrap query and documents in the Qwen3-Reranker prompt format",
    )
    shape.add_argument(
        "--instruction", default=None, help="Qwen3-Reranker instruction (with --qwen3-template)"
    )
    shape.add_argument("--top-n", type=int, default=None, help="rerank endpoints: top_n in each body")
    shape.add_argument(
        "--distinct-bodies",
        type=int,
        default=1024,
        help="different bodies to cycle through, so prefix caching is not flattered (default %(default)s)",
    )
    add_seed_argument(shape)
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the report as JSON (with schema_version)")
    out.add_argument(
        "--save", metavar="DIR", default=None, help="write stress.json into this bundle directory"
    )
    out.add_argument("--quiet", action="store_true", help="no live progress display")
    out.add_argument("--no-metrics", action="store_true", help="do not scrape /metrics before and after")


def config_from_args(args: argparse.Namespace) -> LoadConfig:
    from diagnose.stress.config import LoadConfig, parse_duration, parse_range

    rate, concurrency = args.rate, args.concurrency
    if rate is None and concurrency is None:
        rate = 10.0  # a gentle default: a 2-core CPU lab answers ~30 calls/s of 20 x 50-word calls
    return LoadConfig(
        url=args.url,
        endpoint=args.endpoint,
        model=args.model,
        api_key=args.api_key or os.environ.get("VLLM_API_KEY") or None,
        rate_per_s=rate,
        arrival=args.arrival,
        ramp_s=parse_duration(args.ramp, "--ramp") if args.ramp else 0.0,
        ramp_from_per_s=args.ramp_from,
        concurrency=concurrency,
        duration_s=parse_duration(args.duration, "--duration"),
        max_requests=args.max_requests,
        timeout_s=parse_duration(args.timeout, "--timeout"),
        drain_s=parse_duration(args.drain, "--drain", allow_zero=True),
        docs=parse_range(args.docs, "--docs"),
        words=parse_range(args.words, "--words"),
        query_words=args.query_words,
        qwen3_template=args.qwen3_template,
        instruction=args.instruction,
        top_n=args.top_n,
        distinct_bodies=args.distinct_bodies,
        seed=args.seed,
        new_connection_per_request=args.new_connection_per_request,
        yes_really=args.yes_really,
        scrape_metrics=not args.no_metrics,
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from diagnose.exit_status import ExitStatus
    from diagnose.stress.client import run_load

    config = config_from_args(args)
    show_progress = not args.quiet and not args.json and sys.stderr.isatty()
    report = run_load(config, progress=show_progress)
    from diagnose.commands.output import emit, save_json
    from diagnose.stress.render import render

    doc = report.to_dict()
    if args.save:
        save_json(args.save, "stress.json", doc)
    emit(doc, as_json=args.json, blocks=lambda: render(report))
    return int(ExitStatus.INTERRUPTED if report.interrupted else ExitStatus.OK)
