"""Ctrl-C and SIGTERM in the long commands, sent to a real `python -m diagnose` process working against a
fake vLLM on 127.0.0.1: it stops cleanly, reports what it collected marked as interrupted, exits 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_cases import REAL_EXPOSITION
from http_servers import Route, serve

REPO = Path(__file__).resolve().parent.parent
ROUTES: dict[str, Route | list[Route]] = {
    "/health": Route(body=b""),
    "/version": Route(body=b'{"version":"0.32.0"}', content_type="application/json"),
    "/v1/models": Route(body=b'{"data":[{"id":"m","max_model_len":2048}]}', content_type="application/json"),
    "/metrics": Route(body=REAL_EXPOSITION),
}


def _start(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "diagnose", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_scrape(seen: list[dict[str, str]], proc: subprocess.Popen[str], limit_s: float = 60.0) -> None:
    """Until the command has asked for /metrics at least once (its window has begun)."""
    deadline = time.monotonic() + limit_s
    while len(seen) < 4:  # /health, /version, /v1/models, then the first /metrics
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the command never scraped"
        time.sleep(0.05)
    time.sleep(0.5)  # inside the window's sleep, not in the middle of the first scrape


def _stop(proc: subprocess.Popen[str], sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"still running 60 s after signal {sig}: {out}")
    return proc.returncode, out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_check_url_interrupted_reports_what_it_collected_and_exits_130(sig: int) -> None:
    seen: list[dict[str, str]] = []
    with serve(ROUTES, seen) as url:
        proc = _start(["check", "--url", url, "--duration", "120", "--no-gpu", "--quiet"])
        _wait_for_scrape(seen, proc)
        status, out = _stop(proc, sig)
    assert status == 130, out
    assert "interrupted after" in out  # the report is marked, and printed
    assert "rerank-doctor verdict" in out
    assert "Traceback" not in out


def test_check_url_json_interrupted_carries_the_note() -> None:
    seen: list[dict[str, str]] = []
    with serve(ROUTES, seen) as url:
        proc = _start(["check", "--url", url, "--duration", "120", "--no-gpu", "--json"])
        _wait_for_scrape(seen, proc)
        status, out = _stop(proc, signal.SIGINT)
    assert status == 130, out
    report = json.loads(out)
    assert any("interrupted after" in note for note in report["notes"])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_watch_stops_on_interrupt_with_130(sig: int) -> None:
    seen: list[dict[str, str]] = []
    with serve(ROUTES, seen) as url:
        proc = _start(["watch", "--url", url, "--every", "120", "--no-gpu"])
        _wait_for_scrape(seen, proc)
        status, out = _stop(proc, sig)
    assert status == 130, out
    assert "Traceback" not in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_collect_interrupted_leaves_server_and_issues_json(sig: int, tmp_path: Path) -> None:
    seen: list[dict[str, str]] = []
    out_dir = tmp_path / "bundle"
    with serve(ROUTES, seen) as url:
        proc = _start(
            ["collect", "--url", url, "--duration", "120", "--no-gpu", "--quiet", "--out", str(out_dir)]
        )
        _wait_for_scrape(seen, proc)
        status, out = _stop(proc, sig)
    assert status == 130, out
    issues = json.loads((out_dir / "issues.json").read_text())
    assert any("interrupted after" in i["reason"] for i in issues)
    server = json.loads((out_dir / "server.json").read_text())
    assert server["version"] == "0.32.0"
    assert (out_dir / "metrics.prom").read_text().count("### capture") >= 1
