"""The scheduler and the KV cache: gauges over every dump, preemptions, prefix-cache lookups.

Gauges are the max (or mean) over every dump of the window, because a reranker's gauges are mostly 0 at
any one scrape (DESIGN §2: requests finish inside one engine step). In fleet mode Prometheus computes the
same over every scrape of the window (Bundle.store_gauges).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from diagnose.derive import window
from diagnose.derive.section import Section, build, num
from diagnose.metrics import names
from diagnose.metrics.exposition import ParsedDump
from diagnose.readings import StoreGauge

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


# What SchedulerGauges folds over the dumps: its gauge -> (the concept of diagnose/metrics/names.py, the
# one label value it reads or None for the sum of every series). Fleet mode asks Prometheus for the same
# maxima and means over every scrape (fleet/queries.py) instead of rebuilding a dump per range step.
WINDOW_GAUGES: dict[str, tuple[str, tuple[str, str] | None]] = {
    "kv_usage": ("kv_usage", None),
    "waiting": ("waiting", None),
    "running": ("running", None),
    "waiting_capacity": ("waiting_by_reason", ("reason", "capacity")),
}


@dataclass(slots=True)
class RunningGauge:
    """Max and mean of one gauge over the dumps that had it, folded one dump at a time; or the metrics
    store's over every scrape (`store`), when the dumps do not carry it."""

    max: float = float("-inf")
    total: float = 0.0
    count: int = 0
    store: StoreGauge | None = None

    def add(self, value: float | None) -> None:
        if value is None or self.store is not None:
            return
        self.max = max(self.max, value)
        self.total += value
        self.count += 1

    @property
    def max_or_none(self) -> float | None:
        if self.store is not None:
            return self.store.max
        return self.max if self.count else None

    @property
    def mean(self) -> float | None:
        if self.store is not None:
            return self.store.mean
        return self.total / self.count if self.count else None


@dataclass(slots=True)
class SchedulerGauges:
    """The scheduler's gauges over every dump of the window (WINDOW_GAUGES); `add` is a dump_fold
    observer. `from_store` starts from the metrics store's window statistics (Bundle.store_gauges)."""

    kv_usage: RunningGauge = field(default_factory=RunningGauge)
    waiting: RunningGauge = field(default_factory=RunningGauge)
    running: RunningGauge = field(default_factory=RunningGauge)
    waiting_capacity: RunningGauge = field(default_factory=RunningGauge)

    @classmethod
    def from_store(cls, store: Mapping[str, StoreGauge]) -> SchedulerGauges:
        gauges = cls()
        for name, stat in store.items():
            getattr(gauges, name).store = stat
        return gauges

    def add(self, parsed: ParsedDump) -> None:
        for name, (concept, label) in WINDOW_GAUGES.items():
            gauge: RunningGauge = getattr(self, name)
            if label is None:
                gauge.add(names.value(parsed, concept))
            else:
                by = names.by_label(parsed, concept, label[0])
                if by is not None and label[1] in by:
                    gauge.add(by[label[1]])


def derive_scheduler(
    gauges: SchedulerGauges,
    first: ParsedDump | None,
    last: ParsedDump | None,
    counters: str | None = None,
) -> Scheduler:
    """The scheduler over the window: its gauges (folded over every dump) and the counters' deltas from the
    first and the last dump. `counters` is the reason when the window has no two dumps to take counter
    deltas from (then only the gauges are read)."""
    why: dict[str, str] = {}
    if gauges.waiting_capacity.max_or_none is None:
        why["waiting_capacity_max"] = "no num_requests_waiting_by_reason (vLLM before 0.11)"
    values: dict[str, object] = {
        "kv_usage_max_ratio": gauges.kv_usage.max_or_none,
        "waiting_max": gauges.waiting.max_or_none,
        "waiting_mean": gauges.waiting.mean,
        "running_max": gauges.running.max_or_none,
        "waiting_capacity_max": gauges.waiting_capacity.max_or_none,
    }
    if counters is not None or first is None or last is None:
        for name in COUNTER_FIELDS:
            why[name] = counters or "no /metrics dump"
        return build(Scheduler, values, why)

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
