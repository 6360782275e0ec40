"""The HTML report (`report BUNDLE --html`, `check --html`): opened in headless Debian Chromium on real
recordings, every chart drew with data points and nothing went to the console; absent charts say why;
secrets never reach the file; a 10-minute window stays under 2 MB."""

from __future__ import annotations

import html
import json
import os
import shutil
from pathlib import Path

import pytest
from browser_support import chromium, load, screenshot, stretched

from diagnose.bundle import read_bundle
from diagnose.cli import main
from diagnose.derive.series import window_series
from diagnose.pipeline import diagnose
from diagnose.render.html import chart_keys, render_html
from diagnose.stress.local_server import Behaviour, LocalServer

FIXTURES = Path(__file__).parent / "fixtures"
GPU_BOUND = FIXTURES / "gpu-h200-4b-8api-open"
CPU_LAB = FIXTURES / "vllm-0.32-cpu-lab"


def gpu_bound_bundle(tmp: Path) -> Path:
    """The H200 GPU-bound recording with client 0's stress report inside, as `stress --save` puts it."""
    folder = tmp / "gpu-bound"
    shutil.copytree(GPU_BOUND / "bundle", folder)
    shutil.copy(GPU_BOUND / "stress-0.json", folder / "stress.json")
    return folder


@pytest.fixture(scope="module")
def browser() -> str:
    found = chromium()
    if found is None:
        message = "headless Chromium is not installed: apt-get install -y --no-install-recommends chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # .ci/run installs it: a missing browser on CI is a failure
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory, captures_dir: Path) -> dict[str, tuple[Path, Path]]:
    """name -> (bundle, page), each page written by the CLI as a user would."""
    tmp = tmp_path_factory.mktemp("html")
    bundles = {
        "gpu-bound": gpu_bound_bundle(tmp),
        "cpu-lab": CPU_LAB,
        "h200-s2": captures_dir / "s2_healthy_c8_d10_w100",
        "disable-log-stats": FIXTURES / "vllm-0.32-cpu-lab-disable-log-stats",
    }
    out = {}
    for name, bundle in bundles.items():
        page = tmp / f"{name}.html"
        assert main(["report", str(bundle), "--html", str(page)]) == 0
        out[name] = (bundle, page)
    return out


@pytest.mark.parametrize("name", ["gpu-bound", "cpu-lab", "h200-s2", "disable-log-stats"])
def test_every_chart_draws_its_points_in_chromium_without_a_console_message(
    browser: str, pages: dict[str, tuple[Path, Path]], name: str, tmp_path: Path
) -> None:
    bundle, page = pages[name]
    series = window_series(read_bundle(bundle))
    expected = {c.key: sum(s.points for s in c.series) for c in series.charts if c.absent is None}
    dom = load(page)
    assert dom.console == [] and dom.errors == []
    assert dom.charts_drawn == len(expected)
    assert {c.key: c.points for c in dom.charts} == expected
    for chart in dom.charts:
        # Every series left pixels of its own colour in the plot area: it drew, not just its axes.
        assert chart.painted and all(n > 0 for n in chart.painted), (chart.key, chart.painted)
    shot = screenshot(page, tmp_path / f"{name}.png", height=1600)
    assert shot.stat().st_size > 10_000  # a blank page compresses to a few hundred bytes


def test_the_gpu_bound_report_draws_the_gpu_and_the_clients_view(pages) -> None:
    _, page = pages["gpu-bound"]
    html = page.read_text()
    for key in ("latency", "http", "gpu_busy", "gpu_power", "cpu", "time_wait", "schedule_lag"):
        assert f'id="chart-{key}"' in html
    assert "client, p95 (run)" in html
    assert "gpu.busy_warning_pct" in html  # the threshold line the gpu rule judges by
    assert html.index("Past capacity") < html.index("Suggested flags") < html.index("The window")


def test_a_bundle_without_gpu_or_sockets_lists_the_absent_charts_and_why(pages) -> None:
    _, page = pages["cpu-lab"]
    html = page.read_text()
    absent = html[html.index("Not drawn, and why") :]
    assert "GPU busy</b>: no GPU samples: NVML unavailable" in absent
    assert "TIME_WAIT sockets on the serving port</b>: no socket census" in absent
    assert 'id="chart-gpu_busy"' not in html and 'id="chart-time_wait"' not in html


def test_the_page_loads_nothing_from_the_network(pages) -> None:
    for _, page in pages.values():
        html = page.read_text()
        assert "default-src 'none'" in html  # the browser itself refuses any fetch
        assert "http://" not in html.replace("http://127.0.0.1", "").replace("http://localhost", "")
        assert "https://" not in html.replace("https://github.com/leeoniya/uPlot", "")


KEY = "rd-secret-key-7f3a91"  # put back where the api-key recording's flags.txt says ***
PASSWORD = "hunter2-userinfo"
HF_TOKEN = "hf_rdTestToken0451"


def test_a_secret_in_the_bundle_never_reaches_the_file(tmp_path: Path) -> None:
    # The recording ran vLLM with --api-key; its flags.txt keeps `***`. Put a key back, and a URL with a
    # password, so the report has real secrets to leak.
    folder = tmp_path / "with-key"
    folder.mkdir()
    shutil.copy(CPU_LAB / "metrics.prom", folder / "metrics.prom")
    flags = (FIXTURES / "vllm-0.32-cpu-lab-api-key" / "flags.txt").read_text()
    assert "--api-key ***" in flags
    (folder / "flags.txt").write_text(f"HF_TOKEN={HF_TOKEN} " + flags.replace("***", KEY))
    url = f"http://admin:{PASSWORD}@127.0.0.1:43137"
    (folder / "server.json").write_text(json.dumps({"url": url, "flags": flags.replace("***", KEY)}))
    page = tmp_path / "r.html"
    assert main(["check", "--from", str(folder), "--html", str(page), "--fail-on", "critical"]) == 0
    html = page.read_text()
    assert KEY not in html and PASSWORD not in html and HF_TOKEN not in html
    assert "--api-key ***" in html  # the flag is shown, its value is not
    assert "VLLM_CPU_KVCACHE_SPACE=1" in html  # and the environment it ran with


def test_a_secret_in_the_live_url_or_api_key_never_reaches_the_file(tmp_path: Path, capsys) -> None:
    dumps = [d for d in (CPU_LAB / "metrics.prom").read_text().split("### capture") if d.strip()]
    texts = [d.split("\n", 1)[1] for d in dumps]
    with LocalServer(Behaviour(metrics=texts, api_key=KEY)) as server:
        url = server.url.replace("http://", f"http://admin:{PASSWORD}@")
        page = tmp_path / "live.html"
        args = ["check", "--url", url, "--api-key", KEY, "--duration", "1s", "--no-gpu", "--quiet"]
        status = main([*args, "--html", str(page), "--fail-on", "critical"])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    html = page.read_text()
    assert KEY not in html and PASSWORD not in html
    # check normalises --url once and drops the userinfo (diagnose/urls.py): the source names the host.
    assert "127.0.0.1" in html
    assert PASSWORD not in printed.out + printed.err  # nor in the terminal report beside it


def test_a_ten_minute_window_stays_under_two_megabytes(tmp_path: Path) -> None:
    bundle = read_bundle(GPU_BOUND / "bundle")
    long = stretched(bundle, copies=15, period_s=41.0)  # 15 x 41 s = 10.25 min of 1 s samples
    series = window_series(long)
    assert series.window_s is not None and series.window_s >= 600
    page = render_html(diagnose(long), series, long)
    assert len(page.encode()) < 2_000_000
    assert len(chart_keys(series)) >= 10


def test_report_cli_errors_are_one_line_with_their_status(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path / "nothing"), "--html", str(tmp_path / "r.html")]) == 4
    assert main(["report", str(CPU_LAB), "--html", str(tmp_path / "no" / "such" / "r.html")]) == 2
    assert main(["report", str(CPU_LAB), "--html", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("rerank-doctor: ") for line in err)
    assert "Traceback" not in "".join(err)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_the_text_and_json_reports_beside_it_redact_a_url_password_too() -> None:
    import io

    from rich.console import Console
    from rules_support import HEALTHY

    from diagnose.render.json import render_json
    from diagnose.render.text import report_renderable
    from diagnose.rules.engine import run_rules

    report = run_rules(HEALTHY, source=f"http://admin:{PASSWORD}@127.0.0.1:8000")
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(report_renderable(report))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert PASSWORD not in text and "admin:***@127.0.0.1:8000" in text
    assert PASSWORD not in render_json(report)


def test_what_is_wrong_with_the_input_is_said_beside_the_verdict(tmp_path: Path) -> None:
    # A recorded lab bundle with one line of its second dump damaged, as a truncated copy leaves it.
    folder = tmp_path / "damaged"
    shutil.copytree(CPU_LAB, folder)
    metrics = folder / "metrics.prom"
    head, marker, rest = metrics.read_text().rpartition("### capture")
    metrics.write_text(head + marker + rest.replace("\n# HELP", "\nvllm:broken{ 1\n# HELP", 1))
    bundle = read_bundle(folder)
    report = diagnose(bundle)
    (note,) = [n for n in report.notes if "unreadable line" in n]
    page = render_html(report, window_series(bundle), bundle)
    verdict = page[page.index('<section class="verdict"') : page.index("</section>")]
    assert '<ul class="input-notes"' in verdict and html.escape(note) in verdict
