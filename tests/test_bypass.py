"""`rerank-doctor bypass` without a model run: score comparison, pairs input, bad input, report and render.

Every input here is small and inline, built to exercise one case; nothing pretends to be a recording.
The real run (the lab's vLLM + its tiny model) is in test_bypass_lab.py.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from diagnose.bypass import compare
from diagnose.bypass.compare import (
    ACTIVATION,
    BEYOND_TOLERANCE,
    CONSTANT,
    UNCORRELATED,
    compare_scores,
    expected_activation,
    sigmoid,
)
from diagnose.bypass.direct import check_model_dir, worker_python
from diagnose.bypass.pairs import (
    PAIRS_SHAPE,
    SYNTHETIC_DOCS_PER_QUERY,
    Pair,
    batches_of,
    load_pairs,
    query_runs,
    synthetic_pairs,
)
from diagnose.bypass.report import (
    BypassReport,
    DirectRun,
    Overhead,
    ServedRun,
    Timing,
    score_finding,
)
from diagnose.bypass.served import parse_scores
from diagnose.bypass.stress_bundle import parse_stress, read_stress
from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.lab.server import free_port
from diagnose.report import Severity

# Raw logits with a useful spread (sigmoid 0.27..0.82) and the scores a healthy vLLM would serve.
LOGITS = [-1.0, -0.5, 0.0, 0.3, 0.8, 1.5]
SERVED_OK = [sigmoid(x) for x in LOGITS]


def cli(argv: list[str]) -> int:
    """Runs the bypass subcommand as diagnose/cli.py does: a DoctorError becomes its exit status."""
    from diagnose.commands import bypass

    parser = argparse.ArgumentParser()
    bypass.add_arguments(parser)
    try:
        return bypass.run(parser.parse_args(argv))
    except DoctorError as err:
        return int(err.status)


@pytest.fixture
def seq_cls_dir(tmp_path: Path) -> Path:
    """A directory that passes the cheap checks (config.json of a one-label seq-cls model), no weights."""
    model = tmp_path / "model"
    model.mkdir()
    config = {"architectures": ["Qwen3ForSequenceClassification"], "num_labels": 1}
    (model / "config.json").write_text(json.dumps(config))
    return model


# --- score comparison (pure) ---------------------------------------------------------------------------


def test_matching_scores_agree() -> None:
    got = compare_scores(LOGITS, SERVED_OK)
    assert got.agree and got.problem is None
    assert got.max_abs_diff < 1e-12
    assert got.pearson == pytest.approx(1.0)


def test_bf16_sized_differences_still_agree() -> None:
    # 0.005 on the score is what bf16 on both sides plus different kernels gives; well inside 0.02.
    served = [s + (0.005 if i % 2 else -0.005) for i, s in enumerate(SERVED_OK)]
    assert compare_scores(LOGITS, served).agree


def test_constant_served_scores_are_flagged() -> None:
    got = compare_scores(LOGITS, [0.5] * len(LOGITS))
    assert not got.agree
    assert got.problem == CONSTANT
    assert got.served_spread == 0.0
    assert got.direct_spread > 0.5


def test_reversed_ranking_is_flagged_uncorrelated() -> None:
    got = compare_scores(LOGITS, list(reversed(SERVED_OK)))
    assert got.problem == UNCORRELATED
    assert got.pearson is not None and got.pearson < 0


def test_raw_logits_served_are_an_activation_mismatch_not_a_broken_model() -> None:
    # A server that serves the raw logit (problem_type=regression) scores the same model.
    got = compare_scores(LOGITS, list(LOGITS))
    assert got.problem == ACTIVATION
    assert got.matches_activation == "identity"


def test_a_shift_beyond_tolerance_is_flagged() -> None:
    got = compare_scores(LOGITS, [s + 0.05 for s in SERVED_OK])
    assert got.problem == BEYOND_TOLERANCE
    assert got.max_abs_diff == pytest.approx(0.05)


def test_a_looser_tolerance_accepts_the_same_shift() -> None:
    assert compare_scores(LOGITS, [s + 0.05 for s in SERVED_OK], tolerance=0.1).agree


def test_vllm_offline_scores_are_compared_as_they_are() -> None:
    got = compare_scores(SERVED_OK, SERVED_OK, direct_are_scores=True)
    assert got.agree and got.activation.startswith("none")


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        compare_scores(LOGITS, SERVED_OK[:-1])


def test_sigmoid_does_not_overflow_on_huge_logits() -> None:
    assert sigmoid(1000.0) == 1.0
    assert sigmoid(-1000.0) == 0.0
    assert sigmoid(0.0) == 0.5


def test_pearson_is_unknown_for_a_constant_side() -> None:
    assert compare.pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"num_labels": 1}, "sigmoid"),
        ({}, "sigmoid"),
        ({"num_labels": 1, "problem_type": "regression"}, "identity"),
        ({"num_labels": 1, "problem_type": "single_label_classification"}, "sigmoid"),
        ({"sentence_transformers": {"activation_fn": "torch.nn.modules.linear.Identity"}}, "identity"),
        ({"sbert_ce_default_activation_function": "torch.nn.modules.activation.Sigmoid"}, "sigmoid"),
        ({"num_labels": 2}, None),
        ({"sentence_transformers": {"activation_fn": "torch.nn.modules.activation.Tanh"}}, None),
    ],
)
def test_expected_activation_follows_vllm(config: dict[str, object], expected: str | None) -> None:
    assert expected_activation(config).name == expected


# --- the finding ---------------------------------------------------------------------------------------


def test_constant_scores_make_a_critical_config_finding_with_the_numbers() -> None:
    finding = score_finding(compare_scores(LOGITS, [0.5] * len(LOGITS)), "/m")
    assert finding is not None
    assert finding.label == "config" and finding.step == 4
    assert finding.title == "served scores disagree with the model"
    assert finding.severity == Severity.CRITICAL
    assert finding.numbers["served_score_spread"] == 0.0
    assert finding.numbers["score_max_abs_diff"] == pytest.approx(max(abs(s - 0.5) for s in SERVED_OK))
    assert "score_correlation" in finding.numbers


def test_a_small_drift_is_only_a_warning() -> None:
    finding = score_finding(compare_scores(LOGITS, [s + 0.05 for s in SERVED_OK]), "/m")
    assert finding is not None and finding.severity == Severity.WARNING


def test_agreeing_scores_make_no_finding() -> None:
    assert score_finding(compare_scores(LOGITS, SERVED_OK), "/m") is None


# --- pairs ---------------------------------------------------------------------------------------------


def test_pairs_file_accepts_both_shapes(tmp_path: Path) -> None:
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([{"query": "q1", "document": "d1"}, {"query": "q2", "documents": ["a", "b"]}]))
    assert load_pairs(path) == [Pair("q1", "d1"), Pair("q2", "a"), Pair("q2", "b")]


@pytest.mark.parametrize(
    "content",
    [
        "not json at all {",
        json.dumps({"query": "q", "documents": ["d"]}),  # an object, not a list
        json.dumps(["q", "d"]),
        json.dumps([{"query": "q"}]),
        json.dumps([{"query": "q", "documents": []}]),
        json.dumps([{"query": "q", "documents": ["d", 3]}]),
        json.dumps([{"query": 1, "document": "d"}]),
        json.dumps([]),
        "",
    ],
    ids=["not-json", "object", "strings", "no-document", "empty-documents", "non-string-doc", "query-not-str",
         "empty-list", "empty-file"],
)  # fmt: skip
def test_bad_pairs_file_is_one_line_naming_the_shape_and_exits_4(tmp_path: Path, content: str) -> None:
    path = tmp_path / "pairs.json"
    path.write_text(content)
    with pytest.raises(DoctorError) as err:
        load_pairs(path)
    assert err.value.status == ExitStatus.BAD_INPUT
    line = err.value.one_line()
    assert "\n" not in line
    assert PAIRS_SHAPE in line


def test_missing_pairs_file_exits_4(tmp_path: Path) -> None:
    with pytest.raises(DoctorError) as err:
        load_pairs(tmp_path / "nope.json")
    assert err.value.status == ExitStatus.BAD_INPUT


def test_synthetic_pairs_are_deterministic_and_grouped_by_query() -> None:
    pairs = synthetic_pairs(45)
    assert pairs == synthetic_pairs(45)
    assert pairs != synthetic_pairs(45, seed=1)
    assert len({p.query for p in pairs}) == math.ceil(45 / SYNTHETIC_DOCS_PER_QUERY)
    assert len({p.document for p in pairs}) == 45


def test_synthetic_zero_pairs_is_refused() -> None:
    with pytest.raises(DoctorError):
        synthetic_pairs(0)


def test_batches_keep_order_and_size() -> None:
    pairs = synthetic_pairs(7)
    batches = batches_of(pairs, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [p for b in batches for p in b] == pairs


def test_query_runs_split_a_batch_at_query_changes() -> None:
    batch = [Pair("a", "1"), Pair("a", "2"), Pair("b", "3"), Pair("a", "4")]
    assert query_runs(batch) == [("a", ["1", "2"]), ("b", ["3"]), ("a", ["4"])]


# --- served answers ------------------------------------------------------------------------------------


def test_rerank_answers_are_put_back_in_document_order() -> None:
    # /v1/rerank ranks its results best first; the index says which document each one is.
    body = {"results": [{"index": 1, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.2}]}
    assert parse_scores("/v1/rerank", body, 2) == [0.2, 0.9]


def test_score_answers_are_read_by_index() -> None:
    body = {"data": [{"index": 0, "score": 0.3}, {"index": 1, "score": 0.7}]}
    assert parse_scores("/score", body, 2) == [0.3, 0.7]


def test_an_answer_missing_documents_is_refused() -> None:
    with pytest.raises(ValueError, match="no score"):
        parse_scores("/v1/rerank", {"results": [{"index": 0, "relevance_score": 0.1}]}, 2)


# --- timing and overhead -------------------------------------------------------------------------------


def test_timing_counts_pairs_per_second_over_busy_time() -> None:
    t = Timing.of([0.1, 0.2, 0.3, 0.4], [10, 10, 10, 5])
    assert t.pairs == 35 and t.batches == 4 and t.batch_size == 10
    assert t.pairs_per_s == pytest.approx(35 / 1.0)
    assert t.batch_p50_s == pytest.approx(0.25)
    assert t.batch_p95_s == pytest.approx(0.385)


def test_overhead_is_served_minus_direct_per_pair() -> None:
    o = Overhead.of("url", served_pairs_per_s=100.0, direct_pairs_per_s=400.0)
    assert o.per_pair_ms == pytest.approx(10.0 - 2.5)
    assert o.share_of_served == pytest.approx(0.75)
    assert o.served_over_direct == pytest.approx(4.0)


# --- stress.json ---------------------------------------------------------------------------------------


def test_stress_json_gives_served_pairs_per_second() -> None:
    doc = {
        "schema_version": 1,
        "mode": "closed",
        "pairs_per_s": 250.0,
        "calls_per_s": 12.5,
        "settings": {"concurrency": 8, "rate_per_s": None},
        "bodies": {"docs_per_call_mean": 20.0},
        "latency": {"p50_s": 0.5, "p95_s": 0.9},
    }
    got = parse_stress(doc, "x/stress.json")
    assert got.pairs_per_s == 250.0 and got.concurrency == 8 and got.latency_p95_s == 0.9


def test_stress_json_without_successful_calls_is_bad_input() -> None:
    with pytest.raises(DoctorError) as err:
        parse_stress({"pairs_per_s": 0.0}, "x/stress.json")
    assert err.value.status == ExitStatus.BAD_INPUT


def test_bundle_without_stress_json_names_the_stress_command(tmp_path: Path) -> None:
    with pytest.raises(DoctorError) as err:
        read_stress(tmp_path)
    assert err.value.status == ExitStatus.BAD_INPUT
    assert "rerank-doctor stress --save" in err.value.fix


# --- choosing the worker's Python and checking the model ----------------------------------------------


def test_this_python_runs_the_worker_when_it_has_torch() -> None:
    assert worker_python(None, "transformers", importable=lambda _m: True) == Path(sys.executable)


def test_no_torch_and_no_lab_venv_names_lab_setup(tmp_path: Path) -> None:
    with pytest.raises(DoctorError) as err:
        worker_python(None, "transformers", lab_dir=tmp_path, importable=lambda _m: False)
    assert err.value.status == ExitStatus.MISSING_TOOL
    assert "rerank-doctor lab setup" in err.value.one_line()


def test_the_lab_venv_python_is_used_when_this_one_lacks_torch(tmp_path: Path) -> None:
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    assert worker_python(None, "transformers", lab_dir=tmp_path, importable=lambda _m: False) == python


def test_a_causal_lm_checkpoint_is_refused_for_transformers(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["Qwen3ForCausalLM"]}))
    with pytest.raises(DoctorError) as err:
        check_model_dir(tmp_path, "transformers")
    assert err.value.status == ExitStatus.BAD_INPUT
    assert "not a sequence-classification checkpoint" in err.value.message


# --- the command: bad input exits before any model loads -----------------------------------------------


def test_missing_model_dir_exits_4(tmp_path: Path) -> None:
    assert cli(["--model", str(tmp_path / "none"), "--synthetic", "3", "--json"]) == ExitStatus.BAD_INPUT


def test_bad_pairs_file_exits_4(tmp_path: Path, seq_cls_dir: Path) -> None:
    bad = tmp_path / "pairs.json"
    bad.write_text("{not json")
    assert cli(["--model", str(seq_cls_dir), "--pairs", str(bad), "--json"]) == ExitStatus.BAD_INPUT


def test_unreachable_url_exits_3_quickly(seq_cls_dir: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    t0 = time.monotonic()
    status = cli(["--model", str(seq_cls_dir), "--synthetic", "3", "--url", url, "--python", sys.executable])
    assert status == ExitStatus.UNREACHABLE
    assert time.monotonic() - t0 < 10  # refused before any model load


def test_non_loopback_url_is_refused_without_yes_really(
    seq_cls_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["--model", str(seq_cls_dir), "--synthetic", "3", "--url", "http://10.1.2.3:8000"]
    with pytest.raises(DoctorError) as err:
        from diagnose.commands import bypass

        parser = argparse.ArgumentParser()
        bypass.add_arguments(parser)
        bypass.run(parser.parse_args([*argv, "--python", sys.executable]))
    assert err.value.status == ExitStatus.USAGE
    assert "--yes-really" in err.value.fix


# --- rendering -----------------------------------------------------------------------------------------


def _report(served: list[float]) -> BypassReport:
    agreement = compare_scores(LOGITS, served)
    finding = score_finding(agreement, "/m")
    direct_timing = Timing.of([0.01] * 3, [2, 2, 2])
    served_timing = Timing.of([0.04] * 3, [2, 2, 2])
    return BypassReport(
        model_dir="/m",
        pairs=6,
        batch_size=2,
        direct=DirectRun(
            "transformers", "cpu", "cpu", "float32", "/py", {"torch": "2"}, 1.0, direct_timing, None
        ),
        served=ServedRun("http://127.0.0.1:8000", "/v1/rerank", "lab", 3, served_timing),
        stress=None,
        activation="sigmoid",
        activation_why="num_labels=1",
        scores=agreement,
        overhead=[Overhead.of("url", 50.0, 200.0)],
        findings=[finding] if finding else [],
        samples=[
            {"query": "q", "document": "d", "direct_logit": 0.1, "direct_score": 0.52, "served_score": 0.5}
        ],
    )


def _text(report: BypassReport) -> str:
    from diagnose.bypass.render import render

    console = Console(file=io.StringIO(), width=120, color_system=None)
    for block in render(report):
        console.print(block)
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_render_shows_disagreement_and_overhead() -> None:
    text = _text(_report([0.5] * 6))
    assert "DISAGREE (constant)" in text
    assert "served scores disagree with the model" in text
    assert "15.00 ms" in text  # 1000/50 - 1000/200


def test_render_says_scores_agree() -> None:
    text = _text(_report(SERVED_OK))
    assert "agree" in text and "DISAGREE" not in text


def test_json_has_schema_version_and_the_finding() -> None:
    doc = json.loads(json.dumps(_report([0.5] * 6).to_dict()))
    assert doc["schema_version"] == 1
    assert doc["scores"]["problem"] == CONSTANT
    assert doc["findings"][0]["severity"] == "critical"
    assert doc["overhead"][0]["per_pair_ms"] == pytest.approx(15.0)


def test_worker_reads_num_labels_from_id2label(tmp_path: Path) -> None:
    # worker.py is a script for another Python, but imports only the standard library, so it loads here.
    from diagnose.bypass import worker

    (tmp_path / "config.json").write_text(json.dumps({"id2label": {"0": "LABEL_0"}, "problem_type": None}))
    assert worker.config_facts(str(tmp_path))["num_labels"] == 1


def test_worker_module_imports_only_the_standard_library() -> None:
    source = Path(__file__).resolve().parent.parent / "diagnose" / "bypass" / "worker.py"
    top_level = [ln for ln in source.read_text().splitlines() if ln.startswith(("import ", "from "))]
    assert top_level and all(
        ln.split()[1].split(".")[0] in {"__future__", "json", "os", "sys", "time", "traceback", "typing"}
        for ln in top_level
    )


# --- the whole run, with stand-ins for the model process and the server --------------------------------


class _Answer:
    def __init__(self, status_code: int, body: object) -> None:
        self.status_code = status_code
        self._body = body
        self.text = json.dumps(body)

    def json(self) -> object:
        return self._body


class _ConstantServer:
    """Answers /v1/models and /v1/rerank like vLLM does, but scores every document 0.5 (a broken head)."""

    def __init__(self) -> None:
        self.posts: list[dict] = []

    def get(self, url: str, **_: object) -> _Answer:
        return _Answer(200, {"data": [{"id": "served-name"}]})

    def post(self, url: str, json: dict, **_: object) -> _Answer:
        self.posts.append(json)
        results = [{"index": i, "relevance_score": 0.5} for i in range(len(json["documents"]))]
        return _Answer(200, {"results": results})


def _fake_python(tmp_path: Path, logits: list[float]) -> Path:
    """An executable that stands in for `python worker.py REQUEST RESULT`: writes fixed logits."""
    script = tmp_path / "fake-python"
    result = {
        "values": logits, "values_are": "logits", "batch_s": [0.01, 0.01, 0.01], "forward_s": None,
        "load_s": 0.1, "config": {"num_labels": 1}, "dtype": "float32", "device": "cpu", "device_name": "cpu",
        "python": str(script), "versions": {"torch": "x"},
    }  # fmt: skip
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\nopen(sys.argv[3], 'w').write(json.dumps({result!r}))\n"
    )
    script.chmod(0o755)
    return script


def test_run_bypass_reports_constant_served_scores_and_both_overheads(
    tmp_path: Path, seq_cls_dir: Path
) -> None:
    from diagnose.bypass.run import run_bypass

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "stress.json").write_text(json.dumps({"mode": "closed", "pairs_per_s": 100.0}))
    server = _ConstantServer()
    report = run_bypass(
        seq_cls_dir,
        [Pair("q", f"d{i}") for i in range(6)],
        url="http://127.0.0.1:9",
        bundle=bundle,
        batch_size=2,
        python=str(_fake_python(tmp_path, LOGITS)),
        session=server,
    )
    assert report.served is not None and report.served.model == "served-name"
    # 3 warm-up calls, then one call per batch of 2, each with the batch's documents.
    assert [len(p["documents"]) for p in server.posts[3:]] == [2, 2, 2]
    assert report.scores is not None and report.scores.problem == CONSTANT
    assert [f.title for f in report.findings] == ["served scores disagree with the model"]
    # Direct: 6 pairs in 0.03 s = 200 pairs/s; stress.json: 100 pairs/s -> 10 ms - 5 ms per pair.
    stress = report.overhead_from("stress")
    assert stress is not None and stress.per_pair_ms == pytest.approx(5.0)
    assert report.overhead_from("url") is not None
    assert "stress.json" in _text(report)


def test_rounding_scatter_in_the_same_order_is_a_note_not_a_warning() -> None:
    # Deep bf16 models scatter both ways around the model's scores (the H200 4B run: up to 0.105,
    # correlation 0.989); the order, which is what a reranker serves, is the model's.
    direct = [compare.sigmoid(x) for x in LOGITS]
    scatter = [d + (0.03 if i % 2 else -0.03) for i, d in enumerate(direct)]
    agreement = compare_scores(LOGITS, scatter)
    assert agreement.problem == "beyond_tolerance" and abs(agreement.mean_signed_diff) < 0.02
    finding = score_finding(agreement, "/m")
    assert finding is not None and finding.severity == Severity.INFO
    assert "rank pairs as the model does" in finding.detail
