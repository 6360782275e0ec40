"""check --stress and watch against a local server that replays a real vLLM capture's /metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diagnose.cli import main
from diagnose.defaults import DEFAULT_DRAIN_S
from diagnose.stress.local_server import Behaviour, LocalServer


def capture_dumps(captures_dir: Path, scenario: str) -> list[str]:
    folder = captures_dir / scenario
    return [(folder / "metrics_start.txt").read_text(), (folder / "metrics_end.txt").read_text()]


def test_check_with_stress_adds_the_clients_view_to_the_evidence(captures_dir: Path, capsys) -> None:
    # The server replays s2's start then end dumps (a real window of real traffic); our load is real
    # HTTP to it, so the client's latency is measured, not recorded. The load's own opening scrape
    # takes the first answer, so "start" is served twice: once to it, once to the collection.
    start, end = capture_dumps(captures_dir, "s2_healthy_c8_d10_w100")
    behaviour = Behaviour(metrics=[start, start, end], delay_s=0.01)
    with LocalServer(behaviour) as server:
        args = ["check", "--url", server.url, "--duration", "2s", "--stress", "20", "--docs", "3"]
        status = main([*args, "--words", "5", "--json", "--no-gpu", "--quiet", "--fail-on", "critical"])
        calls = server.seen.calls
    data = json.loads(capsys.readouterr().out)
    assert calls >= 40  # 20 calls/s over the 2 s window plus lead-in and lead-out
    assert data["evidence"]["client_mean_s"] is not None and data["evidence"]["client_mean_s"] >= 0.01
    assert status in (0, 1)
    skipped = {s["rule_id"] for s in data["skipped"]}
    assert "network-latency" not in skipped  # it had the client's view to judge


def test_check_refuses_stress_with_a_bundle(captures_dir: Path, capsys) -> None:
    status = main(["check", "--from", str(captures_dir / "s1_idle"), "--stress", "10"])
    assert status == 2
    assert "--stress drives a live server" in capsys.readouterr().err


@pytest.mark.parametrize("rate", ["0", "-5"])
def test_check_refuses_a_rate_that_is_not_positive(rate: str, capsys) -> None:
    status = main(["check", "--url", "http://127.0.0.1:9", "--stress", rate, "--quiet"])
    assert status == 2 and "above zero" in capsys.readouterr().err


def test_watch_shows_one_verdict_per_window_and_stops(captures_dir: Path, capsys) -> None:
    behaviour = Behaviour(metrics=capture_dumps(captures_dir, "s3_gpu_saturated_c64_d80_w300"))
    with LocalServer(behaviour) as server:
        status = main(["watch", "--url", server.url, "--every", "1s", "--windows", "2", "--no-gpu"])
    out = capsys.readouterr().out
    assert status == 0
    assert "window 2" in out and "rerank-doctor verdict" in out


def test_watch_html_rewrites_the_page_with_each_window(captures_dir: Path, capsys, tmp_path: Path) -> None:
    behaviour = Behaviour(metrics=capture_dumps(captures_dir, "s3_gpu_saturated_c64_d80_w300"))
    page = tmp_path / "watch.html"
    with LocalServer(behaviour) as server:
        argv = [
            "watch",
            "--url",
            server.url,
            "--every",
            "1s",
            "--windows",
            "2",
            "--no-gpu",
            "--html",
            str(page),
        ]
        status = main(argv)
    out = capsys.readouterr().out
    assert status == 0
    # In the live header (wrapped at 80 columns), not on stderr under the display.
    assert f"HTML report written to {page}" in out.replace("\n", "")
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and 'class="verdict"' in text


def test_check_with_stress_shows_its_extra_time_and_states_the_cache(captures_dir: Path, capsys) -> None:
    # The seconds before and after the window (lead-in, lead-out, drain) were silent; and a diagnosis made
    # under our own load now says which bodies went out and what the prefix cache answered of them.
    start, end = capture_dumps(captures_dir, "s2_healthy_c8_d10_w100")
    with LocalServer(Behaviour(metrics=[start, start, end], delay_s=0.005)) as server:
        args = ["check", "--url", server.url, "--duration", "1s", "--stress", "10", "--docs", "2"]
        main([*args, "--words", "5", "--no-gpu", "--fail-on", "critical", "--seed", "42"])
    captured = capsys.readouterr()
    assert "(seed 42) for 3 s before the 1 s window opens" in captured.err
    assert f"window closed; load runs 3 s more, then waits at most {DEFAULT_DRAIN_S:g} s" in captured.err
    assert "Generated load: bodies from seed 42" in captured.out
    assert "prefix cache answered" in captured.out  # the replayed window's hits/queries, as a percentage
