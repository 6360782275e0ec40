"""Fleet mode against a real Prometheus 2.42 over a TSDB backfilled from the repo's real recordings.

Each recording (tests/fixtures/*/bundle, the CPU-lab dumps, the 0.7-era dump and the five H200 0.26
captures) is one replica with its own `pod` label, shifted into the recent past by
tests/fleet_backfill.py and written into blocks by `promtool tsdb create-blocks-from openmetrics`.
Every replica must get the label `check --from` gives the same recording.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import fleet_backfill as fb
import pytest
import requests
from rich.console import Console

from diagnose.bundle import read_bundle
from diagnose.cli import main
from diagnose.derive.evidence import build_evidence
from diagnose.fleet.assemble import assemble
from diagnose.fleet.client import PrometheusClient
from diagnose.fleet.fetch import fetch
from diagnose.fleet.render import fleet_renderable
from diagnose.fleet.run import diagnose_fleet
from diagnose.fleet.window import Window
from diagnose.pipeline import diagnose
from diagnose.progress import LineProgress
from diagnose.report import Verdict

SELECTOR = '{namespace="rerank"}'


@dataclass(frozen=True)
class Fleet:
    url: str
    t0: float  # every replica's first scrape
    paths: list[Path]  # replica rr-i is recording paths[i]
    expected: list[Verdict]  # what `check --from paths[i]` says

    def window(self, end_offset_s: float = 90.0) -> Window:
        return Window(self.t0, self.t0 + end_offset_s)

    def args(self, *extra: str) -> list[str]:
        return ["check", "--prometheus", self.url, "--selector", SELECTOR, "--start", f"{self.t0:.3f}",
                "--end", f"{self.t0 + 90:.3f}", *extra]  # fmt: skip


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed (apt-get install prometheus)", pytrace=False)


@pytest.fixture(scope="module", params=["colon", "underscore"])
def fleet(
    request: pytest.FixtureRequest, captures_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """`colon`: names as /metrics serves them (kept by backfill); `underscore`: as Prometheus 2.x stores
    them when it scrapes prometheus_client >= 0.23 without our relabel rule."""
    _need("promtool")
    _need("prometheus")
    paths = [*fb.RECORDINGS, *sorted(p for p in captures_dir.iterdir() if p.is_dir())]
    recordings = [fb.load_recording(p) for p in paths]
    expected = [diagnose(read_bundle(p)).verdict for p in paths]
    tmp = tmp_path_factory.mktemp(f"fleet-{request.param}")
    # In the recent past, and recent enough that `watch --since 5m` sees the last scrapes.
    t0 = float(int(time.time()) - 150)
    fb.write_openmetrics(
        [(fb.replica_name(i), r) for i, r in enumerate(recordings)],
        tmp / "fleet.om",
        t0,
        underscore_names=request.param == "underscore",
    )
    fb.create_blocks(tmp / "fleet.om", tmp / "data")
    with fb.prometheus_over(tmp / "data") as url:
        yield Fleet(url, t0, paths, expected)


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, dict]:
    status = main(argv)
    out = capsys.readouterr().out
    return status, json.loads(out)


def test_every_replica_gets_the_label_check_from_gives_its_recording(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    status, doc = _json(capsys, fleet.args("--json"))
    got = {r["replica"]: r["verdict"]["label"] for r in doc["replicas"]}
    want = {fb.replica_name(i): v.label for i, v in enumerate(fleet.expected)}
    assert got == want
    assert len(got) >= 13  # 8 repo recordings + 5 H200 captures
    # Several recordings are critical bottlenecks: the fleet is flagged, and the exit status says so.
    assert doc["verdict"]["severity"] == "critical" and status == 1


def test_fleet_json_has_a_replica_entry_per_label_value_and_a_fleet_verdict(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    _, doc = _json(capsys, fleet.args("--json", "--fail-on", "critical"))
    assert doc["schema_version"] == 1 and doc["kind"] == "fleet"
    assert set(doc["verdict"]) >= {"label", "severity"}
    worst = [r["worst_severity"] for r in doc["replicas"]]
    order = ["critical", "warning", "info", "ok"]
    assert worst == sorted(worst, key=order.index)  # worst first
    by_label: dict[str, int] = {}
    for r in doc["replicas"]:
        by_label[r["verdict"]["label"]] = by_label.get(r["verdict"]["label"], 0) + 1
    assert doc["replicas_by_label"] == by_label
    # The lab recordings have no GPU and no exporter: named per replica, with how to get them.
    lab = next(
        r
        for r in doc["replicas"]
        if r["replica"] == fb.replica_name(fleet.paths.index(fb.FIXTURES / "vllm-0.32-cpu-lab"))
    )
    assert {m["source"] for m in lab["missing_sources"]} == {"gpu", "host", "sockets"}
    assert all(m["fix"] for m in lab["missing_sources"])
    # The H200 recordings carry their vLLM version through the exporter's rerank_doctor_info.
    assert any("0.26.0" in versions for versions in doc["versions"].values())


# The Evidence sections read off the /metrics dumps (the rest come from GPU, process and socket logs,
# flags.txt and ss -s, which Prometheus has only through the exporters).
METRICS_SECTIONS = ("latency", "traffic", "shape", "scheduler")


def test_every_number_check_from_reads_off_metrics_is_known_in_fleet_mode_too(fleet: Fleet) -> None:
    """A number the recording's /metrics gives `check --from` must not be lost on the way through
    Prometheus (a query that drops series, say: PromQL's `or` matches label sets without the name)."""
    report = diagnose_fleet(PrometheusClient(fleet.url), fleet.window(), selector=SELECTOR)
    assert len(report.replicas) == len(fleet.paths)
    for r in report.replicas:
        path = fleet.paths[int(r.replica.removeprefix("rr-"))]
        from_fleet, from_bundle = build_evidence(r.data.bundle), build_evidence(read_bundle(path))
        for name in METRICS_SECTIONS:
            ours = getattr(from_fleet, name).values()
            lost = sorted(
                k for k, v in getattr(from_bundle, name).values().items() if v is not None and ours[k] is None
            )
            assert not lost, (r.replica, path.name, name, lost)


# What the exporter sidecar serves beyond per-role CPU: the whole host's sockets and the TIME_WAIT timers.
EXPORTER_FIELDS = ("time_wait_host_max", "time_wait_closed_per_s_max", "time_wait_on_port_max")


def test_the_exporters_socket_numbers_are_known_in_fleet_mode_too(fleet: Fleet) -> None:
    report = diagnose_fleet(PrometheusClient(fleet.url), fleet.window(), selector=SELECTOR)
    known = 0
    for r in report.replicas:
        path = fleet.paths[int(r.replica.removeprefix("rr-"))]
        ours, theirs = build_evidence(r.data.bundle).sockets, build_evidence(read_bundle(path)).sockets
        for name in EXPORTER_FIELDS:
            if getattr(theirs, name) is not None:
                known += 1
                assert getattr(ours, name) is not None, (r.replica, path.name, name, ours.missing.get(name))
    assert known >= 10


def test_the_current_flags_come_from_the_exporter_so_suggestions_are_against_them(fleet: Fleet) -> None:
    report = diagnose_fleet(PrometheusClient(fleet.url), fleet.window(), selector=SELECTOR)
    with_exporter = [r for r in report.replicas if r.data.sources["exporter"]]
    assert len(with_exporter) >= 8  # the H200 recordings
    for r in with_exporter:
        path = fleet.paths[int(r.replica.removeprefix("rr-"))]
        ours, theirs = build_evidence(r.data.bundle).config, build_evidence(read_bundle(path)).config
        assert ours.flag_max_model_len == theirs.flag_max_model_len is not None, (r.replica, path.name)
        assert ours.flag_api_server_count == theirs.flag_api_server_count, (r.replica, path.name)


def test_the_number_of_queries_does_not_grow_with_the_fleet(fleet: Fleet) -> None:
    one = PrometheusClient(fleet.url)
    every = PrometheusClient(fleet.url)
    single = diagnose_fleet(one, fleet.window(), selector='{namespace="rerank", pod="rr-0"}')
    whole = diagnose_fleet(every, fleet.window(), selector=SELECTOR)
    assert len(single.replicas) == 1 and len(whole.replicas) == len(fleet.paths)
    assert one.queries == every.queries


def test_replicas_whose_last_scrape_is_old_at_the_windows_end_are_named_stale(fleet: Fleet) -> None:
    report = diagnose_fleet(PrometheusClient(fleet.url), fleet.window(250.0), selector=SELECTOR)
    stale = {s.replica: s.reason for s in report.stale}
    assert set(stale) == {r.replica for r in report.replicas}
    assert all(reason.startswith("stale: last scraped") for reason in stale.values())


def test_replicas_whose_series_are_gone_by_the_windows_end_are_named_vanished(fleet: Fleet) -> None:
    # 450 s after the first scrape is past Prometheus' 5-minute lookback from every last scrape.
    report = diagnose_fleet(PrometheusClient(fleet.url), fleet.window(450.0), selector=SELECTOR)
    assert report.stale and all(s.reason.startswith("vanished") for s in report.stale)


def test_a_selector_that_matches_nothing_is_one_line_and_exit_3(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = fleet.args()
    argv[argv.index(SELECTOR)] = '{namespace="nope"}'
    assert main(argv) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no vLLM series matching" in err and "--selector" in err


def test_text_view_puts_the_worst_replica_first_and_fits_80_columns(fleet: Fleet) -> None:
    report = diagnose_fleet(PrometheusClient(fleet.url), fleet.window(), selector=SELECTOR)
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(fleet_renderable(report))
    text = out.getvalue()
    assert all(len(line) <= 80 for line in text.splitlines())
    worst = report.replicas[0]
    assert worst.report.worst().label == "critical"
    table_rows = [line for line in text.splitlines() if line.startswith("│ rr-")]
    assert table_rows[0].startswith(f"│ {worst.replica} ")
    assert all(row.rstrip().endswith("│") for row in table_rows)  # the whole table fits: nothing cropped


P95_FIELDS = ("queue_p95_s", "inference_p95_s", "e2e_p95_s", "http_p95_s")


def test_the_p95s_prometheus_computes_are_the_ones_check_from_computes(fleet: Fleet) -> None:
    """Fleet mode fetches no finite bucket of the latency histograms: Prometheus computes their p95
    (histogram_quantile over increase()). Over the same scrapes that is the bucket-delta p95 of
    `check --from`, and a p95 inside the first bucket stays unknown, with the same reason."""
    report = diagnose_fleet(PrometheusClient(fleet.url), fleet.window(), selector=SELECTOR)
    computed = 0
    for r in report.replicas:
        assert set(r.data.bundle.store_quantiles) == {
            "queue_time",
            "inference_time",
            "e2e_latency",
            "http_duration_highr",
        }
        path = fleet.paths[int(r.replica.removeprefix("rr-"))]
        ours, theirs = build_evidence(r.data.bundle).latency, build_evidence(read_bundle(path)).latency
        for name in P95_FIELDS:
            got, want = getattr(ours, name), getattr(theirs, name)
            assert (got is None) == (want is None), (r.replica, path, name, got, want)
            if want is not None:
                computed += 1
                assert got == pytest.approx(want, rel=0.01), (r.replica, path, name)
            else:
                assert ours.missing[name] == theirs.missing[name], (r.replica, name)
    assert computed >= 10  # most recordings have requests above the first bucket


def test_the_busiest_api_servers_share_is_the_one_check_from_computes(fleet: Fleet) -> None:
    """The exporter serves the busiest API server and the role's total (rerank_doctor_role_cpu_percent):
    the share fleet mode derives is the bundle's, within what per-window means allow (the exporter's
    busiest can change between windows). Without the total it was 1.0 for every multi-server replica."""
    report = diagnose_fleet(PrometheusClient(fleet.url), fleet.window(), selector=SELECTOR)
    compared = 0
    for r in report.replicas:
        path = fleet.paths[int(r.replica.removeprefix("rr-"))]
        ours, theirs = build_evidence(r.data.bundle).cpu, build_evidence(read_bundle(path)).cpu
        want = theirs.api_server_busiest_share_ratio
        if want is not None:
            compared += 1
            assert ours.api_server_busiest_share_ratio == pytest.approx(want, rel=0.15), (r.replica, path)
    assert compared >= 4  # the H200 recordings with 8 API servers


def test_the_cpu_maxima_are_the_exporters_one_second_maxima_not_the_highest_window_mean(fleet: Fleet) -> None:
    """The exporter serves each window's mean and its highest one-second reading; fleet mode reads both.
    With the means alone the 4B open-loop replica's API-server max read 26 % against the bundle's 63 %.
    What stays apart: the exporter's busiest process is its window's, the bundle's the whole run's."""
    report = diagnose_fleet(PrometheusClient(fleet.url), fleet.window(), selector=SELECTOR)
    compared = 0
    for r in report.replicas:
        path = fleet.paths[int(r.replica.removeprefix("rr-"))]
        ours, theirs = build_evidence(r.data.bundle).cpu, build_evidence(read_bundle(path)).cpu
        for name in ("api_server_cpu_max_pct", "engine_core_cpu_max_pct"):
            got, want = getattr(ours, name), getattr(theirs, name)
            if want is not None and want > 5.0:
                compared += 1
                assert got >= 0.6 * want, (r.replica, path.name, name, got, want)
    assert compared >= 10


def test_the_cpu_means_and_maxima_are_over_every_scrape_of_the_window(fleet: Fleet) -> None:
    """Prometheus computes the exporter's window means and maxima (avg/max_over_time) over every scrape,
    as `check --from` reads every sample. Read at the range steps' instants instead, the host's max was
    57 % off and the API server's mean 22 % off on one replica; now at most 0 % and 8 % (3 % for the
    host's and the engine core's means)."""
    answers, first_le = fetch(PrometheusClient(fleet.url), fleet.window(), "pod", 'namespace="rerank"')
    compared = 0
    for data in assemble(answers, fleet.window(), "pod", require_vllm=False, first_le=first_le):
        path = fleet.paths[int(data.replica.removeprefix("rr-"))]
        ours, theirs = build_evidence(data.bundle).cpu, build_evidence(read_bundle(path)).cpu
        for name in ("host_cpu_mean_pct", "host_cpu_max_pct", "engine_core_cpu_mean_pct"):
            got, want = getattr(ours, name), getattr(theirs, name)
            if want is not None and want > 1.0:
                compared += 1
                assert got == pytest.approx(want, rel=0.1), (data.replica, path.name, name)
    assert compared >= 30


SCHEDULER_GAUGES = (
    "kv_usage_max_ratio",
    "waiting_max",
    "waiting_mean",
    "running_max",
    "waiting_capacity_max",
)


@pytest.mark.parametrize("before_s", [0.0, 3510.0], ids=["90s", "1h"])
def test_the_schedulers_gauges_are_over_every_scrape_of_the_window(fleet: Fleet, before_s: float) -> None:
    """Prometheus computes the scheduler's gauge maxima and means (max/avg_over_time) over every scrape,
    as `check --from` folds every dump. Read at the range steps' instants instead, the mean queue read
    9 % off in the 90 s window, and in an hour holding the same recording (120 s steps) the busiest
    replica's waiting_max read 0 against 193 and its KV-cache maximum 0."""
    window = Window(fleet.t0 - before_s, fleet.t0 + 90)
    answers, first_le = fetch(PrometheusClient(fleet.url), window, "pod", 'namespace="rerank"')
    compared = 0
    for data in assemble(answers, window, "pod", require_vllm=False, first_le=first_le):
        path = fleet.paths[int(data.replica.removeprefix("rr-"))]
        ours, theirs = build_evidence(data.bundle).scheduler, build_evidence(read_bundle(path)).scheduler
        for name in SCHEDULER_GAUGES:
            got, want = getattr(ours, name), getattr(theirs, name)
            assert (got is None) == (want is None), (data.replica, path.name, name, got, want)
            if want:
                compared += 1
                assert got == pytest.approx(want, rel=1e-9), (data.replica, path.name, name)
    assert compared >= 15


def test_with_instance_as_the_replica_label_the_windows_statistics_are_still_read(fleet: Fleet) -> None:
    """`--replica-label instance`: a replica is one target, whose series assembly names by no instance
    of their own; the gauges' and the p95s' answers carry it, and once matched by it they were all
    dropped (every scheduler gauge and latency p95 unknown)."""
    report = diagnose_fleet(
        PrometheusClient(fleet.url), fleet.window(), replica_label="instance", selector=SELECTOR
    )
    assert {r.replica for r in report.replicas} == {
        f"{fb.replica_name(i)}:8000" for i in range(len(fleet.paths))
    }
    known = 0
    for r in report.replicas:
        path = fleet.paths[int(r.replica.removeprefix("rr-").split(":")[0])]
        ours, theirs = build_evidence(r.data.bundle), build_evidence(read_bundle(path))
        for section, name in (("scheduler", "waiting_max"), ("scheduler", "kv_usage_max_ratio"),
                              ("latency", "queue_p95_s")):  # fmt: skip
            want = getattr(getattr(theirs, section), name)
            if want is not None:
                known += 1
                assert getattr(getattr(ours, section), name) == pytest.approx(want, rel=1e-6), (
                    r.replica,
                    name,
                )
    assert known >= 20


def test_the_gpu_maxima_are_every_scrapes_not_the_steps_instants(fleet: Fleet) -> None:
    """dcgm-exporter's utilization and power at each range step are one instant; each step's
    max_over_time is asked for too. With the instants alone the 0.6B closed-loop replica's GPU max read
    50 % against 70 %. The power's maxima were once dropped whole: PromQL's `or` took them for duplicates
    of the utilization's (it matches label sets without the metric name)."""
    report = diagnose_fleet(PrometheusClient(fleet.url), fleet.window(), selector=SELECTOR)
    compared = 0
    for r in report.replicas:
        path = fleet.paths[int(r.replica.removeprefix("rr-"))]
        ours, theirs = build_evidence(r.data.bundle).gpu, build_evidence(read_bundle(path)).gpu
        if theirs.gpu_util_max_pct is not None and theirs.gpu_util_max_pct > 5.0:
            compared += 1
            assert ours.gpu_util_max_pct >= 0.85 * theirs.gpu_util_max_pct, (r.replica, path.name)
            assert any(g.power_max_w is not None for g in r.data.bundle.gpu), (r.replica, path.name)
            assert ours.gpu_power_max_w >= 0.85 * theirs.gpu_power_max_w, (r.replica, path.name)
    assert compared >= 8


@pytest.fixture
def label_api_missing(fleet: Fleet) -> Iterator[str]:
    """A gateway in front of the real Prometheus that serves the query endpoints only (404 elsewhere)."""
    yield from _proxy(fleet, warnings=[], missing_prefix="/api/v1/label/")


def test_without_the_label_values_api_the_buckets_are_fetched_and_the_labels_hold(
    fleet: Fleet, label_api_missing: str
) -> None:
    report = diagnose_fleet(PrometheusClient(label_api_missing), fleet.window(), selector=SELECTOR)
    got = {r.replica: r.report.verdict.label for r in report.replicas}
    assert got == {fb.replica_name(i): v.label for i, v in enumerate(fleet.expected)}
    assert all(not r.data.bundle.store_quantiles for r in report.replicas)
    assert not report.warnings


@pytest.fixture
def thanos_like(fleet: Fleet) -> Iterator[str]:
    """A proxy in front of the real Prometheus that adds the warning Thanos sends with a partial response."""
    yield from _proxy(fleet, warnings=["partial response: store 10.0.0.7:10901 unavailable"])


@pytest.fixture
def charts_refused(fleet: Fleet) -> Iterator[str]:
    """A gateway that refuses the queries narrowed to a few pods (`pod=~...`): those the HTML page's
    charts ask for after the diagnosis; the diagnosis' own queries pass."""
    yield from _proxy(fleet, warnings=[], refuse=lambda path: "pod%3D~" in path)


def test_html_charts_prometheus_refuses_leave_the_page_and_the_verdict_and_say_so_in_one_line(
    fleet: Fleet, charts_refused: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    page = tmp_path / "fleet.html"
    argv = fleet.args("--json", "--html", str(page))
    argv[argv.index(fleet.url)] = charts_refused
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 1 and json.loads(captured.out)["verdict"]["severity"] == "critical"
    said = [line for line in captured.err.splitlines() if line.startswith("rerank-doctor:")]
    assert len(said) == 1 and "charts" in said[0] and "HTTP 503" in said[0]
    assert "Traceback" not in captured.err
    text = page.read_text()
    assert 'data-replica="rr-' in text
    # Charted from the bundles the diagnosis read: the scheduler's gauges came as window statistics only,
    # which the page says rather than calling them not exported.
    assert "window maximum and mean only" in text
    assert "vllm:num_requests_waiting not exported" not in text


def _proxy(
    fleet: Fleet,
    *,
    warnings: list[str],
    missing_prefix: str | None = None,
    refuse: Callable[[str], bool] | None = None,
) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if missing_prefix is not None and self.path.startswith(missing_prefix):
                self.send_error(404)
                return
            if refuse is not None and refuse(self.path):
                body = json.dumps({"status": "error", "errorType": "unavailable", "error": "busy"}).encode()
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            upstream = requests.get(fleet.url + self.path, timeout=30)
            doc = upstream.json()
            if warnings:
                doc["warnings"] = warnings
            body = json.dumps(doc).encode()
            self.send_response(upstream.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_thanos_partial_response_is_a_stated_warning(
    fleet: Fleet, thanos_like: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = fleet.args("--json")
    argv[argv.index(fleet.url)] = thanos_like
    _, doc = _json(capsys, argv)
    assert doc["warnings"] == ["Prometheus warned: partial response: store 10.0.0.7:10901 unavailable"]
    assert len(doc["replicas"]) == len(fleet.paths)  # the answer is still used, with the warning beside it


def test_watch_prometheus_refreshes_the_fleet_view(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    page = tmp_path / "fleet.html"
    argv = ["watch", "--prometheus", fleet.url, "--selector", SELECTOR, "--since", "5m", "--windows", "1"]
    assert main([*argv, "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "replicas, worst first" in out and "rr-0" in out
    assert f"HTML fleet report written to {page}" in out.replace("\n", "") and "rr-0" in page.read_text()


def test_watch_prometheus_ends_on_ctrl_c_with_130(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    from diagnose.cli import build_parser
    from diagnose.fleet.run import run_watch

    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    argv = ["watch", "--prometheus", fleet.url, "--selector", SELECTOR, "--since", "5m", "--windows", "3"]
    assert run_watch(build_parser().parse_args(argv), None, sleep=interrupted) == 130
    assert "rr-0" in capsys.readouterr().out  # the refresh before the interrupt stays shown


def _diagnosed(fleet: Fleet, workers: int) -> dict[str, tuple[str, str | None, int]]:
    """Each replica's (label, rule, issues) from diagnose_replicas over `workers` processes."""
    from diagnose.fleet import parallel
    from diagnose.fleet.fetch import fetch

    answers, first_le = fetch(PrometheusClient(fleet.url), fleet.window(), "pod", 'namespace="rerank"')
    pairs = parallel.diagnose_replicas(
        answers, fleet.window(), "pod", require_vllm=False, thresholds=None, source="", workers=workers,
        min_per_worker=1, first_le=first_le, progress=LineProgress(io.StringIO(), "fleet"),
    )  # fmt: skip
    return {d.replica: (r.verdict.label, r.verdict.rule_id, len(d.bundle.issues)) for d, r in pairs}


def test_replicas_diagnosed_on_several_cores_get_the_same_reports_as_in_one_process(fleet: Fleet) -> None:
    serial, forked = _diagnosed(fleet, 1), _diagnosed(fleet, 2)
    assert len(serial) == len(fleet.paths)
    assert forked == serial


def test_a_diagnosis_child_that_fails_has_its_replicas_diagnosed_in_the_parent(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diagnose.fleet import parallel

    serial = _diagnosed(fleet, 1)

    def broken(pairs: object) -> object:  # only a child slims its reports before sending them
        raise RuntimeError("a child that fails before it answers")

    collected: list[object] = []
    collect = parallel._collect

    def seen(pid: int, read_fd: int) -> object:
        collected.append(got := collect(pid, read_fd))
        return got

    monkeypatch.setattr(parallel, "_slim", broken)
    monkeypatch.setattr(parallel, "_collect", seen)
    assert _diagnosed(fleet, 3) == serial
    assert collected == [None, None]  # two children forked, both failed, their groups redone here


def test_a_fork_that_fails_leaves_every_replica_to_this_process(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diagnose.fleet import parallel

    serial = _diagnosed(fleet, 1)
    forks: list[int] = []

    def no_fork() -> int:  # as under a container's pid limit
        forks.append(1)
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(parallel.os, "fork", no_fork)
    assert _diagnosed(fleet, 3) == serial
    assert forks == [1]  # tried once, then the remaining groups stayed here


def test_the_charted_replicas_are_fetched_step_by_step_so_their_charts_have_a_shape(fleet: Fleet) -> None:
    """The diagnosis reads counters at the window's two ends and the latency p95s only, which chart as one
    interval; the HTML page fetches its charted replicas again, every range step a dump. Each replica's
    queue-time line then has as many points as its own recording gives (within a step or two: the
    steps are 5 s, the recordings' scrapes 1-10 s apart)."""
    from diagnose.derive.series import window_series
    from diagnose.fleet.fetch import chart_bundles

    report = diagnose_fleet(PrometheusClient(fleet.url), fleet.window(), selector=SELECTOR)
    names = [r.replica for r in report.replicas]
    charts = chart_bundles(PrometheusClient(fleet.url), fleet.window(), "pod", 'namespace="rerank"', names)
    assert set(charts) == set(names)
    shaped = 0
    for name, bundle in charts.items():
        recorded = window_series(read_bundle(fleet.paths[int(name.removeprefix("rr-"))])).series("e2e_mean_s")
        got = window_series(bundle).series("e2e_mean_s")
        if recorded.points >= 3:
            shaped += 1
            assert got.points >= 3, (name, got.absent)
    assert shaped >= 5


def test_the_charts_fetch_reads_only_the_charted_replicas_gpu_and_container_series_too(fleet: Fleet) -> None:
    """The node-level exporters' series are not narrowed by --selector (they live in other namespaces);
    the charts' fetch narrows them to its replicas, or a 1,000-replica fleet's GPU series would all come
    again for 20 charts."""
    from diagnose.fleet.assemble import DCGM_KEYS, owner
    from diagnose.fleet.fetch import fetch

    charted = ["rr-0", "rr-3"]
    answers, _ = fetch(PrometheusClient(fleet.url), fleet.window(), "pod", SELECTOR[1:-1], charted=charted)
    seen = {owner(key, s.labels, "pod") for key, series in answers.items() for s in series}
    assert seen == set(charted)
    assert any(answers[key] for key in DCGM_KEYS)  # the H200 recordings have GPU series to narrow


def test_check_html_writes_every_replica_worst_first_and_no_header_value(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    secret = "fleet-html-bearer-0451"
    page = tmp_path / "fleet.html"
    argv = fleet.args("--json", "--header", f"Authorization: Bearer {secret}")
    status, doc = _json(capsys, [*argv, "--html", str(page)])
    assert status == 1 and doc["verdict"]["severity"] == "critical"  # the page does not change the verdict
    html = page.read_text()
    assert secret not in html and "Bearer" not in html
    # The page's replica sections are the JSON's replicas, in its worst-first order.
    sections = re.findall(r'data-replica="([^"]+)"', html)
    assert sections == [r["replica"] for r in doc["replicas"]][: len(sections)] and len(sections) >= 13
    assert "Fleet: " in html and html.index("Fleet: ") < html.index('id="replica-0"')


def test_check_says_where_it_is_on_stderr_only_when_the_work_is_slow(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import diagnose.fleet.run as fleet_run

    # Done inside PROGRESS_AFTER_S (a minute here, so a busy machine cannot cross it): no line at all.
    monkeypatch.setattr(fleet_run, "PROGRESS_AFTER_S", 60.0)
    assert main(fleet.args()) == 1  # a critical replica: findings
    assert "[fleet" not in capsys.readouterr().err
    # Past it (here: at once), the answers as they come in, then the diagnosis; stdout stays the report.
    monkeypatch.setattr(fleet_run, "PROGRESS_AFTER_S", 0.0)
    assert main(fleet.args()) == 1
    captured = capsys.readouterr()
    assert "[fleet" in captured.err and "diagnosing each replica" in captured.err
    assert "[fleet" not in captured.out and "replicas, worst first" in captured.out
    # --json (and --quiet): a program reads stdout and wants no stderr chatter either.
    assert main(fleet.args("--json")) == 1
    captured = capsys.readouterr()
    assert "[fleet" not in captured.err and json.loads(captured.out)["replicas"]
