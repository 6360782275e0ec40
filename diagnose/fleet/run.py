"""`check --prometheus` and `watch --prometheus`: the fleet pipeline's one entry point, `diagnose_fleet`
(fetch.py runs the queries, parallel.py diagnoses each replica's Bundle, summary.py makes the fleet view)."""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.fleet.assemble import down_without_series
from diagnose.fleet.client import PrometheusClient, parse_headers
from diagnose.fleet.fetch import chart_bundles, fetch
from diagnose.fleet.parallel import diagnose_replicas
from diagnose.fleet.queries import parse_selector
from diagnose.fleet.summary import FleetReport, summarize
from diagnose.fleet.window import Window, window_from_args
from diagnose.progress import StepReporter
from diagnose.readings import Bundle
from diagnose.thresholds import Thresholds

# A fleet diagnosis takes 0.2 s over a few replicas and can take many seconds over a large fleet or a
# slow Thanos: only past this does a log get a progress line.
PROGRESS_AFTER_S = 2.0


def diagnose_fleet(
    client: PrometheusClient,
    window: Window,
    *,
    replica_label: str = "pod",
    selector: str | None = None,
    thresholds: Thresholds | None = None,
    progress: StepReporter | None = None,
) -> FleetReport:
    with _without_cyclic_gc():
        return _diagnose_fleet(client, window, replica_label, selector, thresholds, progress)


@contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """The cyclic garbage collector off for one fleet diagnosis. The answers and the rebuilt readings are
    hundreds of thousands of small containers that live until the report is made, and they make no
    cycles; each collection would walk them all again (at 1,000 replicas that was a third of the time
    decoding the answers and a quarter of diagnosing them). Reference counting still frees what dies;
    the collector comes back on afterwards (watch runs one diagnosis after another)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _diagnose_fleet(
    client: PrometheusClient,
    window: Window,
    replica_label: str,
    selector: str | None,
    thresholds: Thresholds | None,
    progress: StepReporter | None,
) -> FleetReport:
    matchers = parse_selector(selector)
    answers, first_le = fetch(client, window, replica_label, matchers, progress=progress)
    up_end = {"up_end": answers.get("up_end", [])}  # read before assembling consumes the answers
    source = client.shown_url()
    if progress is not None:
        progress.step("diagnosing each replica")
    pairs = diagnose_replicas(
        answers,
        window,
        replica_label,
        require_vllm=not matchers,
        thresholds=thresholds,
        source=source,
        first_le=first_le,
        progress=progress,
    )
    if not pairs:
        where = f" matching {selector}" if matchers else ""
        raise DoctorError(
            f"no vLLM series{where} at {client.shown_url()} between {_stamp(window.start_unix)} and "
            f"{_stamp(window.end_unix)}",
            "check --selector and the window (--since / --start --end), and that Prometheus scrapes vLLM",
            ExitStatus.UNREACHABLE,
        )
    return summarize(
        pairs,
        window,
        source=source,
        replica_label=replica_label,
        selector=selector or "",
        warnings=client.warnings,
        queries=client.queries,
        bytes_read=client.bytes_read,
        # Only with a selector: without one, `up` covers every target Prometheus scrapes, not only vLLM.
        down_without_series=down_without_series(up_end, replica_label, {d.replica for d, _ in pairs})
        if matchers
        else [],
    )


def _stamp(t_unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_unix))


def client_from_args(args: argparse.Namespace) -> PrometheusClient:
    return PrometheusClient(
        args.prometheus,
        headers=parse_headers(args.header),
        ca_cert=args.ca_cert,
        total_s=args.query_timeout,
    )


def run_check(args: argparse.Namespace, thresholds: Thresholds | None) -> int:
    from diagnose.fleet.render import show_fleet
    from diagnose.report import Severity

    if getattr(args, "stress", None) is not None:
        raise DoctorError(
            "--stress drives one live server; --prometheus reads what the fleet already recorded",
            "drop --stress, or use --url with --stress",
            ExitStatus.USAGE,
        )
    window = window_from_args(args.since, args.start, args.end, time.time())
    quiet = getattr(args, "quiet", False) or args.json
    # Each progress line ends before what follows it is printed: the report comes as soon as it is
    # known, the charts' step-by-step fetch (for --html) after it.
    with fleet_progress(quiet=quiet) as progress:
        report = diagnose_fleet(
            client_from_args(args),
            window,
            replica_label=args.replica_label,
            selector=args.selector,
            thresholds=thresholds,
            progress=progress,
        )
    show_fleet(report, as_json=args.json)
    if getattr(args, "html", None) is not None:
        with fleet_progress(quiet=quiet) as progress:
            charts = _charts(window, args, report, progress=progress)
        write_fleet_html(args.html, report, thresholds, charts)
    return int(ExitStatus.FINDINGS if report.worst() >= Severity.parse(args.fail_on) else ExitStatus.OK)


def write_fleet_html(
    path: Path,
    report: FleetReport,
    thresholds: Thresholds | None,
    charts: dict[str, Bundle],
    *,
    quiet: bool = False,
) -> str:
    """The fleet report as one HTML file (diagnose/render/fleet_html.py), `charts` the charted replicas'
    step-by-step bundles (`chart_bundles`); where, in one line on stderr unless `quiet`, and returned."""
    import sys

    from diagnose.commands.report import write_page
    from diagnose.render.fleet_html import fleet_series, render_fleet_html

    series = fleet_series(report, thresholds, charts)
    page = render_fleet_html(report, series)
    target = write_page(path, page)
    said = (
        f"HTML fleet report written to {target} ({len(page.encode()) / 1024:.0f} KB, "
        f"{len(series)} of {len(report.replicas)} replicas charted)"
    )
    if not quiet:
        print(said, file=sys.stderr)
    return said


@contextmanager
def fleet_progress(*, quiet: bool) -> Iterator[StepReporter | None]:
    """A spinner on stderr while Prometheus answers and the replicas are diagnosed: on a terminal it goes
    away when done, in a log a line shows only once the work passes PROGRESS_AFTER_S. None with --quiet
    or --json (a program reading stdout wants no stderr chatter)."""
    from diagnose.progress import terminal_progress

    if quiet:
        yield None
        return
    with terminal_progress(prefix="fleet", after_s=PROGRESS_AFTER_S) as progress:
        yield progress


def _charts(
    window: Window,
    args: argparse.Namespace,
    report: FleetReport,
    *,
    quiet: bool = False,
    progress: StepReporter | None = None,
) -> dict[str, Bundle]:
    """The charted replicas' step-by-step bundles, over a client of their own (its own --query-timeout:
    the diagnosis may have used most of its). Where Prometheus cannot answer them, the page still comes,
    charting what the diagnosis read, and one line says why."""
    import sys

    from diagnose.render.fleet_html import MAX_CHARTED

    replicas = [r.replica for r in report.replicas[:MAX_CHARTED]]
    try:
        return chart_bundles(
            client_from_args(args),
            window,
            args.replica_label,
            parse_selector(args.selector),
            replicas,
            progress,
        )
    except DoctorError as err:
        if not quiet:
            print(f"rerank-doctor: the HTML charts have no steps: {err.one_line()}", file=sys.stderr)
        return {}


def run_watch(
    args: argparse.Namespace, thresholds: Thresholds | None, *, sleep: Callable[[float], None] = time.sleep
) -> int:
    """The fleet view refreshed every --every seconds over the last --since (default 10m)."""
    from rich.console import Console, Group
    from rich.live import Live
    from rich.text import Text

    from diagnose.fleet.render import fleet_renderable

    if args.start is not None or args.end is not None:
        raise DoctorError(
            "watch follows the present: --start/--end fix a past window",
            "use --since (e.g. --since 10m) with watch, or check --start T --end T",
            ExitStatus.USAGE,
        )
    client_args = client_from_args(args)
    shown = 0
    with Live(Text(f"querying {client_args.shown_url()} ..."), console=Console()) as live:
        try:
            while args.windows is None or shown < args.windows:
                client = client_from_args(args)  # a fresh deadline per refresh
                window = window_from_args(args.since, None, None, time.time())
                stamp = time.strftime("%H:%M:%S")
                try:
                    report = diagnose_fleet(
                        client,
                        window,
                        replica_label=args.replica_label,
                        selector=args.selector,
                        thresholds=thresholds,
                    )
                    head = f"{stamp}  refresh {shown + 1}"
                    if getattr(args, "html", None) is not None:
                        charts = _charts(window, args, report, quiet=True)
                        head += f" · {write_fleet_html(args.html, report, thresholds, charts, quiet=True)}"
                    live.update(Group(Text(head, style="dim"), fleet_renderable(report)))
                except DoctorError as err:
                    if err.status == ExitStatus.USAGE:
                        raise
                    live.update(
                        Text(f"{stamp}  {err.one_line()} — retrying every {args.every:g} s", style="red")
                    )
                shown += 1
                if args.windows is None or shown < args.windows:
                    sleep(args.every)
        except KeyboardInterrupt:
            # Ctrl-C (or SIGTERM) is how watch ends, as with --url: the last refresh stays shown, exit 130.
            return int(ExitStatus.INTERRUPTED)
    return int(ExitStatus.OK)
