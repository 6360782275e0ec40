"""Every labelled real recording (tests/fixtures/labels.toml) gets its label from `check --from`, healthy
ones with no warning, and the README's table is the labels file's (benchmarks/accuracy.py prints both)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import accuracy  # noqa: E402

CASES = accuracy.load_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_labelled_recording_gets_its_label(case: accuracy.Case, tmp_path: Path) -> None:
    bundle = accuracy.resolve(case, tmp_path)
    if bundle is None:
        message = f"{case.path} is not here (the shared captures come with ../shared)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    status, report = accuracy.check_json(bundle)
    assert report, f"check --from {bundle} printed no report (exit {status})"
    assert report["verdict"]["label"] == case.label, (report["verdict"], case.evidence)
    loud = [f["rule_id"] for f in report["findings"] if f["severity"] in ("warning", "critical")]
    if case.label == "healthy":
        assert loud == []
    reported = {f["rule_id"] for f in report["findings"]}
    assert set(case.findings) <= reported


def test_the_fixtures_readme_shows_the_labels_file() -> None:
    table = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "accuracy.py"), "--readme"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    readme = (REPO / "tests" / "fixtures" / "README.md").read_text()
    assert table.strip() in readme, (
        "run `python benchmarks/accuracy.py --readme` into tests/fixtures/README.md"
    )
