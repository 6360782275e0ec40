"""rerank-doctor collect: a live window into a bundle folder, what it prints, and how it fails."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from http_servers import Route, closed_port_url, serve
from rich.console import Console

from diagnose.bundle import read_bundle
from diagnose.cli import main
from diagnose.render.collection import collection_summary

FIXTURES = Path(__file__).parent / "fixtures"


def test_collect_writes_a_bundle_that_check_can_read(captures_dir: Path, tmp_path: Path, capsys) -> None:
    body = (captures_dir / "s2_healthy_c8_d10_w100" / "metrics_end.txt").read_bytes()
    routes = {"/metrics": Route(body=body), "/health": Route(body=b"")}
    with serve(routes) as url:
        status = main(["collect", "--url", url, "--duration", "2s", "--out", str(tmp_path / "b"), "--no-gpu"])
    out = capsys.readouterr().out
    assert status == 0
    bundle = read_bundle(tmp_path / "b")
    assert len(bundle.dumps) >= 2 and bundle.server.healthy is True
    assert (tmp_path / "b" / "bundle.json").is_file()
    assert "bundle written to" in out and "check --from" in out


def test_unreachable_server_exits_3_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    args = ["collect", "--url", closed_port_url(), "--duration", "5s", "--out", str(tmp_path / "b")]
    run = subprocess.run(
        [sys.executable, "-m", "diagnose", *args, "--no-gpu", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 3
    assert "Traceback" not in run.stdout + run.stderr
    assert "connection refused" in run.stdout and "is vLLM running" in run.stdout
    # What was gathered (the reason) is kept on disk too.
    assert "connection refused" in (tmp_path / "b" / "issues.json").read_text()


def test_a_bad_duration_is_a_usage_error(capsys) -> None:
    try:
        main(["collect", "--url", "http://127.0.0.1:1", "--duration", "soon", "--out", "x"])
    except SystemExit as exit_:
        assert exit_.code == 2
    assert "not a duration" in capsys.readouterr().err


def test_summary_counts_api_servers_without_the_launcher() -> None:
    # The H200 run with --api-server-count 8: 8 API servers, plus the `vllm serve` launcher (not one).
    bundle = read_bundle(FIXTURES / "gpu-h200-0.6b-8api-closed" / "bundle")
    console = Console(file=io.StringIO(), width=140, color_system=None)
    console.print(collection_summary(bundle, None, None))
    assert "8 api_server, 1 engine_core" in console.file.getvalue()  # type: ignore[attr-defined]
