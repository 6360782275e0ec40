"""README statements about the lab are true as written: each is checked here, or printed by a benchmark."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from fake_lab import fake_lab

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def test_every_lab_size_time_or_throughput_figure_names_the_benchmark_that_measured_it() -> None:
    # "~3.4 GB, ~5 minutes", "~3.5 GB, a few minutes" and "~40 pairs/s" were three unsourced answers.
    figure = re.compile(r"\d[\d.,]*\s*(?:GB|GiB|pairs/s|minutes?|min)\b")
    for paragraph in paragraphs(README):
        if "lab" in paragraph.lower() and "| `benchmarks/" not in paragraph and figure.search(paragraph):
            assert "benchmarks/lab.py" in paragraph, paragraph
    assert "a few minutes" not in README and "~40 pairs/s" not in README


def test_the_readme_says_what_lab_up_does_without_detach(tmp_path: Path) -> None:
    # README: "`lab up` stays in the foreground until Ctrl-C, `lab up --detach` returns once healthy".
    assert "`lab up` stays in the foreground until Ctrl-C" in README
    lab = fake_lab(tmp_path / "lab", healthy_after_s=1.0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "diagnose", "lab", "up", "--lab-dir", str(lab)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("running; Ctrl-C stops it"):
                break
        time.sleep(1.0)
        assert proc.poll() is None, "".join(lines)  # healthy, and still in the foreground
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "stopping the lab" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert not (lab / "lab-server.json").exists()


def test_the_readme_gives_the_default_lab_directory_the_code_uses() -> None:
    assert "`$RERANK_DOCTOR_LAB_DIR` (default `~/.cache/rerank-doctor/lab`)" in README
