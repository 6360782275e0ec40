"""Progress for slow steps (diagnose/progress.py): plain lines in logs are few, and the last word is kept."""

from __future__ import annotations

import io
import subprocess
import time
from pathlib import Path

from diagnose.progress import LineProgress, held_still, terminal_progress

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
    _printed_by_its_timer("installing torch", progress, out)
    assert len(out.getvalue().splitlines()) == 2  # printed once, not again by flush


def _printed_by_its_timer(text: str, progress: LineProgress, out: io.StringIO) -> None:
    """Waits (30 s at most) for the held step's timer to print `text`, then flushes."""
    deadline = time.monotonic() + 30
    while text not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.getvalue().splitlines()[-1].endswith(text)
    progress.flush()


def test_work_done_before_after_s_leaves_no_line_and_longer_work_does() -> None:
    # A fleet diagnosis of a few replicas ends in 0.2 s: a log gets no line for it. One that is still
    # going past after_s says where it is.
    out, clock = io.StringIO(), FakeClock()
    quick = LineProgress(out, "fleet", after_s=2.0, clock=clock)
    quick.step("asking Prometheus")
    clock.now = 0.3
    quick.step("diagnosing each replica")
    quick.flush()
    assert out.getvalue() == ""

    clock.now = 0.0
    slow = LineProgress(out, "fleet", after_s=2.0, clock=clock)
    slow.step("asking Prometheus: 3 of 16 answers in")
    clock.now = 2.5
    slow.step("asking Prometheus: 9 of 16 answers in")
    slow.flush()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("9 of 16 answers in")


def test_a_step_held_by_after_s_shows_when_after_s_is_over() -> None:
    # One long Prometheus query after the first step: the timer prints it without a later step.
    out = io.StringIO()
    progress = LineProgress(out, "fleet", after_s=0.2)
    progress.step("asking Prometheus")
    _printed_by_its_timer("asking Prometheus", progress, out)
    assert len(out.getvalue().splitlines()) == 1


def test_held_still_keeps_the_timer_from_printing_until_released() -> None:
    # Fleet mode forks its workers inside held_still: no reporter thread may write (and hold stderr's
    # lock) at that moment. The held step still comes afterwards, said with the time it is printed.
    out = io.StringIO()
    progress = LineProgress(out, "fleet", after_s=0.1)
    progress.step("diagnosing each replica")
    with held_still(progress):
        time.sleep(0.4)  # the timer fires meanwhile and waits
        assert out.getvalue() == ""
    _printed_by_its_timer("diagnosing each replica", progress, out)
    assert float(out.getvalue().split("]")[0].split()[-1].rstrip("s")) >= 0.1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_held_still_stops_the_live_display_and_starts_it_again() -> None:
    with terminal_progress(_Terminal(), "fleet", after_s=2.0) as progress:
        live = progress._progress.live  # type: ignore[attr-defined]
        assert live.is_started
        with held_still(progress):
            assert not live.is_started  # its refresh thread joined: nothing writes during a fork
        assert live.is_started
        progress.step("diagnosing each replica")
    with held_still(None):  # no reporter (--quiet, --json): nothing to hold
        pass
