"""The fleet HTML report (`check --prometheus URL --html FILE`), built without Prometheus from the repo's
real recordings: each recording is one replica's rebuilt Bundle, summarized as fleet mode does, rendered
and opened in headless Chromium. The CLI path with a real Prometheus is in tests/test_fleet_backfill.py."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from browser_support import load
from test_html_report import browser  # noqa: F401  (the fixture: skips without Chromium, fails on CI)

from diagnose.bundle import read_bundle
from diagnose.fleet.assemble import ReplicaData
from diagnose.fleet.summary import FleetReport, summarize
from diagnose.fleet.window import Window
from diagnose.pipeline import diagnose
from diagnose.render.fleet_html import MAX_CHARTED, fleet_series, render_fleet_html

FIXTURES = Path(__file__).parent / "fixtures"
KEY = "sk-fleet-html-test-key"
PASSWORD = "hunter2-fleet-userinfo"
REPLICAS = MAX_CHARTED + 4  # more than the page charts, so the cap shows


def _recordings(tmp: Path) -> list[Path]:
    paths = sorted(FIXTURES.glob("*/bundle")) + sorted((FIXTURES / "corpus").glob("*/bundle"))
    # The CPU-lab run with --api-key, its key put back, so the page has a real secret to leak.
    keyed = tmp / "with-key"
    keyed.mkdir()
    shutil.copy(FIXTURES / "vllm-0.32-cpu-lab" / "metrics.prom", keyed / "metrics.prom")
    flags = (FIXTURES / "vllm-0.32-cpu-lab-api-key" / "flags.txt").read_text()
    assert "--api-key ***" in flags
    (keyed / "flags.txt").write_text(flags.replace("***", KEY))
    return [keyed, *paths]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[FleetReport, Path]:
    tmp = tmp_path_factory.mktemp("fleet-html")
    paths = _recordings(tmp)
    pairs = []
    for i in range(REPLICAS):
        path = paths[i % len(paths)]
        bundle = read_bundle(path)
        data = ReplicaData(replica=f"rr-{i:02d}", bundle=bundle, seen_at_start=True, seen_at_end=True)
        pairs.append((data, diagnose(bundle, source=str(path))))
    report = summarize(
        pairs,
        Window(1_700_000_000.0, 1_700_000_600.0),
        source=f"http://admin:{PASSWORD}@prometheus.example:9090",
        replica_label="pod",
        selector='{namespace="rerank"}',
        warnings=[],
        queries=20,
        bytes_read=100_000,
    )
    page = tmp / "fleet.html"
    page.write_text(render_fleet_html(report, fleet_series(report, None)))
    return report, page


def test_the_recordings_give_replicas_of_more_than_one_severity(fleet) -> None:
    report, _ = fleet
    assert len({r.report.worst() for r in report.replicas}) >= 2  # else "worst first" proves nothing


def test_replicas_appear_worst_first_and_the_cap_is_stated(fleet) -> None:
    report, page = fleet
    html = page.read_text()
    sections = re.findall(r'data-replica="([^"]+)"', html)
    assert sections == [r.replica for r in report.replicas[:MAX_CHARTED]]
    severities = [r.report.worst() for r in report.replicas]
    assert severities == sorted(severities, reverse=True)
    table = html[html.index("id=replicas") : html.index("</table>", html.index("id=replicas"))]
    assert [table.index(f">{r.replica}<") for r in report.replicas] == sorted(
        table.index(f">{r.replica}<") for r in report.replicas
    )
    assert f"worst {MAX_CHARTED} replicas only" in html and f"{REPLICAS - MAX_CHARTED} more" in html


def test_the_fleet_summary_comes_before_the_replicas(fleet) -> None:
    report, page = fleet
    html = page.read_text()
    assert html.index("Fleet: ") < html.index("Replicas, worst first") < html.index('id="replica-0"')
    for label, count in report.by_label.items():
        assert f"<td>{label}</td><td class=num>{count}</td>" in html


def test_no_secret_reaches_the_file(fleet) -> None:
    _, page = fleet
    html = page.read_text()
    assert KEY not in html and PASSWORD not in html
    assert "prometheus.example:9090" in html  # the source is shown, its password is not


def test_the_file_stays_small(fleet) -> None:
    _, page = fleet
    assert page.stat().st_size < 2_000_000


def test_every_replicas_charts_draw_with_points_in_chromium(fleet, browser) -> None:  # noqa: F811
    _, page = fleet
    dom = load(page)
    assert dom.errors == [] and dom.console == []
    keys = [c.key for c in dom.charts]
    assert dom.charts_drawn == len(keys) > 0
    # Every charted replica has its charts, each with data points and its series' pixels on the canvas.
    for i in range(MAX_CHARTED):
        assert any(k.startswith(f"r{i}-") for k in keys), f"replica {i} drew no chart"
    for c in dom.charts:
        assert c.points and c.points > 0, c.key
        assert c.painted and min(c.painted) > 0, c.key
