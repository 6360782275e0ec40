"""Reports on an 80-column terminal: nothing cut (no "…" in a number or a flag), first-bucket p95s as bounds.

Rendered as a person's terminal would: rich Console(width=80) without colour, into a string.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from diagnose.bundle import read_bundle
from diagnose.pipeline import diagnose
from diagnose.render.text import report_renderable
from diagnose.stress.recorder import Recorder
from diagnose.stress.render import render
from diagnose.stress.report import build_report
from diagnose.stress.server_view import ServerView

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def at_80(*renderables: object) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=80, color_system=None)
    for r in renderables:
        console.print(r)
    return buf.getvalue()


def slow_open_loop_report(server: ServerView | None = None):  # type: ignore[no-untyped-def]
    """An open-loop run whose calls took 0.9 to 12.3 s (a server far past its capacity)."""
    recorder = Recorder()
    for i in range(200):
        intended = i * 0.05
        call = recorder.start(intended, intended + 0.001, 20)
        recorder.finish(call, intended + 0.9 + (i % 50) * 0.233, "ok", 200)
    return build_report(
        recorder=recorder,
        mode="open",
        target={"base_url": "http://127.0.0.1:8000", "endpoint": "/v1/rerank", "model": "m", "auth": None},
        settings={"arrival": "poisson", "ramp_s": None, "seed": 1234567},
        started_unix=0.0,
        t0=0.0,
        send_end=10.0,
        end=22.0,
        stopped_by="duration",
        scheduled=200,
        target_rate_per_s=20.0,
        bodies={"distinct": 1024, "docs_per_call_mean": 20.0, "words_per_doc_mean": 100.0},
        server=server,
        server_problem=None if server else "not asked for",
    )


def test_stress_latency_table_keeps_every_number_whole_at_80_columns() -> None:
    report = slow_open_loop_report()
    text = at_80(*render(report))
    assert "…" not in text
    rows = [line for line in text.splitlines() if line.strip().startswith(("from", "service"))]
    assert rows, text
    p99_ms = f"{report.latency.p99_s * 1000:.0f}"  # e.g. 12306: five digits, in full
    assert len(p99_ms) == 5 and p99_ms in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_first_bucket_p95_reads_as_the_bucket_bound_not_an_invented_number() -> None:
    # Queue, e2e and inference p95 all in vLLM's first bucket read "285.0 ms" by interpolation, next to a
    # 2.2 ms mean; what the histogram knows is "at most 0.3 s".
    view = ServerView(
        window_s=10.0,
        engine_requests=4000.0,
        http_requests=200.0,
        queue_p95_s=None,
        queue_mean_s=0.0001,
        e2e_p95_s=None,
        e2e_mean_s=0.0022,
        inference_p95_s=None,
        inference_mean_s=0.002,
        prompt_tokens_per_request=140.0,
        queue_p95_at_most_s=0.3,
        e2e_p95_at_most_s=0.3,
        inference_p95_at_most_s=0.3,
        prefix_cache_hit_ratio=0.0,
        prefix_cache_queries=560000.0,
    )
    text = at_80(*render(slow_open_loop_report(view)))
    assert "285.0" not in text
    assert text.count("≤ 0.3 s") == 3
    assert "e2e ≤ 0.3 s / 2.2 ms" in text  # the bound beside the exact mean, on one line
    assert "prefix-cache hit ratio" in text and "0.0 %" in text


def test_a_gpu_report_keeps_its_flags_and_numbers_whole_at_80_columns() -> None:
    # The recorded H200 4B run: the GPU and queueing rules suggest --data-parallel-size, cut before.
    report = diagnose(read_bundle(FIXTURES / "gpu-h200-4b-1api-closed" / "bundle"))
    text = at_80(report_renderable(report))
    assert "…" not in text
    assert "--data-parallel-size" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_every_recorded_bundle_renders_at_80_columns_without_cutting() -> None:
    bundles = sorted(p.parent for p in FIXTURES.glob("**/bundle/metrics.prom"))
    assert bundles
    for folder in bundles:
        text = at_80(report_renderable(diagnose(read_bundle(folder))))
        assert "…" not in text, folder


def test_every_commands_help_fits_80_columns_without_breaking_a_flag_or_path(monkeypatch) -> None:
    import argparse

    from diagnose.cli import build_parser

    monkeypatch.setenv("COLUMNS", "80")
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in {"rerank-doctor": parser, **sub.choices}.items():
        text = command.format_help()
        lines = text.splitlines()
        assert max(len(line) for line in lines) <= 80, name
        # textwrap's default broke `~/.cache/rerank-doctor/lab` into "rerank-" / "doctor/lab".
        broken = [line for line in lines if re.search(r"[A-Za-z]-$", line)]
        assert not broken, (name, broken)
