"""`rerank-doctor watch`: the `check` view, refreshed live, one window after another."""

from __future__ import annotations

import argparse
from pathlib import Path

from diagnose.commands.server_args import add_server_arguments
from diagnose.fleet.args import add_prometheus_arguments
from diagnose.units import positive_duration

HELP = "diagnose a live vLLM server continuously: the check view, refreshed after every window"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="the live vLLM server, e.g. http://127.0.0.1:8000")
    source.add_argument("--prometheus", metavar="URL", help="every replica, from Prometheus/Thanos/Mimir")
    parser.add_argument("--every", type=positive_duration, default=10.0, help="window length (default 10s)")
    parser.add_argument("--windows", type=int, help="stop after this many windows (default: until Ctrl-C)")
    parser.add_argument("--thresholds", help="TOML file overriding rule thresholds")
    parser.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="rewrite FILE with the latest window's HTML report after every refresh (reload to follow)",
    )
    add_server_arguments(parser)
    add_prometheus_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import time

    from rich.console import Console, Group
    from rich.live import Live
    from rich.text import Text

    from diagnose.collect.run import collect_to_folder
    from diagnose.collect.sampler import CollectionInterrupted
    from diagnose.commands.report import write_html
    from diagnose.derive.series import window_series
    from diagnose.errors import DoctorError
    from diagnose.exit_status import ExitStatus
    from diagnose.pipeline import diagnose, metrics_issue
    from diagnose.redact import redact_url
    from diagnose.render.text import report_renderable
    from diagnose.thresholds import load
    from diagnose.urls import base_url

    if args.windows is not None and args.windows <= 0:
        raise DoctorError("--windows must be above zero", "e.g. --windows 6", ExitStatus.USAGE)
    thresholds = load(args.thresholds)
    if args.prometheus is not None:
        from diagnose.fleet.run import run_watch

        return run_watch(args, thresholds)
    shown_url = redact_url(args.url)
    # Normalised once: what is shown and reported carries no credentials (diagnose/urls.py).
    args.url = base_url(args.url)
    console = Console()
    shown = 0
    with Live(
        Text(f"collecting the first {args.every:g} s window from {shown_url} ..."), console=console
    ) as live:
        try:
            while args.windows is None or shown < args.windows:
                bundle, _ = collect_to_folder(
                    url=args.url,
                    out=None,
                    duration_s=args.every,
                    pid=args.pid,
                    api_key=args.api_key,
                    use_gpu=not args.no_gpu,
                    show_progress=False,
                )
                stamp = time.strftime("%H:%M:%S")
                if not bundle.dumps:
                    first = metrics_issue(bundle)
                    reason = first.reason if first else "no /metrics"
                    live.update(
                        Text(f"{stamp}  {shown_url}: {reason} — retrying every {args.every:g} s", style="red")
                    )
                    time.sleep(args.every)  # an unreachable server answers at once: don't spin
                else:
                    report = diagnose(bundle, thresholds, source=args.url)
                    series = window_series(bundle, thresholds)
                    head = f"{stamp}  window {shown + 1}"
                    if args.html is not None:
                        said = write_html(args.html, report, bundle, thresholds, series=series, quiet=True)
                        head += f" · {said}"
                    view = report_renderable(report, series=series)
                    live.update(Group(Text(head, style="dim"), view))
                shown += 1
        except CollectionInterrupted as stop:
            # Ctrl-C (or SIGTERM) is how watch ends: the window cut short is shown, marked, and exit 130.
            if stop.bundle.dumps:
                report = diagnose(stop.bundle, thresholds, source=args.url)
                live.update(
                    Group(
                        Text(f"window {shown + 1}", style="dim"),
                        report_renderable(report, series=window_series(stop.bundle, thresholds)),
                    )
                )
            return int(ExitStatus.INTERRUPTED)
        except KeyboardInterrupt:
            return int(ExitStatus.INTERRUPTED)  # between windows (the retry pause): nothing half-done
    return int(ExitStatus.OK)
