"""Sparklines in the terminal report: the shape of the window beside its numbers, in 80 columns."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from diagnose.bundle import read_bundle
from diagnose.derive.series import window_series
from diagnose.pipeline import diagnose
from diagnose.render.sparkline import BLOCKS, sparkline
from diagnose.render.text import report_renderable, window_table

FIXTURES = Path(__file__).parent / "fixtures"


def render(renderable, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_a_climb_reads_as_a_climb_from_zero() -> None:
    assert sparkline([0.0, 1.0, 2.0, 4.0, 8.0], 5) == "▁▂▃▅█"


def test_an_unknown_value_is_a_gap_not_the_lowest_block() -> None:
    line = sparkline([1.0, None, 1.0], 3)
    assert line[1] == " " and line[0] == BLOCKS[-1]


def test_squeezing_keeps_a_one_sample_spike() -> None:
    values = [1.0] * 99 + [50.0]
    assert sparkline(values, 10)[-1] == BLOCKS[-1]
    assert set(sparkline(values, 10)[:-1]) == {BLOCKS[0]}


def test_the_gpu_bound_window_shows_its_climbing_queue_within_80_columns() -> None:
    bundle = read_bundle(FIXTURES / "gpu-h200-4b-8api-open" / "bundle")
    out = render(report_renderable(diagnose(bundle), series=window_series(bundle)))
    queue = next(line for line in out.splitlines() if line.startswith("queue mean"))
    shape = queue.split()[2]
    assert shape[-1] == BLOCKS[-1] and BLOCKS.index(shape[0]) <= 2  # 1.09 s rising to 11.63 s
    assert "max 11.6 s" in queue
    assert max(len(line) for line in out.splitlines()) <= 80


def test_series_absent_from_the_bundle_say_why_in_the_table() -> None:
    out = render(window_table(window_series(read_bundle(FIXTURES / "vllm-0.32-cpu-lab"))))
    gpu = next(line for line in out.splitlines() if line.startswith("GPU busy"))
    assert "no GPU samples" in gpu
    assert max(len(line) for line in out.splitlines()) <= 80
