"""The streaming reader over a recorded bundle gives what the window math reads from read_bundle."""

from __future__ import annotations

from pathlib import Path

from diagnose.bundle import read_bundle
from diagnose.bundle.stream import fold_window, stream_dumps
from diagnose.metrics import names
from diagnose.metrics.exposition import parse_dump

BUNDLE = Path(__file__).parent / "fixtures" / "gpu-h200-0.6b-1api-closed" / "bundle"


def _gauges(parsed):  # the readings evidence._gauges takes per dump
    return {c: names.value(parsed, c) for c in ("kv_usage", "waiting", "running")}


def test_fold_keeps_first_last_and_gauge_max_mean_of_the_whole_bundle() -> None:
    dumps = sorted(read_bundle(BUNDLE).dumps, key=lambda d: d.t_unix)
    parsed = [parse_dump(d) for d in dumps]
    fold = fold_window(stream_dumps(BUNDLE / "metrics.prom"), _gauges)
    assert fold.dumps == len(dumps) == 7 and fold.distinct_times == 2
    assert fold.first is not None and fold.last is not None
    assert fold.first.samples == parsed[0].samples and fold.last.samples == parsed[-1].samples
    waiting = [v for p in parsed if (v := names.value(p, "waiting")) is not None]
    assert fold.gauges["waiting"].max == max(waiting)
    assert fold.gauges["waiting"].mean == sum(waiting) / len(waiting)


def test_fold_skips_what_is_not_an_exposition_and_counts_unreadable_lines(tmp_path: Path) -> None:
    text = (BUNDLE / "metrics.prom").read_text()
    first = text.split("### capture", 2)[1]
    path = tmp_path / "metrics.prom"
    path.write_text(
        "### capture" + first + '### capture t_unix=2000000000\n{"error": 1}\n'
        "### capture t_unix=nan\nup 1\n" + "### capture" + first.replace("\n", "\nbroken line\n", 1)
    )
    fold = fold_window(stream_dumps(path))
    assert fold.dumps == 2 and fold.skipped == 1
    assert fold.unreadable_lines == 1 and "broken line" in (fold.first_unreadable or "")
    assert fold.distinct_times == 1  # the two good dumps are the same capture: no window


def test_a_dump_far_past_any_vllm_metrics_is_skipped_not_parsed(tmp_path: Path) -> None:
    import pytest

    from diagnose.bundle.values import MAX_DUMP_BYTES
    from diagnose.errors import DoctorError

    line = "vllm:num_requests_running 0\n"
    with (tmp_path / "metrics.prom").open("w") as handle:
        handle.write("### capture t_unix=1800000000\n")
        handle.write(line * (MAX_DUMP_BYTES // len(line) + 1))
    fold = fold_window(stream_dumps(tmp_path / "metrics.prom"))
    assert fold.dumps == 0
    with pytest.raises(DoctorError) as refused:
        read_bundle(tmp_path)
    assert "far past any vLLM /metrics" in refused.value.one_line()
