"""A bundle's metrics file is read one dump at a time and gives what the whole-file reading gave.

`read_bundle` indexes the dumps (diagnose/bundle/stream.py FileDumps) instead of holding their text, and the
evidence folds them in one pass (diagnose/derive/dump_fold.py): the numbers must be the same as from the
same dumps held in a list, in any file order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from diagnose.bundle import read_bundle, split_dumps
from diagnose.bundle.stream import FileDumps
from diagnose.bundle.values import MAX_DUMP_BYTES
from diagnose.derive.evidence import build_evidence
from diagnose.derive.series import window_series
from diagnose.errors import DoctorError
from diagnose.readings import Bundle

BUNDLE = Path(__file__).parent / "fixtures" / "gpu-h200-0.6b-1api-closed" / "bundle"


def _as_list(bundle: Bundle) -> Bundle:
    """The same bundle with its dumps held in memory, as the sampler and fleet mode hold them."""
    held = Bundle(**{name: getattr(bundle, name) for name in Bundle.__dataclass_fields__})
    held.dumps = list(bundle.dumps)
    return held


def test_a_read_bundle_indexes_its_dumps_and_reads_them_in_time_order() -> None:
    bundle = read_bundle(BUNDLE)
    assert isinstance(bundle.dumps, FileDumps) and len(bundle.dumps) == 7
    whole = split_dumps((BUNDLE / "metrics.prom").read_text())
    assert list(bundle.dumps) == sorted(whole, key=lambda d: d.t_unix)
    assert bundle.dumps[-1] == max(whole, key=lambda d: d.t_unix) and bundle.dumps[:1] == [bundle.dumps[0]]


def test_the_evidence_and_the_series_from_the_file_equal_those_from_a_list() -> None:
    bundle = read_bundle(BUNDLE)
    held = _as_list(bundle)
    assert build_evidence(bundle) == build_evidence(held)
    assert window_series(bundle) == window_series(held)


def test_dumps_out_of_file_order_are_folded_by_capture_time(tmp_path: Path) -> None:
    dumps = split_dumps((BUNDLE / "metrics.prom").read_text())
    shuffled = dumps[3:] + dumps[:3]
    (tmp_path / "metrics.prom").write_text(
        "".join(f"### capture t_unix={d.t_unix}\n{d.text}" for d in shuffled)
    )
    bundle = read_bundle(tmp_path)
    assert [d.t_unix for d in bundle.dumps] == sorted(d.t_unix for d in dumps)
    assert build_evidence(bundle) == build_evidence(Bundle(dumps=dumps))


def test_what_is_not_an_exposition_is_skipped_and_unreadable_lines_are_counted(tmp_path: Path) -> None:
    text = (BUNDLE / "metrics.prom").read_text()
    first = text.split("### capture", 2)[1]
    (tmp_path / "metrics.prom").write_text(
        "### capture" + first + '### capture t_unix=2000000000\n{"error": 1}\n'
        "### capture t_unix=nan\nup 1\n" + "### capture" + first.replace("\n", "\nbroken line\n", 1)
    )
    bundle = read_bundle(tmp_path)
    assert len(bundle.dumps) == 2
    said = " ".join(i.reason for i in bundle.issues)
    assert "2 of 3 dumps are used" in said  # the nan marker is not a dump at all
    assert "1 unreadable line dropped in 1 of 2 dumps" in said and "broken line" in said
    assert "all 2 dumps carry the same capture time" in said  # the two good dumps are one capture


def test_a_dump_far_past_any_vllm_metrics_is_skipped_unparsed_and_refused(tmp_path: Path) -> None:
    line = "vllm:num_requests_running 0\n"
    with (tmp_path / "metrics.prom").open("w") as handle:
        handle.write("### capture t_unix=1800000000\n")
        handle.write(line * (MAX_DUMP_BYTES // len(line) + 1))
    with pytest.raises(DoctorError) as refused:
        read_bundle(tmp_path)
    assert "far past any vLLM /metrics" in refused.value.one_line()


def test_a_file_that_is_not_utf8_is_read_with_the_bytes_replaced_and_said(tmp_path: Path) -> None:
    text = (BUNDLE / "metrics.prom").read_bytes()
    (tmp_path / "metrics.prom").write_bytes(text.replace(b"# HELP", b"# H\xffLP", 1))
    bundle = read_bundle(tmp_path)
    assert len(bundle.dumps) == 7
    assert any("is not UTF-8" in i.reason for i in bundle.issues)


class _Steps:
    def __init__(self) -> None:
        self.said: list[str] = []

    def step(self, text: str) -> None:
        self.said.append(text)


def _long_bundle(folder: Path, count: int) -> Path:
    """The recorded bundle's last dump repeated `count` times 5 s apart, as a long `collect` writes it."""
    body = split_dumps((BUNDLE / "metrics.prom").read_text())[-1].text
    folder.mkdir()
    with (folder / "metrics.prom").open("w") as out:
        for i in range(count):
            out.write(f"### capture t_unix={1_800_000_000 + 5 * i}\n{body}")
    return folder


def test_a_long_bundle_says_how_far_its_reading_and_diagnosis_are(tmp_path: Path) -> None:
    from diagnose.pipeline import diagnose
    from diagnose.progress import PROGRESS_EVERY_DUMPS

    count = 2 * PROGRESS_EVERY_DUMPS
    steps = _Steps()
    bundle = read_bundle(_long_bundle(tmp_path / "long", count), steps)
    diagnose(bundle, progress=steps)
    window_series(bundle, progress=steps)
    assert any(s.startswith(f"reading metrics.prom: {count:,} dumps") for s in steps.said)
    assert f"diagnosing the /metrics dumps: {PROGRESS_EVERY_DUMPS:,} of {count:,}" in steps.said
    assert f"charting the /metrics dumps: {count:,} of {count:,}" in steps.said


def test_check_from_shows_progress_on_a_long_bundle_and_none_with_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from diagnose.cli import main
    from diagnose.commands import output
    from diagnose.progress import PROGRESS_EVERY_DUMPS

    folder = _long_bundle(tmp_path / "long", PROGRESS_EVERY_DUMPS)
    monkeypatch.setattr(output, "LONG_METRICS_BYTES", 1)  # this one is "long" (the real line is 50 MB)
    main(["check", "--from", str(folder)])
    assert "[bundle" in capsys.readouterr().err
    main(["check", "--from", str(folder), "--json"])
    assert "[bundle" not in capsys.readouterr().err
