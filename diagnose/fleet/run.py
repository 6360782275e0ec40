"""`check --prometheus` and `watch --prometheus`: the queries, one Bundle per replica, one report each."""

from __future__ import annotations

import argparse
import gc
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.fleet.assemble import assemble, down_without_series
from diagnose.fleet.client import PrometheusClient, Series, parse_headers
from diagnose.fleet.parallel import diagnose_replicas
from diagnose.fleet.queries import (
    STORE_QUANTILE_HISTOGRAMS,
    Query,
    bucket_names,
    bucket_selector,
    first_bucket_probe,
    parse_selector,
    plan,
    regex_of,
)
from diagnose.fleet.summary import FleetReport, summarize
from diagnose.fleet.window import Window, window_from_args
from diagnose.readings import Bundle
from diagnose.thresholds import Thresholds

# Range queries sample gauges, GPU and exporter series at this many steps over the window (plus one):
# enough to see a queue build up, few enough that 1,000 replicas answer in a few MB.
RANGE_POINTS = 30
# No scrape interval in common use is shorter: a finer step only repeats the same samples.
MIN_STEP_S = 5.0
# Queries in flight at once: Prometheus evaluates them on several cores while the answers are decoded.
PARALLEL_QUERIES = 4


def first_bucket_bounds(client: PrometheusClient, window: Window, matchers: str) -> dict[str, float]:
    """The first bucket bound of each STORE_QUANTILE_HISTOGRAMS family, where every replica's histogram
    starts at it: the families whose quantile Prometheus may compute (queries.py). From the index (one
    label-values call per family) and one count; a fixed cost whatever the fleet. Nothing where the
    label-values API is not served: every histogram is then fetched bucket by bucket."""
    from concurrent.futures import ThreadPoolExecutor

    def first(concept: str) -> tuple[str, float, str] | None:
        texts = client.label_values(
            "le", bucket_selector(concept, matchers), window.start_unix, window.end_unix
        )
        bounds = []
        for text in texts or []:
            try:
                le = float(text)
            except ValueError:
                continue
            if math.isfinite(le):
                bounds.append((le, text))
        return (concept, *min(bounds)) if bounds else None

    with ThreadPoolExecutor(max_workers=PARALLEL_QUERIES) as pool:
        found = [f for f in pool.map(first, STORE_QUANTILE_HISTOGRAMS) if f is not None]
    if not found:
        return {}
    counts = client.instant(first_bucket_probe({c: text for c, _, text in found}, matchers), window.end_unix)
    at_first: dict[str, float] = {}
    at_inf: dict[str, float] = {}
    for concept, _, text in found:
        names = set(bucket_names(concept))
        for s in counts:
            if s.labels.get("__name__") in names:
                into = (
                    at_inf
                    if s.labels.get("le") == "+Inf"
                    else at_first
                    if s.labels.get("le") == text
                    else None
                )
                if into is not None:
                    into[concept] = into.get(concept, 0.0) + s.points[0][1]
    # Equal counts: every histogram of the family has that first bound (and none a lower one: the index
    # lists none). Otherwise its replicas differ (mixed versions): its buckets are fetched as they are.
    return {c: le for c, le, _ in found if at_inf.get(c, 0.0) > 0 and at_first.get(c) == at_inf.get(c)}


def fetch(
    client: PrometheusClient, window: Window, replica_label: str, matchers: str, *, steps: bool = False
) -> tuple[dict[str, list[Series]], dict[str, float]]:
    """Runs the plan: a fixed number of queries whatever the fleet's size. Returns the answers and the
    first bucket bound of each histogram whose quantile Prometheus computed. `steps=True` (charts)
    evaluates the counters at every range step too, and fetches every histogram's buckets."""
    from concurrent.futures import ThreadPoolExecutor

    step_s = max(MIN_STEP_S, window.seconds / RANGE_POINTS)
    first_le = {} if steps else first_bucket_bounds(client, window, matchers)

    def one(query: Query) -> list[Series]:
        if query.when == "range" or (steps and query.when == "ends"):
            return client.range(query.expr, window.start_unix, window.end_unix, step_s)
        if query.when == "ends":
            return client.range(query.expr, window.start_unix, window.end_unix, window.seconds)
        return client.instant(query.expr, window.end_unix)

    queries = plan(replica_label, matchers, window.seconds, first_le)
    with ThreadPoolExecutor(max_workers=PARALLEL_QUERIES) as pool:
        results = list(pool.map(one, queries))  # the first failure is raised here, as one DoctorError
    return {q.key: r for q, r in zip(queries, results, strict=True)}, first_le


def diagnose_fleet(
    client: PrometheusClient,
    window: Window,
    *,
    replica_label: str = "pod",
    selector: str | None = None,
    thresholds: Thresholds | None = None,
) -> FleetReport:
    with _without_cyclic_gc():
        return _diagnose_fleet(client, window, replica_label, selector, thresholds)


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
) -> FleetReport:
    matchers = parse_selector(selector)
    answers, first_le = fetch(client, window, replica_label, matchers)
    up_end = {"up_end": answers.get("up_end", [])}  # read before assembling consumes the answers
    source = client.shown_url()
    pairs = diagnose_replicas(
        answers,
        window,
        replica_label,
        require_vllm=not matchers,
        thresholds=thresholds,
        source=source,
        first_le=first_le,
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
    client = client_from_args(args)
    report = diagnose_fleet(
        client,
        window,
        replica_label=args.replica_label,
        selector=args.selector,
        thresholds=thresholds,
    )
    show_fleet(report, as_json=args.json)
    if getattr(args, "html", None) is not None:
        write_fleet_html(args.html, report, thresholds, _charts(client, window, args, report))
    return int(ExitStatus.FINDINGS if report.worst() >= Severity.parse(args.fail_on) else ExitStatus.OK)


def chart_bundles(
    client: PrometheusClient, window: Window, replica_label: str, matchers: str, replicas: list[str]
) -> dict[str, Bundle]:
    """The charted replicas' window, step by step (RANGE_POINTS steps): the diagnosis reads counters at
    the window's two ends and the latency histograms' p95 only, one interval with no shape to draw. The
    same plan, narrowed to these replicas (one regex matcher, so still a fixed number of queries)."""
    if not replicas:
        return {}
    only = f'{replica_label}=~"{regex_of(set(replicas))}"'
    answers, _ = fetch(client, window, replica_label, f"{matchers}, {only}" if matchers else only, steps=True)
    return {
        d.replica: d.bundle
        for d in assemble(answers, window, replica_label, require_vllm=False, steps=True)
        if d.replica in replicas
    }


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


def _charts(
    client: PrometheusClient, window: Window, args: argparse.Namespace, report: FleetReport
) -> dict[str, Bundle]:
    from diagnose.render.fleet_html import MAX_CHARTED

    replicas = [r.replica for r in report.replicas[:MAX_CHARTED]]
    return chart_bundles(client, window, args.replica_label, parse_selector(args.selector), replicas)


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
                        charts = _charts(client, window, args, report)
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
