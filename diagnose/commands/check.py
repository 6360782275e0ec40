"""`rerank-doctor check`: diagnose a live vLLM server over a short window, or a saved bundle.

Pipeline: collect (or read a bundle) -> diagnose.pipeline.diagnose -> text or JSON.
Exit status 0 when no finding is at or above --fail-on (default warning), 1 otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from diagnose.commands.server_args import add_server_arguments
from diagnose.commands.shared_args import add_load_shape_arguments
from diagnose.fleet.args import add_prometheus_arguments
from diagnose.units import positive_duration

if TYPE_CHECKING:
    from diagnose.derive.series import WindowSeries
    from diagnose.progress import StepReporter
    from diagnose.readings import Bundle
    from diagnose.report import Report
    from diagnose.thresholds import Thresholds

HELP = "diagnose a vLLM reranker (live --url, or a bundle with --from): bottleneck, numbers, flags to change"

FAIL_ON = ("info", "warning", "critical")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="the live vLLM server, e.g. http://127.0.0.1:8000")
    source.add_argument(
        "--from",
        dest="bundle",
        type=Path,
        metavar="BUNDLE",
        help="a bundle folder from `rerank-doctor collect`",
    )
    source.add_argument("--prometheus", metavar="URL", help="every replica, from Prometheus/Thanos/Mimir")
    parser.add_argument(
        "--duration",
        type=positive_duration,
        default=10.0,
        help="live window length (default 10s; with --url)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the report as JSON (schema_version inside)"
    )
    parser.add_argument(
        "--thresholds", type=Path, metavar="FILE", help="TOML file overriding rule thresholds"
    )
    parser.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        default="warning",
        help="exit 1 when a finding is at or above this severity (default warning)",
    )
    parser.add_argument(
        "--stress",
        type=float,
        metavar="CALLS_PER_S",
        help="with --url: drive open-loop rerank load at this rate during the window (loopback only), "
        "so the diagnosis sees the client's latency too",
    )
    add_load_shape_arguments(parser, what="with --stress")
    add_server_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.add_argument("--html", type=Path, metavar="FILE", help="also write the report as one HTML file")
    add_prometheus_arguments(parser)


def show_report(
    report: Report,
    *,
    as_json: bool,
    generated_load: dict | None = None,
    bundle: Bundle | None = None,
    thresholds: Thresholds | None = None,
    series: WindowSeries | None = None,
) -> None:
    """Prints a report for a person (rich) or a program (JSON); `demo` prints through this too.

    `generated_load` is the stress report of load rerank-doctor drove itself: its seed and the prefix-cache
    hit ratio it met are stated under the report (JSON readers find them in stress.json). With the bundle
    (or its `series`, computed already), the text report carries the window's sparklines.
    """
    from rich.console import Console

    from diagnose.derive.series import window_series
    from diagnose.render.json import render_json
    from diagnose.render.text import report_renderable

    if as_json:
        print(render_json(report))
    else:
        if series is None and bundle is not None:
            series = window_series(bundle, thresholds)
        Console().print(report_renderable(report, series=series))
        if generated_load is not None:
            from diagnose.stress.render import generated_load_text

            Console().print(generated_load_text(generated_load))


def run(args: argparse.Namespace) -> int:
    from diagnose.collect.sampler import CollectionInterrupted
    from diagnose.errors import DoctorError
    from diagnose.exit_status import ExitStatus
    from diagnose.pipeline import metrics_issue
    from diagnose.redact import redact_url
    from diagnose.thresholds import load

    interrupted = False
    thresholds = load(args.thresholds)  # before collecting: a typo should not cost a window
    if args.prometheus is not None:
        from diagnose.fleet.run import run_check

        return run_check(args, thresholds)
    if args.bundle is not None and args.stress is not None:
        raise DoctorError(
            "--stress drives a live server; a bundle is already collected",
            "use --url with --stress, or run `rerank-doctor stress --save BUNDLE` while collecting",
            ExitStatus.USAGE,
        )
    if args.bundle is not None:
        from diagnose.bundle import read_bundle
        from diagnose.commands.output import bundle_progress

        # The progress line ends before the report is printed: every pass over the dumps is inside it.
        with bundle_progress(args.bundle, quiet=args.quiet or args.json) as progress:
            bundle = read_bundle(args.bundle, progress)
            report, series = _diagnosed(args, bundle, thresholds, str(args.bundle), progress)
        return _shown(args, report, bundle, series, interrupted=False)
    else:
        from diagnose.urls import base_url

        # Normalised once: the source line, messages and the load all see it, with no credentials.
        args.url = base_url(args.url)
        collect_args = dict(
            pid=args.pid,
            api_key=args.api_key,
            use_gpu=not args.no_gpu,
            show_progress=not (args.quiet or args.json),
        )
        if args.stress is not None:
            from diagnose.collect.under_load import collect_under_load
            from diagnose.stress import IntRange, LoadConfig

            if args.stress <= 0 or args.docs <= 0 or args.words <= 0:
                raise DoctorError(
                    "--stress, --docs and --words must be above zero",
                    "e.g. --stress 10 --docs 20 --words 100",
                    ExitStatus.USAGE,
                )
            config = LoadConfig(
                url=args.url,
                api_key=args.api_key,
                rate_per_s=args.stress,
                docs=IntRange(args.docs, args.docs),
                words=IntRange(args.words, args.words),
                seed=args.seed,
            )
            try:
                bundle = collect_under_load(
                    config, url=args.url, out=None, duration_s=args.duration, **collect_args
                )
            except CollectionInterrupted as stop:  # as below: the window so far, reported, then 130
                bundle, interrupted = stop.bundle, True
        else:
            from diagnose.collect.run import collect_to_folder

            try:
                bundle, _ = collect_to_folder(
                    url=args.url, out=None, duration_s=args.duration, **collect_args
                )
            except CollectionInterrupted as stop:
                # Ctrl-C / SIGTERM: the report of what was collected, marked (its note), then exit 130.
                bundle, interrupted = stop.bundle, True
        if not bundle.dumps:
            if interrupted:
                raise KeyboardInterrupt  # nothing to report yet: the CLI's plain "interrupted", 130
            first = metrics_issue(bundle)
            raise DoctorError(
                f"no /metrics: {first.reason}" if first else f"no /metrics from {redact_url(args.url)}",
                (first.fix if first and first.fix else "check the URL and that vLLM is running"),
                status=ExitStatus.UNREACHABLE,
            )
    report, series = _diagnosed(args, bundle, thresholds, args.url, None)
    return _shown(args, report, bundle, series, interrupted)


def _diagnosed(
    args: argparse.Namespace,
    bundle: Bundle,
    thresholds: Thresholds,
    source: str,
    progress: StepReporter | None,
) -> tuple[Report, WindowSeries | None]:
    """The report, the HTML file when asked, and the series the terminal view draws (None for --json)."""
    from diagnose.derive.series import window_series
    from diagnose.pipeline import diagnose

    report = diagnose(bundle, thresholds, source=source, progress=progress)
    series = window_series(bundle, thresholds, progress) if args.html is not None or not args.json else None
    if args.html is not None:
        from diagnose.commands.report import write_html

        write_html(args.html, report, bundle, thresholds, series=series)
    return report, series


def _shown(
    args: argparse.Namespace,
    report: Report,
    bundle: Bundle,
    series: WindowSeries | None,
    interrupted: bool,
) -> int:
    """Prints the report; the exit status."""
    from diagnose.exit_status import ExitStatus
    from diagnose.report import Severity

    show_report(
        report,
        as_json=args.json,
        generated_load=bundle.stress if args.stress is not None else None,
        series=series,
    )
    if interrupted:
        return int(ExitStatus.INTERRUPTED)
    fail_on = Severity.parse(args.fail_on)
    return int(ExitStatus.FINDINGS if report.worst() >= fail_on else ExitStatus.OK)
