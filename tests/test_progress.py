"""Progress for slow steps (diagnose/progress.py): plain lines in logs are few, and the last word is kept."""

from __future__ import annotations

import io
import subprocess
import time
from pathlib import Path

from diagnose.progress import LineProgress, terminal_progress

REPO = Path(__file__).resolve().parent.parent


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_start_up_that_changes_its_step_every_second_prints_about_one_line_in_ten() -> None:
    # vLLM's start-up: the step text is its last log line, new every second, ~90 s long. One line each
    # was ~90 lines per start in pytest and CI logs.
    out, clock = io.StringIO(), FakeClock()
    progress = LineProgress(out, "vLLM lab", every_s=10.0, clock=clock)
    for second in range(90):
        clock.now = float(second)
        progress.step(f"starting vLLM (log line {second})")
    clock.now = 90.5
    progress.step("vLLM healthy at http://127.0.0.1:1 after 90 s")
    progress.flush()
    lines = out.getvalue().splitlines()
    assert 5 <= len(lines) <= 11
    assert lines[0].endswith("(log line 0)")
    assert lines[-1].endswith("after 90 s")  # held back by the throttle, printed by flush()


def test_terminal_progress_off_a_terminal_flushes_the_last_step() -> None:
    out = io.StringIO()  # not a tty: plain lines
    with terminal_progress(out, "lab") as progress:
        progress.step("starting")
        progress.step("healthy")  # within the throttle's interval: held, then flushed on exit
    assert out.getvalue().splitlines()[-1].endswith("healthy")


def test_the_demo_folder_is_ignored_by_git() -> None:
    check = subprocess.run(
        ["git", "check-ignore", "-q", "rerank-doctor-demo/metrics.prom"], cwd=REPO, check=False
    )
    assert check.returncode == 0


def test_one_long_step_after_a_short_one_still_shows_while_it_lasts() -> None:
    # "installing torch" 1 s after the first line is held by the throttle; a timer prints it when its
    # interval is over, without waiting for the next step or the end.
    out = io.StringIO()
    progress = LineProgress(out, "lab setup", every_s=0.2)
    progress.step("checking the venv")
    progress.step("installing torch")
    deadline = time.monotonic() + 30
    while "installing torch" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.getvalue().splitlines()[-1].endswith("installing torch")
    progress.flush()
    assert len(out.getvalue().splitlines()) == 2  # printed once, not again by flush
