"""The scheduler and the KV cache: gauges over every dump, preemptions, prefix-cache lookups.

Gauges are the max (or mean) over every dump of the window, because a reranker's gauges are mostly 0 at
any one scrape (DESIGN §2: requests finish inside one engine step).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from diagnose.derive import window
from diagnose.derive.section import Section, build, num
from diagnose.metrics import names
from diagnose.metrics.exposition import ParsedDump

COUNTER_FIELDS = (
    "preemptions_delta",
    "prefix_queries_delta",
    "prefix_hits_delta",
    "prefix_hit_ratio",
    "prefix_queries_per_prompt_token",
    "prefix_cache_unit",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scheduler(Section):
    kv_usage_max_ratio: float | None = num("vllm:kv_cache_usage_perc (0-1), max over the dumps")
    waiting_max: float | None = num("vllm:num_requests_waiting, max over the dumps")
    waiting_mean: float | None = num("vllm:num_requests_waiting, mean over the dumps")
    running_max: float | None = num("vllm:num_requests_running, max over the dumps")
    waiting_capacity_max: float | None = num('vllm:num_requests_waiting_by_reason{reason="capacity"}, max')
    preemptions_delta: float | None = num("vllm:num_preemptions_total delta")
    prefix_queries_delta: float | None = num("vllm:prefix_cache_queries_total delta")
    prefix_hits_delta: float | None = num("vllm:prefix_cache_hits_total delta")
    prefix_hit_ratio: float | None = num("prefix hits delta / queries delta (V0: the hit-rate gauge)")
    prefix_queries_per_prompt_token: float | None = num(
        "prefix queries delta / prompt tokens delta (1.0 normally)"
    )
    prefix_cache_unit: str | None = num('"tokens" (current names) or "blocks" (names before 0.9)')


def derive_scheduler(parsed: Sequence[ParsedDump], counters: str | None = None) -> Scheduler:
    """The scheduler over every dump of the window. `counters` is the reason when the window has no
    two dumps to take counter deltas from (then only the gauges are read)."""
    why: dict[str, str] = {}

    def series(concept: str) -> list[float]:
        return [v for p in parsed if (v := names.value(p, concept)) is not None]

    kv, waiting, running = series("kv_usage"), series("waiting"), series("running")
    capacity = [
        by["capacity"]
        for p in parsed
        if (by := names.by_label(p, "waiting_by_reason", "reason")) is not None and "capacity" in by
    ]
    if not capacity:
        why["waiting_capacity_max"] = "no num_requests_waiting_by_reason (vLLM before 0.11)"
    values: dict[str, object] = {
        "kv_usage_max_ratio": max(kv) if kv else None,
        "waiting_max": max(waiting) if waiting else None,
        "waiting_mean": statistics.fmean(waiting) if waiting else None,
        "running_max": max(running) if running else None,
        "waiting_capacity_max": max(capacity) if capacity else None,
    }
    if counters is not None:
        for name in COUNTER_FIELDS:
            why[name] = counters
        return build(Scheduler, values, why)

    first, last = parsed[0], parsed[-1]
    queries = window.delta(first, last, "prefix_cache_queries")
    hits = window.delta(first, last, "prefix_cache_hits")
    hit_ratio = window.ratio(hits, queries)
    if queries == 0:
        why["prefix_hit_ratio"] = "no prefix-cache lookups in the window (prefix caching off, or no requests)"
    if hit_ratio is None and (rate := names.value(last, "prefix_cache_hit_rate")) is not None:
        hit_ratio = rate  # the V0 gauge: vLLM's own running hit rate, the best there is
    unit = names.prefix_cache_unit(last)
    per_token = None
    if unit == "tokens":
        per_token = window.ratio(queries, window.delta(first, last, "prompt_tokens"))
    elif queries is not None:
        why["prefix_cache_unit"] = (
            "gpu_prefix_cache_* counted blocks before vLLM 0.9, tokens after; no HELP says which"
        )
        why["prefix_queries_per_prompt_token"] = "prefix-cache queries may be counted in blocks, not tokens"
    values.update(
        preemptions_delta=window.delta(first, last, "preemptions"),
        prefix_queries_delta=queries,
        prefix_hits_delta=hits,
        prefix_hit_ratio=hit_ratio,
        prefix_queries_per_prompt_token=per_token,
        prefix_cache_unit=unit,
    )
    return build(Scheduler, values, why)
