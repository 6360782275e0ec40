"""The concept table: each concept resolves to the name the server in front of us really uses."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from diagnose.bundle import split_dumps
from diagnose.metrics import names
from diagnose.metrics.exposition import ParsedDump, parse_text

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def s3_end(captures_dir: Path) -> ParsedDump:
    return parse_text((captures_dir / "s3_gpu_saturated_c64_d80_w300" / "metrics_end.txt").read_text())


@pytest.fixture(scope="module")
def era07() -> list[ParsedDump]:
    dumps = split_dumps((FIXTURES / "vllm-0.7-era" / "metrics.prom").read_text())
    return [parse_text(d.text, d.t_unix) for d in dumps]


CURRENT_026 = {
    "kv_usage": "vllm:kv_cache_usage_perc",
    "queue_time": "vllm:request_queue_time_seconds",
    "e2e_latency": "vllm:e2e_request_latency_seconds",
    "inference_time": "vllm:request_inference_time_seconds",
    "prefill_time": "vllm:request_prefill_time_seconds",
    "request_prompt_tokens": "vllm:request_prompt_tokens",
    "iteration_tokens": "vllm:iteration_tokens_total",
    "prompt_tokens": "vllm:prompt_tokens_total",
    "generation_tokens": "vllm:generation_tokens_total",
    "running": "vllm:num_requests_running",
    "waiting": "vllm:num_requests_waiting",
    "waiting_by_reason": "vllm:num_requests_waiting_by_reason",
    "preemptions": "vllm:num_preemptions_total",
    "prefix_cache_queries": "vllm:prefix_cache_queries_total",
    "prefix_cache_hits": "vllm:prefix_cache_hits_total",
    "prefix_cache_hit_rate": None,  # V0 only
    "request_success": "vllm:request_success_total",
    "http_requests": "http_requests_total",
    "http_duration": "http_request_duration_seconds",
    "http_duration_highr": "http_request_duration_highr_seconds",
    "admission_rejections": None,  # 0.32 and later
    "cache_config": "vllm:cache_config_info",
    "process_cpu": "process_cpu_seconds_total",
}


def test_every_concept_is_in_the_table_under_test() -> None:
    assert set(CURRENT_026) == set(names.CONCEPTS)


def test_vllm_026_resolves_every_concept_to_its_current_name(s3_end: ParsedDump) -> None:
    assert {c: names.resolve(s3_end, c) for c in names.CONCEPTS} == CURRENT_026


def test_prometheus_re_stored_spelling_resolves_with_the_same_values(captures_dir: Path) -> None:
    text = (captures_dir / "s3_gpu_saturated_c64_d80_w300" / "metrics_end.txt").read_text()
    colon, underscore = parse_text(text), parse_text(text.replace("vllm:", "vllm_"))
    assert names.resolve(underscore, "queue_time") == "vllm_request_queue_time_seconds"
    assert names.resolve(underscore, "kv_usage") == "vllm_kv_cache_usage_perc"
    assert names.value(underscore, "prompt_tokens") == names.value(colon, "prompt_tokens")
    assert names.histogram(underscore, "e2e_latency") == names.histogram(colon, "e2e_latency")
    assert names.prefix_cache_unit(underscore) == "tokens"


def test_value_sums_matching_series_and_is_none_when_nothing_matches(s3_end: ParsedDump) -> None:
    assert names.value(s3_end, "request_success", finished_reason="stop") == 84676.0
    assert names.value(s3_end, "request_success") == 84676.0  # abort/length/error/repetition are 0
    assert names.value(s3_end, "request_success", finished_reason="no-such-reason") is None
    assert names.value(s3_end, "admission_rejections") is None
    assert names.value(s3_end, "queue_time") == 84676.0  # a histogram's value is its observation count


def test_by_label_splits_by_the_label(s3_end: ParsedDump) -> None:
    assert names.by_label(s3_end, "request_success", "finished_reason") == {
        "stop": 84676.0,
        "length": 0.0,
        "abort": 0.0,
        "error": 0.0,
        "repetition": 0.0,
    }
    assert names.by_label(s3_end, "http_requests", "status", handler="/v1/rerank") == {"2xx": 5145.0}
    assert names.by_label(s3_end, "admission_rejections", "reason") is None


def test_histogram_reads_buckets_count_and_sum(s3_end: ParsedDump) -> None:
    h = names.histogram(s3_end, "queue_time")
    assert h is not None
    assert h.buckets[0] == (0.3, 84676.0)
    assert h.buckets[-1] == (math.inf, 84676.0)
    assert len(h.buckets) == 22
    assert h.count == 84676.0
    assert h.sum == pytest.approx(1151.5582650780475)


def test_info_labels_reads_cache_config(s3_end: ParsedDump) -> None:
    info = names.info_labels(s3_end, "cache_config")
    assert info is not None
    assert info["block_size"] == "16"
    assert info["enable_prefix_caching"] == "True"
    assert info["num_gpu_blocks"] == "68404"


TWO_ENGINES = """\
# TYPE vllm:request_queue_time_seconds histogram
vllm:request_queue_time_seconds_bucket{engine="0",le="0.3",model_name="m"} 4.0
vllm:request_queue_time_seconds_bucket{engine="0",le="0.5",model_name="m"} 6.0
vllm:request_queue_time_seconds_bucket{engine="0",le="+Inf",model_name="m"} 7.0
vllm:request_queue_time_seconds_count{engine="0",model_name="m"} 7.0
vllm:request_queue_time_seconds_sum{engine="0",model_name="m"} 2.5
vllm:request_queue_time_seconds_bucket{engine="1",le="0.3",model_name="m"} 1.0
vllm:request_queue_time_seconds_bucket{engine="1",le="0.5",model_name="m"} 1.0
vllm:request_queue_time_seconds_bucket{engine="1",le="+Inf",model_name="m"} 3.0
vllm:request_queue_time_seconds_count{engine="1",model_name="m"} 3.0
vllm:request_queue_time_seconds_sum{engine="1",model_name="m"} 9.0
"""


def test_histogram_sums_engines_bucket_by_bucket() -> None:
    h = names.histogram(parse_text(TWO_ENGINES), "queue_time")
    assert h == names.Histogram(buckets=((0.3, 5.0), (0.5, 7.0), (math.inf, 10.0)), count=10.0, sum=11.5)


def test_histogram_of_one_engine_by_label_match() -> None:
    h = names.histogram(parse_text(TWO_ENGINES), "queue_time", engine="1")
    assert h == names.Histogram(buckets=((0.3, 1.0), (0.5, 1.0), (math.inf, 3.0)), count=3.0, sum=9.0)


def test_histogram_keeps_only_bounds_every_series_has() -> None:
    # Engine 1 has no 0.5 bucket: adding engine 0's cumulative count at 0.5 alone would be wrong.
    text = "\n".join(line for line in TWO_ENGINES.splitlines() if 'engine="1",le="0.5"' not in line)
    h = names.histogram(parse_text(text), "queue_time")
    assert h is not None
    assert h.buckets == ((0.3, 5.0), (math.inf, 10.0))


def test_a_declared_family_without_series_resolves_but_has_no_value() -> None:
    parsed = parse_text(
        "# HELP vllm:admission_rejections_total x\n# TYPE vllm:admission_rejections_total counter\n"
    )
    assert names.resolve(parsed, "admission_rejections") == "vllm:admission_rejections_total"
    assert names.value(parsed, "admission_rejections") is None
    assert names.by_label(parsed, "admission_rejections", "reason") == {}


def test_a_name_with_samples_wins_over_a_newer_name_only_declared() -> None:
    parsed = parse_text(
        "# TYPE vllm:kv_cache_usage_perc gauge\n# TYPE vllm:gpu_cache_usage_perc gauge\n"
        'vllm:gpu_cache_usage_perc{model_name="m"} 0.25\n'
    )
    assert names.resolve(parsed, "kv_usage") == "vllm:gpu_cache_usage_perc"
    assert names.value(parsed, "kv_usage") == 0.25


# HELP strings as vLLM's V1 loggers.py wrote them: 0.8 series (blocks) and 0.9/0.10 series (tokens).
OLD_PREFIX_BLOCKS = (
    "# HELP vllm:gpu_prefix_cache_queries_total"
    " GPU prefix cache queries, in terms of number of queried blocks.\n"
    "# TYPE vllm:gpu_prefix_cache_queries_total counter\n"
    'vllm:gpu_prefix_cache_queries_total{engine="0",model_name="m"} 120.0\n'
)
OLD_PREFIX_TOKENS = OLD_PREFIX_BLOCKS.replace("queried blocks", "queried tokens")


def test_prefix_cache_unit_is_read_from_the_old_names_help_text() -> None:
    assert names.resolve(parse_text(OLD_PREFIX_BLOCKS), "prefix_cache_queries") == (
        "vllm:gpu_prefix_cache_queries_total"
    )
    assert names.prefix_cache_unit(parse_text(OLD_PREFIX_BLOCKS)) == "blocks"
    assert names.prefix_cache_unit(parse_text(OLD_PREFIX_TOKENS)) == "tokens"


def test_prefix_cache_unit_of_old_names_without_help_is_unknown() -> None:
    no_help = "\n".join(line for line in OLD_PREFIX_BLOCKS.splitlines() if not line.startswith("# HELP"))
    assert names.prefix_cache_unit(parse_text(no_help)) is None


def test_prefix_cache_unit_of_current_names_is_tokens(s3_end: ParsedDump) -> None:
    assert names.prefix_cache_unit(s3_end) == "tokens"


def test_07_era_v0_resolves_to_the_names_that_version_had(era07: list[ParsedDump]) -> None:
    after = era07[-1]
    assert names.resolve(after, "kv_usage") == "vllm:gpu_cache_usage_perc"
    assert names.resolve(after, "prefix_cache_hit_rate") == "vllm:gpu_prefix_cache_hit_rate"
    # V0 0.7 had both queue histograms; the current name is preferred.
    assert names.resolve(after, "queue_time") == "vllm:request_queue_time_seconds"
    # V0 had no prefix-cache counters (only V1 did), no waiting_by_reason, no HTTP metrics.
    for concept in ("prefix_cache_queries", "prefix_cache_hits", "waiting_by_reason", "http_requests"):
        assert names.resolve(after, concept) is None, concept
    assert names.prefix_cache_unit(after) is None
    assert names.value(after, "prefix_cache_hit_rate") == -1.0  # V0 writes -1 when prefix caching is off
    info = names.info_labels(after, "cache_config")
    assert info is not None and info["enable_prefix_caching"] == "False"


def test_07_era_old_queue_histogram_is_read_when_it_is_the_only_one(era07: list[ParsedDump]) -> None:
    after = era07[-1]
    only_old = ParsedDump(
        after.t_unix,
        {k: v for k, v in after.types.items() if not k.startswith("vllm:request_queue_time")},
        {k: v for k, v in after.samples.items() if not k.startswith("vllm:request_queue_time")},
        [],
    )
    assert names.resolve(only_old, "queue_time") == "vllm:time_in_queue_requests"
    assert names.histogram(only_old, "queue_time") == names.histogram(after, "queue_time")


def test_07_era_counts_reranker_traffic(era07: list[ParsedDump]) -> None:
    before, after = era07
    assert (before.t_unix, after.t_unix) == (1700000000.0, 1700000030.0)
    # 1 warm-up call then 3 more, 5 documents each: one engine request per document.
    assert names.value(before, "request_success", finished_reason="stop") == 5.0
    assert names.value(after, "request_success", finished_reason="stop") == 20.0
    assert names.value(after, "prompt_tokens") == 52 + 61 + 47 + 58 + 66 + 49 + 73 + 55 + 60 + 51 + (
        64 + 58 + 70 + 45 + 62 + 57 + 53 + 68 + 74 + 59
    )
    h = names.histogram(after, "iteration_tokens")
    assert h is not None and h.count == 4.0


def test_lab_032_resolves_the_current_names() -> None:
    path = FIXTURES / "vllm-0.32-cpu-lab" / "metrics.prom"
    if not path.is_file():
        pytest.skip("the lab's vLLM 0.32 recording is not there yet (tests/fixtures/record_lab_fixtures.py)")
    last = split_dumps(path.read_text(errors="replace"))[-1]
    parsed = parse_text(last.text, last.t_unix)
    assert names.resolve(parsed, "kv_usage") == "vllm:kv_cache_usage_perc"
    assert names.resolve(parsed, "queue_time") == "vllm:request_queue_time_seconds"
    assert names.resolve(parsed, "admission_rejections") == "vllm:admission_rejections_total"
    assert names.resolve(parsed, "waiting_by_reason") == "vllm:num_requests_waiting_by_reason"
    assert names.prefix_cache_unit(parsed) == "tokens"


def test_lab_032_counts_the_recorded_rerank_calls() -> None:
    from diagnose.derive.window import counter_delta

    path = FIXTURES / "vllm-0.32-cpu-lab" / "metrics.prom"
    if not path.is_file():
        pytest.skip("the lab's vLLM 0.32 recording is not there yet (tests/fixtures/record_lab_fixtures.py)")
    before, after = (parse_text(d.text, d.t_unix) for d in split_dumps(path.read_text(errors="replace")))
    # The lab's README: 10 rerank calls x 8 documents; 7058 prompt tokens by the responses' usage.
    stop = counter_delta(
        names.value(before, "request_success", finished_reason="stop"),
        names.value(after, "request_success", finished_reason="stop"),
    )
    assert stop == 80.0
    assert counter_delta(names.value(before, "prompt_tokens"), names.value(after, "prompt_tokens")) == 7058.0
    assert names.value(after, "prefix_cache_queries") == 7058.0
    assert names.by_label(after, "admission_rejections", "reason") == {
        "max_num_queued_reqs": 0.0,
        "max_num_queued_tokens": 0.0,
    }
    # No HTTP request before the first call: the instrumentator creates the series on first use.
    assert names.value(before, "http_requests", handler="/v1/rerank") is None
    assert names.value(after, "http_requests", handler="/v1/rerank") == 10.0
