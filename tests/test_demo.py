"""`demo` end to end on a stand-in lab (tests/fake_lab.py, NOT vLLM): every wait shows, the hint fits."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fake_lab import fake_lab
from rich.console import Console

from diagnose.cli import main
from diagnose.defaults import DEFAULT_DRAIN_S
from diagnose.exit_status import ExitStatus


def test_demo_shows_the_lab_start_and_the_load_around_the_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The stand-in answers /health only after 3 s, logging a line a second meanwhile, as vLLM does.
    lab = fake_lab(tmp_path / "lab", healthy_after_s=3.0)
    out = tmp_path / "bundle"
    args = ["demo", "--lab-dir", str(lab), "--out", str(out), "--duration", "1s", "--rate", "5"]
    status = main([*args, "--docs", "2", "--words", "5"])
    captured = capsys.readouterr()
    assert status == ExitStatus.OK, captured.err
    err = captured.err
    # The start-up wait is shown while it lasts (before: `with server:` waited in silence) ...
    starting = err.index("starting vLLM on http://127.0.0.1:")
    assert starting < err.index("vLLM healthy at")
    # ... and so are the load's lead-in before the window and its lead-out and drain after it.
    assert (
        "before the 1 s window opens" in err
        and f"waits at most {DEFAULT_DRAIN_S:g} s for calls in flight" in err
    )
    assert "Generated load: bodies from seed" in captured.out
    assert (out / "stress.json").is_file()


def test_the_closing_hint_keeps_a_long_path_whole_at_80_columns(tmp_path: Path) -> None:
    from diagnose.commands.demo import closing_hint

    out = tmp_path / ("a-rather-long-folder-name-for-the-bundle-" * 2) / "rerank-doctor-demo"
    buf = io.StringIO()
    console = Console(file=buf, width=80, color_system=None)
    for line in closing_hint(out):
        console.print(line, soft_wrap=True)
    assert f"rerank-doctor check --from {out}" in buf.getvalue().splitlines()
