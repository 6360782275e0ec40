"""`rerank-doctor stress` through the real CLI entry point: exit statuses, one-line errors, JSON, --save."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import diagnose.cli
from diagnose.stress.local_server import Behaviour, LocalServer


@pytest.fixture(autouse=True)
def _stress_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    # The lead registers the subcommand in diagnose/commands/__init__.py; until then, add it here.
    subcommands = list(diagnose.cli.SUBCOMMANDS)
    if ("stress", "stress") not in subcommands:
        subcommands.append(("stress", "stress"))
    monkeypatch.setattr(diagnose.cli, "SUBCOMMANDS", subcommands)


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = diagnose.cli.main(["stress", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--duration", "ten"], "--duration"),
        (["--duration", "0s"], "--duration"),
        (["--rate", "0"], "--rate"),
        (["--rate", "-5"], "--rate"),
        (["--docs", "50-5"], "--docs"),
        (["--url", "http://10.0.0.7:8000"], "--yes-really"),
        (["--url", "ftp://127.0.0.1"], "--url"),
    ],
)
def test_bad_input_is_one_line_with_usage_status(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    rc, out, err = _main(capsys, *argv)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("rerank-doctor: ") and needle in err


def test_unreachable_server_exits_3_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, _, err = _main(capsys, "--url", f"http://127.0.0.1:{port}", "--rate", "5", "--duration", "1s")
    assert rc == 3 and err.count("\n") == 1 and "cannot reach" in err


def test_json_and_save_carry_the_report_but_never_the_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    secret = "sk-cli-secret-99"
    with LocalServer(Behaviour(api_key=secret)) as srv:
        rc, out, err = _main(
            capsys,
            *("--url", srv.url, "--rate", "20", "--max-requests", "6", "--docs", "4", "--words", "10"),
            *("--api-key", secret, "--json", "--save", str(tmp_path / "bundle")),
        )
    assert rc == 0
    doc = json.loads(out)
    assert doc["schema_version"] == 1 and doc["calls"] == {"sent": 6, "ok": 6, "failed": 0, "unfinished": 0}
    assert doc["bodies"]["docs_per_call_mean"] == 4
    saved = (tmp_path / "bundle" / "stress.json").read_text()
    assert json.loads(saved)["calls"]["ok"] == 6
    for text in (out, err, saved):
        assert secret not in text


def test_text_report_shows_rates_latency_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    body = b'{"error": {"message": "boom from the engine", "code": 500}}'
    with LocalServer(Behaviour(status=500, error_body=body)) as srv:
        rc, out, _ = _main(capsys, "--url", srv.url, "--concurrency", "2", "--max-requests", "5", "--quiet")
    assert rc == 0
    assert "closed loop" in out and "5 failed" in out and "boom from the engine" in out
    assert "coordinated omission" in out


def test_importing_the_command_does_not_import_aiohttp_or_rich() -> None:
    code = (
        "import sys, diagnose.commands.stress; "
        "print(sorted(m for m in ('aiohttp', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
