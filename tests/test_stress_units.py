"""Pure parts of the stress command: flag parsing, the arrival schedule, bodies, percentiles, omission."""

from __future__ import annotations

import itertools
import json
import statistics

import pytest

from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.stress.bodies import QWEN3_SUFFIX, BodySpec, build_bodies
from diagnose.stress.config import (
    IntRange,
    LoadConfig,
    parse_duration,
    parse_range,
    parse_target,
)
from diagnose.stress.outcomes import server_message
from diagnose.stress.schedule import arrival_offsets, expected_arrivals, time_of_arrival
from diagnose.stress.stats import LatencySummary, omission_estimate, quantile


@pytest.mark.parametrize(
    ("text", "seconds"), [("10s", 10.0), ("2m", 120.0), ("500ms", 0.5), ("1.5h", 5400.0), ("7", 7)]
)
def test_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "ten", "10x", "-5s", "0s", "1m30"])
def test_bad_duration_is_a_one_line_usage_error(text: str) -> None:
    with pytest.raises(DoctorError) as err:
        parse_duration(text)
    assert err.value.status == ExitStatus.USAGE
    assert "\n" not in err.value.one_line() and "30s" in err.value.fix


def test_ranges_parse_fixed_and_span_and_refuse_backwards() -> None:
    assert parse_range("20", "--docs") == IntRange(20, 20)
    assert parse_range("5-50", "--docs") == IntRange(5, 50)
    for bad in ("0", "50-5", "a-b", "5-"):
        with pytest.raises(DoctorError):
            parse_range(bad, "--docs")


def test_far_target_is_refused_without_yes_really_and_allowed_with_it() -> None:
    with pytest.raises(DoctorError) as err:
        parse_target("http://10.1.2.3:8000", None)
    assert "--yes-really" in err.value.fix and err.value.status == ExitStatus.USAGE
    assert parse_target("http://10.1.2.3:8000", None, yes_really=True).host == "10.1.2.3"


def test_url_ending_in_an_endpoint_sets_the_endpoint_and_drops_credentials() -> None:
    target = parse_target("http://user:pw@127.0.0.1:8000/score/", None)
    assert (target.base_url, target.endpoint) == ("http://127.0.0.1:8000", "/score")
    assert "pw" not in target.base_url


@pytest.mark.parametrize("rate", [0.0, -3.0, float("nan"), float("inf")])
def test_zero_negative_or_non_finite_rate_is_refused(rate: float) -> None:
    with pytest.raises(DoctorError) as err:
        LoadConfig(rate_per_s=rate).validate()
    assert "--rate" in err.value.message


def test_open_and_closed_loop_cannot_both_be_asked_for() -> None:
    with pytest.raises(DoctorError):
        LoadConfig(rate_per_s=5, concurrency=2).validate()
    with pytest.raises(DoctorError):
        LoadConfig(concurrency=0).validate()


def test_api_key_is_not_in_the_config_repr() -> None:
    assert "s3cret" not in repr(LoadConfig(rate_per_s=1, api_key="s3cret"))


def test_constant_schedule_has_rate_times_duration_evenly_spaced_arrivals() -> None:
    offsets = list(arrival_offsets(50, 2.0, "constant"))
    assert len(offsets) == 100
    assert offsets[1] - offsets[0] == pytest.approx(0.02)


def test_poisson_schedule_has_the_asked_rate_and_exponential_gaps() -> None:
    offsets = list(arrival_offsets(1000, 10.0, "poisson", seed=3))
    assert len(offsets) == pytest.approx(10_000, rel=0.03)
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    # Exponential gaps: the standard deviation equals the mean (a constant schedule would have 0).
    assert statistics.pstdev(gaps) == pytest.approx(statistics.mean(gaps), rel=0.05)


def test_linear_ramp_sends_the_integral_of_the_rate() -> None:
    # 0 -> 100 calls/s over 4 s, then 100/s for 1 s: 200 + 100 arrivals.
    offsets = list(arrival_offsets(100, 5.0, "constant", ramp_s=4.0, ramp_from_per_s=0.0))
    assert len(offsets) == pytest.approx(300, abs=1)
    assert sum(1 for t in offsets if t < 2.0) == pytest.approx(50, abs=1)  # a quarter of the ramp's 200
    for x in (0.5, 10.0, 199.0, 250.0):
        assert expected_arrivals(time_of_arrival(x, 100, 4.0, 20.0), 100, 4.0, 20.0) == pytest.approx(x)


def _spec(**kw: object) -> BodySpec:
    base: dict = {"docs": IntRange(20, 20), "words": IntRange(50, 50), "query_words": 9, "distinct": 16}
    base.update(kw)
    return BodySpec(**base)


def test_bodies_have_the_configured_documents_and_words() -> None:
    bodies = build_bodies(_spec(), "/v1/rerank", "m")
    for body in bodies:
        doc = json.loads(body.data)
        assert set(doc) == {"model", "query", "documents"}
        assert len(doc["documents"]) == 20 == body.docs
        assert all(len(d.split()) == 50 for d in doc["documents"])
        assert len(doc["query"].split()) == 9


def test_ranged_bodies_stay_inside_their_ranges_and_vary() -> None:
    bodies = build_bodies(
        _spec(docs=IntRange(5, 50), words=IntRange(20, 400), distinct=64), "/v1/rerank", "m"
    )
    docs = [json.loads(b.data)["documents"] for b in bodies]
    counts = {len(d) for d in docs}
    words = {len(x.split()) for d in docs for x in d}
    assert min(counts) >= 5 and max(counts) <= 50 and len(counts) > 10
    assert min(words) >= 20 and max(words) <= 400 and len(words) > 50


def test_distinct_body_pool_has_that_many_different_bodies_and_documents() -> None:
    bodies = build_bodies(_spec(distinct=100), "/v1/rerank", "m")
    assert len({b.data for b in bodies}) == 100
    docs = [d for b in bodies for d in json.loads(b.data)["documents"]]
    assert len(set(docs)) == len(docs)  # no document repeats inside the pool either
    assert build_bodies(_spec(distinct=100), "/v1/rerank", "m")[7].data == bodies[7].data  # seeded


def test_score_endpoint_bodies_use_text_1_and_text_2() -> None:
    doc = json.loads(build_bodies(_spec(distinct=1), "/score", "m")[0].data)
    assert set(doc) == {"model", "text_1", "text_2"} and len(doc["text_2"]) == 20


def test_qwen3_template_wraps_query_and_every_document() -> None:
    spec = _spec(distinct=1, qwen3_template=True, instruction="Find the cat", top_n=3)
    doc = json.loads(build_bodies(spec, "/v1/rerank", "m")[0].data)
    assert (
        doc["query"].startswith("<|im_start|>system\n")
        and "<Instruct>: Find the cat\n<Query>: " in doc["query"]
    )
    assert all(d.startswith("<Document>: ") and d.endswith(QWEN3_SUFFIX) for d in doc["documents"])
    assert doc["top_n"] == 3


def test_a_pool_too_big_for_memory_is_refused_with_a_fix() -> None:
    with pytest.raises(DoctorError) as err:
        build_bodies(
            _spec(distinct=100_000, docs=IntRange(100, 100), words=IntRange(400, 400)), "/v1/rerank", "m"
        )
    assert "--distinct-bodies" in err.value.fix


def test_vllm_error_messages_are_read_from_both_json_shapes_and_fastapi() -> None:
    new = b'{"error": {"message": "This model\'s maximum context length is 2048 tokens.", "code": 400}}'
    old = b'{"object": "error", "message": "old style", "type": "BadRequestError", "code": 400}'
    assert server_message(new).startswith("This model's maximum context length is 2048")
    assert server_message(old) == "old style"
    assert server_message(b'{"detail":"Not Found"}') == "Not Found"
    assert server_message(b"plain\ntext") == "plain text"


def test_quantile_interpolates_between_order_statistics() -> None:
    assert quantile([1.0, 2.0], 0.5) == 1.5
    assert quantile([], 0.5) is None
    summary = LatencySummary.of([0.01] * 95 + [1.0] * 5)
    assert summary.long_tail is False and summary.max_s == 1.0
    assert LatencySummary.of([0.01] * 90 + [1.0] * 10).long_tail is True


def test_omission_estimate_adds_the_sends_a_stall_hid() -> None:
    # 1,000 answers of 10 ms and one of 1 s: a worker at 10 ms pace would have sent 99 calls meanwhile.
    est = omission_estimate([0.01] * 1000 + [1.0])
    assert est.expected_interval_s == pytest.approx(0.01)
    assert est.delayed_sends == 99 and est.slow_calls == 1
    assert est.corrected.count == 1100
    assert est.corrected.p95_s is not None and est.corrected.p95_s > 0.4  # raw p95 is 10 ms


def test_omission_estimate_of_steady_answers_adds_nothing() -> None:
    est = omission_estimate([0.01, 0.011, 0.012, 0.0105] * 100)
    assert est.delayed_sends == 0 and est.corrected.count == 400


def test_progress_line_shows_rate_in_flight_errors_and_p95() -> None:
    from diagnose.stress.progress import progress_line
    from diagnose.stress.recorder import Recorder

    rec = Recorder()
    for i in range(20):
        call = rec.start(intended=i * 0.1, sent=i * 0.1, docs=5)
        if i < 18:
            rec.finish(
                call, i * 0.1 + (0.5 if i == 0 else 0.01), "ok" if i else "5xx", 200 if i else 500, "x"
            )
    line = progress_line(rec, 2.0, LoadConfig(rate_per_s=10, duration_s=5))
    assert "sent 20" in line and "rate 10.0/10 calls/s" in line
    assert "in flight 2" in line and "errors 1" in line and "p95 " in line and "ms" in line
