"""Headless Debian Chromium for the HTML report's tests and its screenshots (docs/screenshots/make.py).

Chromium runs with --dump-dom: it loads the file, runs its scripts, and prints the DOM as it stands
then, which is where the report records what it drew (data-points, data-painted, data-charts-drawn;
see diagnose/render/html.py). With --enable-logging=stderr every console message is a `CONSOLE` line
on stderr: the report logs nothing, so any such line is an error (a thrown exception, a blocked fetch).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from diagnose.readings import Bundle, MetricsDump

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
TIMEOUT_S = 120  # a cold start on a busy 2-core machine takes a few seconds; this is only a hang guard


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class ChartDom:
    key: str
    points: int | None  # data-points: known values the page was given
    painted: list[int] | None  # data-painted: pixels of each series' colour after drawing


@dataclass
class PageDom:
    charts_drawn: int | None
    charts_ms: float | None
    errors: list[str]
    charts: list[ChartDom] = field(default_factory=list)
    console: list[str] = field(default_factory=list)  # CONSOLE lines from Chromium's log


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str | None] = {}
        self.charts: list[ChartDom] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if tag == "div" and a.get("class") == "chart":
            self.charts.append(
                ChartDom(
                    key=(a.get("id") or "").removeprefix("chart-"),
                    points=int(a["data-points"]) if a.get("data-points") else None,
                    painted=json.loads(a["data-painted"]) if a.get("data-painted") else None,
                )
            )


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium is not installed (apt-get install -y --no-install-recommends chromium)")
    with tempfile.TemporaryDirectory(prefix="rd-chromium-") as profile:
        return subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )


def load(page: Path) -> PageDom:
    """Opens `page`, lets its scripts run, and reads back what the report recorded in the DOM."""
    done = _run(["--enable-logging=stderr", "--v=0", "--dump-dom", page.resolve().as_uri()])
    reader = _Reader()
    reader.feed(done.stdout)
    body = reader.body
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return PageDom(
        charts_drawn=int(body["data-charts-drawn"]) if body.get("data-charts-drawn") else None,
        charts_ms=float(body["data-charts-ms"]) if body.get("data-charts-ms") else None,
        errors=json.loads(body["data-errors"]) if body.get("data-errors") else [],
        charts=reader.charts,
        console=console,
    )


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 2400) -> Path:
    """A PNG of the page's first `height` pixels at `width`."""
    done = _run([f"--window-size={width},{height}", f"--screenshot={out.resolve()}", page.resolve().as_uri()])
    if not out.is_file():
        raise RuntimeError(f"chromium wrote no screenshot: {done.stderr[-500:]}")
    return out


def stretched(bundle: Bundle, copies: int, period_s: float) -> Bundle:
    """A real recording repeated back to back in time: the sample counts of a longer window.

    For size and speed only (counters restart at each copy, read as a vLLM restart): a 40 s recording
    repeated 15 times has the dumps, GPU, process and socket samples of a 10-minute window.
    """
    out = Bundle(server=bundle.server, stress=bundle.stress)
    for i in range(copies):
        dt = i * period_s
        out.dumps += [MetricsDump(d.t_unix + dt, d.text) for d in bundle.dumps]
        out.gpu += [dataclasses.replace(s, t_unix=s.t_unix + dt) for s in bundle.gpu]
        out.processes += [dataclasses.replace(s, t_unix=s.t_unix + dt) for s in bundle.processes]
        out.sockets += [dataclasses.replace(s, t_unix=s.t_unix + dt) for s in bundle.sockets]
    return out
