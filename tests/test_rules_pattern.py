"""Step-2 rules (request shape, --max-model-len, generate endpoint, prefix cache) and the step-3
provisional cache-thrash rule: bands and "not a fault" cases from one or two changed numbers."""

from __future__ import annotations

import pytest
from rules_support import analyze, evidence, severity

from diagnose.report import Severity
from diagnose.rules import cache_thrash, generate_endpoint, max_model_len, prefix_cache, request_pattern
from diagnose.rules.base import skip_reason

SHAPE = request_pattern.RULE
MML = max_model_len.RULE
GEN = generate_endpoint.RULE
PREFIX = prefix_cache.RULE
THRASH = cache_thrash.RULE


# --- request pattern -----------------------------------------------------------------------------------


def test_request_shape_is_always_an_info_with_docs_and_tokens():
    finding = analyze(SHAPE)
    assert finding is not None and finding.severity == Severity.INFO
    assert finding.title.startswith("Request shape: 20 documents per call, 300 tokens per pair")
    assert finding.suggestions == []


def test_few_documents_per_call_suggests_fewer_larger_requests():
    finding = analyze(SHAPE, docs_per_call=3.0)
    assert finding is not None
    assert finding.suggestions[0].flag == "client: documents per call"
    assert finding.suggestions[0].current == "3.0"


def test_tiny_pairs_are_called_out():
    finding = analyze(SHAPE, prompt_tokens_per_pair=6.5)
    assert finding is not None and "Tiny pairs" in finding.detail


def test_request_shape_is_skipped_when_no_call_was_made():
    ev = evidence(why={"docs_per_call": "no calls in the window"}, docs_per_call=None)
    assert skip_reason(SHAPE, ev) == "needs docs_per_call: no calls in the window"


# --- max-model-len -----------------------------------------------------------------------------------


def test_max_model_len_fitting_the_prompts_is_not_a_fault():
    assert severity(MML) == Severity.OK  # 1024 for a p99 of 600


def test_max_model_len_far_above_p99_is_info_with_a_power_of_two_proposal():
    finding = analyze(MML, max_model_len=32768, prompt_tokens_p99=700.0, prompt_tokens_max_le=1000.0)
    assert finding is not None and finding.severity == Severity.INFO
    knob = finding.suggestions[0]
    # max(700 x 1.25 = 875, longest bucket 1000, floor 512) -> 1024
    assert (knob.flag, knob.direction, knob.current, knob.proposed) == (
        "--max-model-len",
        "lower",
        "32768",
        "1024",
    )


def test_max_model_len_proposal_never_drops_below_the_longest_bucket_seen():
    finding = analyze(MML, max_model_len=32768, prompt_tokens_p99=700.0, prompt_tokens_max_le=2000.0)
    assert finding is not None and finding.suggestions[0].proposed == "2048"


def test_max_model_len_proposal_has_a_floor_for_tiny_prompts():
    finding = analyze(MML, max_model_len=8192, prompt_tokens_p99=10.0, prompt_tokens_max_le=10.0)
    assert finding is not None and finding.suggestions[0].proposed == "512"


def test_next_power_of_two():
    assert [max_model_len.next_power_of_two(v) for v in (1, 2, 3, 512, 513)] == [1, 2, 4, 512, 1024]


# --- generate endpoint -----------------------------------------------------------------------------


def test_no_generated_tokens_is_not_a_fault():
    assert severity(GEN) == Severity.OK


def test_a_few_generated_tokens_are_a_warning():
    assert severity(GEN, generation_tokens_delta=50.0) == Severity.WARNING


def test_one_generated_token_per_request_is_critical_and_names_the_generate_handler():
    finding = analyze(
        GEN,
        generation_tokens_delta=24000.0,
        calls_by_handler={"/v1/rerank": 200.0, "/v1/completions": 1000.0},
    )
    assert finding is not None and finding.severity == Severity.CRITICAL
    assert "/v1/completions" in finding.detail
    flags = [(s.flag, s.proposed) for s in finding.suggestions]
    assert flags == [("client endpoint", "/v1/rerank or /score"), ("--runner", "pooling")]


# --- prefix cache -------------------------------------------------------------------------------------


def test_a_middling_hit_ratio_needs_no_explanation():
    assert severity(PREFIX) == Severity.OK


def test_a_high_hit_ratio_is_explained_as_repeated_prompts():
    # The s2 capture's numbers: 113-token pairs, 92 % hits, 1.09 M-token cache, 99 k prompt tokens/s.
    finding = analyze(
        PREFIX,
        prefix_hit_ratio=0.916,
        prompt_tokens_per_pair=112.7,
        kv_cache_size_tokens=1_094_464,
        prompt_tokens_per_s=98_895.0,
    )
    assert finding is not None and finding.severity == Severity.INFO
    assert "7 full 16-token blocks (99 % of it cacheable)" in finding.detail
    assert "about 92 % of pairs were exact repeats" in finding.detail
    assert finding.numbers["cache_turnover_s"] == pytest.approx(1_094_464 / 98_895.0)


def test_zero_hits_with_pairs_shorter_than_a_block_says_nothing_can_hit():
    finding = analyze(PREFIX, prefix_hit_ratio=0.0, prompt_tokens_per_pair=6.5)
    assert finding is not None and "less than one 16-token block" in finding.detail


def test_zero_hits_with_long_pairs_blames_the_short_shared_prefix_and_the_turnover():
    finding = analyze(PREFIX, prefix_hit_ratio=0.0, kv_cache_size_tokens=8192, prompt_tokens_per_s=200_000.0)
    assert finding is not None
    assert "shorter than one 16-token block" in finding.detail
    assert "41 ms" in finding.detail  # 8192 / 200k tokens/s


def test_prefix_caching_off_is_info_and_proposes_enabling_it():
    finding = analyze(PREFIX, enable_prefix_caching=False, prefix_hit_ratio=None)
    assert finding is not None and finding.severity == Severity.INFO
    assert finding.suggestions[0].flag == "--enable-prefix-caching"


def test_cacheable_share_counts_full_blocks_only():
    assert prefix_cache.cacheable_share(40.0, 16) == pytest.approx(32 / 40)
    assert prefix_cache.cacheable_share(10.0, 16) == 0.0


# --- cache-thrash (provisional) ----------------------------------------------------------------------


def test_normal_lookups_are_not_thrash():
    assert severity(THRASH) == Severity.OK


def test_lookups_at_twice_the_prompt_tokens_are_a_low_confidence_provisional_warning():
    finding = analyze(THRASH, prefix_queries_per_prompt_token=2.0)
    assert finding is not None and finding.severity == Severity.WARNING
    assert finding.provisional and finding.confidence == "low"
    assert "2.00 × prompt tokens" in finding.detail


def test_two_signals_together_are_critical():
    assert severity(THRASH, prefix_queries_per_prompt_token=2.0, preemptions_delta=12.0) == Severity.CRITICAL


def test_one_strong_signal_with_queue_far_above_inference_is_critical():
    assert severity(THRASH, preemptions_delta=3.0, queue_mean_s=0.2) == Severity.CRITICAL


def test_capacity_waits_with_an_empty_kv_cache_are_the_token_budget_not_thrash():
    finding = analyze(THRASH, waiting_capacity_max=53.0, kv_usage_max_ratio=0.0001)
    assert finding is not None and finding.severity == Severity.INFO
    assert "token budget" in finding.title


def test_capacity_waits_with_a_full_kv_cache_are_thrash():
    assert severity(THRASH, waiting_capacity_max=20.0, kv_usage_max_ratio=0.97) == Severity.WARNING


def test_a_kv_cache_that_fits_two_pairs_with_capacity_waits_is_thrash_at_medium_confidence():
    # The lab's starved run: 2,560 KV tokens, ~1,378-token pairs, one request per step, 14 waiting.
    finding = analyze(
        THRASH,
        kv_cache_size_tokens=2560,
        prompt_tokens_per_pair=1378.0,
        tokens_per_step_mean=1378.0,
        waiting_capacity_max=14.0,
        kv_usage_max_ratio=0.0,
        flags={"--num-gpu-blocks-override": "20"},
    )
    assert finding is not None and finding.severity == Severity.CRITICAL  # + one request per step
    assert (finding.confidence, finding.provisional) == ("medium", False)
    assert finding.numbers["kv_fits_pairs"] == pytest.approx(1.86, abs=0.01)
    assert (finding.suggestions[0].flag, finding.suggestions[0].direction) == (
        "--num-gpu-blocks-override",
        "remove",
    )


def test_a_small_kv_cache_without_capacity_waits_is_not_thrash():
    # The same 2,560-token cache at 2 calls/s of 120-token pairs: nothing waited (lab, healthy).
    assert severity(THRASH, kv_cache_size_tokens=2560, prompt_tokens_per_pair=1378.0) == Severity.OK


def test_capacity_waits_with_a_cache_of_many_pairs_stay_the_token_budget():
    # 1 GiB on the lab: 262,144 tokens = 190 pairs of 1,378 tokens; the waits are the full token budget.
    finding = analyze(
        THRASH, kv_cache_size_tokens=262144, prompt_tokens_per_pair=1378.0, waiting_capacity_max=12.0
    )
    assert finding is not None and finding.severity == Severity.INFO


def test_queue_far_above_inference_alone_is_not_thrash():
    assert severity(THRASH, queue_mean_s=1.0) == Severity.OK


def test_a_hand_capped_kv_cache_is_named_first():
    finding = analyze(
        THRASH,
        preemptions_delta=5.0,
        flags={"--num-gpu-blocks-override": "128"},
        flag_gpu_memory_utilization=0.9,
    )
    assert finding is not None
    assert [s.flag for s in finding.suggestions][:2] == [
        "--num-gpu-blocks-override",
        "--gpu-memory-utilization",
    ]
    assert finding.suggestions[1].proposed == "0.95"
