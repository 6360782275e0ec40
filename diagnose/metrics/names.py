"""The concept table: what we want to know -> every name vLLM has exposed it under, newest first.

vLLM renamed metrics across versions and ran two engines (V0: vllm/engine/metrics.py, V1:
vllm/v1/metrics/loggers.py) side by side for a while. Rules ask for a concept ("kv_usage") and this
module finds whichever name the server in front of us really exposes.

Where the names come from (read from vLLM's source with the project's code search; versions are the
release series in which that source was seen):
- V0 `vllm/engine/metrics.py`, 0.7 series (the copy read has `VllmConfig`, `iteration_tokens_total` and no
  "DEPRECATED" notes, which arrived in 0.8): gauges `vllm:num_requests_running`, `vllm:num_requests_waiting`,
  `vllm:gpu_cache_usage_perc`, `vllm:gpu_prefix_cache_hit_rate` ("GPU prefix cache block hit rate");
  counters `vllm:num_preemptions_total`, `vllm:prompt_tokens_total`, `vllm:generation_tokens_total`,
  `vllm:request_success_total{finished_reason}`; histograms `vllm:e2e_request_latency_seconds`,
  `vllm:request_queue_time_seconds`, `vllm:request_inference_time_seconds`,
  `vllm:request_prefill_time_seconds`, `vllm:time_in_queue_requests`, `vllm:request_prompt_tokens`,
  `vllm:iteration_tokens_total`; gauge `vllm:cache_config_info` (labels = CacheConfig fields).
  Note: V0 exposed BOTH `time_in_queue_requests` (PR #9659) and `request_queue_time_seconds` (PR #4464)
  from 0.6.x on; vLLM's metrics design doc calls the first a duplicate, deprecated in 0.8 and hidden
  after. No release had only the old one, so it is only a fallback here.
- V1 `vllm/v1/metrics/loggers.py`, 0.8 series: `vllm:gpu_cache_usage_perc`, counters
  `vllm:gpu_prefix_cache_queries` / `vllm:gpu_prefix_cache_hits` "in terms of number of queried/cached
  blocks", labels `model_name`, `engine`.
- V1 loggers.py, 0.9.x/0.10: the same counters "in terms of number of queried tokens"; 0.9.2 added
  `vllm:kv_cache_usage_perc` and `vllm:prefix_cache_{queries,hits}` and marked the `gpu_` names
  DEPRECATED ("Deprecated in 0.9.2 ... With 0.11.x you can enable with
  --show-hidden-metrics-for-version=0.10", "TODO: remove in 0.12.0").
- vLLM 0.26 (the H200 captures in ../shared/captures) and 0.32 (the CPU lab): the current names, plus
  `vllm:num_requests_waiting_by_reason{reason}`; 0.32 adds `vllm:admission_rejections_total`.
- `http_requests_total{handler,method,status}` and `http_request_duration_seconds{handler,method}` /
  `http_request_duration_highr_seconds` come from prometheus-fastapi-instrumentator (vLLM >= 0.8.3).

Both spellings are accepted: `vllm:x` as /metrics serves it and `vllm_x` as Prometheus >= 2.x stores it
when it scrapes prometheus_client >= 0.23 (UTF-8 names), e.g. in a federated dump.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Literal

from diagnose.metrics.exposition import LabelSet, ParsedDump

Kind = Literal["gauge", "counter", "histogram", "info"]


@dataclass(frozen=True, slots=True)
class Concept:
    kind: Kind
    names: tuple[str, ...]  # family names as the exposition writes them (counters with _total), newest first
    unit: str  # what one unit of the value is: "ratio", "seconds", "requests", "tokens", ...


CONCEPTS: dict[str, Concept] = {
    # 0..1 ratio despite the "_perc" suffix (HELP: "1 means 100 percent usage").
    "kv_usage": Concept("gauge", ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"), "ratio"),
    "queue_time": Concept(
        "histogram", ("vllm:request_queue_time_seconds", "vllm:time_in_queue_requests"), "seconds"
    ),
    "e2e_latency": Concept("histogram", ("vllm:e2e_request_latency_seconds",), "seconds"),
    "inference_time": Concept("histogram", ("vllm:request_inference_time_seconds",), "seconds"),
    "prefill_time": Concept("histogram", ("vllm:request_prefill_time_seconds",), "seconds"),
    "request_prompt_tokens": Concept("histogram", ("vllm:request_prompt_tokens",), "tokens"),
    "iteration_tokens": Concept("histogram", ("vllm:iteration_tokens_total",), "tokens"),
    "prompt_tokens": Concept("counter", ("vllm:prompt_tokens_total",), "tokens"),
    "generation_tokens": Concept("counter", ("vllm:generation_tokens_total",), "tokens"),
    "running": Concept("gauge", ("vllm:num_requests_running",), "requests"),
    "waiting": Concept("gauge", ("vllm:num_requests_waiting",), "requests"),
    "waiting_by_reason": Concept("gauge", ("vllm:num_requests_waiting_by_reason",), "requests"),
    "preemptions": Concept("counter", ("vllm:num_preemptions_total",), "preemptions"),
    # Tokens for the current names; the old gpu_ names counted blocks before 0.9 (see prefix_cache_unit).
    "prefix_cache_queries": Concept(
        "counter", ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"), "tokens|blocks"
    ),
    "prefix_cache_hits": Concept(
        "counter", ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"), "tokens|blocks"
    ),
    "prefix_cache_hit_rate": Concept("gauge", ("vllm:gpu_prefix_cache_hit_rate",), "ratio"),
    "request_success": Concept("counter", ("vllm:request_success_total",), "requests"),
    "http_requests": Concept("counter", ("http_requests_total",), "requests"),
    # `http_request_duration_seconds` has the handler label but only 4 buckets (0.1, 0.5, 1, +Inf);
    # `http_request_duration_highr_seconds` has 20 buckets and no labels: use it for quantiles.
    "http_duration": Concept("histogram", ("http_request_duration_seconds",), "seconds"),
    "http_duration_highr": Concept("histogram", ("http_request_duration_highr_seconds",), "seconds"),
    "admission_rejections": Concept("counter", ("vllm:admission_rejections_total",), "requests"),
    "cache_config": Concept("info", ("vllm:cache_config_info",), ""),
    "process_cpu": Concept("counter", ("process_cpu_seconds_total",), "seconds"),
}


@dataclass(frozen=True, slots=True)
class Histogram:
    buckets: tuple[tuple[float, float], ...]  # (le upper bound, cumulative count), ascending, last is +inf
    count: float
    sum: float  # NaN when the exposition had no _sum


def spellings(name: str) -> tuple[str, ...]:
    """`vllm:x` and `vllm_x` (how Prometheus 2.x re-stores colons); other names have one spelling."""
    if name.startswith("vllm:"):
        return (name, "vllm_" + name[5:])
    return (name,)


def _present_name(parsed: ParsedDump, kind: Kind, family: str) -> bool:
    probe = family + "_bucket" if kind == "histogram" else family
    return probe in parsed.samples


def resolve(parsed: ParsedDump, concept: str) -> str | None:
    """The family name under which this dump exposes `concept`, or None.

    A name with samples wins over a newer name that is only declared (HELP/TYPE lines with no series,
    which happens for labelled metrics before their first observation).
    """
    spec = CONCEPTS[concept]
    candidates = _candidates(concept)
    for family in candidates:
        if _present_name(parsed, spec.kind, family):
            return family
    for family in candidates:
        if family in parsed.types:
            return family
    return None


@cache
def _candidates(concept: str) -> tuple[str, ...]:
    """Every family name of a concept, in the table's order, each in both spellings."""
    return tuple(s for name in CONCEPTS[concept].names for s in spellings(name))


def _matches(labels: LabelSet, match: dict[str, str]) -> bool:
    if not match:
        return True
    found = 0
    for key, val in labels:
        want = match.get(key)
        if want is not None:
            if want != val:
                return False
            found += 1
    return found == len(match)


def value(parsed: ParsedDump, concept: str, **match: str) -> float | None:
    """Sum over the series whose labels match `match`; None when the concept is absent or nothing matches.

    For a histogram concept this is the number of observations (the `_count` series).
    """
    family = resolve(parsed, concept)
    if family is None:
        return None
    sample = family + "_count" if CONCEPTS[concept].kind == "histogram" else family
    series = parsed.samples.get(sample)
    if not series:
        return None
    total = 0.0
    hit = False
    for labels, v in series.items():
        if _matches(labels, match):
            total += v
            hit = True
    return total if hit else None


def by_label(parsed: ParsedDump, concept: str, label: str, **match: str) -> dict[str, float] | None:
    """Values summed per value of `label` (e.g. finished_reason -> count); None when the concept is absent.

    An empty dict means the family is there but no series carries `label` (and matches `match`).
    """
    family = resolve(parsed, concept)
    if family is None:
        return None
    sample = family + "_count" if CONCEPTS[concept].kind == "histogram" else family
    out: dict[str, float] = {}
    for labels, v in parsed.samples.get(sample, {}).items():
        if not _matches(labels, match):
            continue
        key = dict(labels).get(label)
        if key is not None:
            out[key] = out.get(key, 0.0) + v
    return out


def _le(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def histogram(parsed: ParsedDump, concept: str, **match: str) -> Histogram | None:
    """The concept's histogram summed over all matching series (engines, model names, API servers).

    Buckets are added by their `le` bound. When series disagree on the bounds (two engines started with
    different --max-model-len, say) only the bounds every series has are kept: adding cumulative counts
    at a bound one series lacks would be wrong. None when absent or no series matches.
    """
    family = resolve(parsed, concept)
    if family is None or CONCEPTS[concept].kind != "histogram":
        return None
    bucket_series = parsed.samples.get(family + "_bucket")
    if not bucket_series:
        return None
    groups: dict[LabelSet, dict[float, float]] = {}
    for labels, v in bucket_series.items():
        if not _matches(labels, match):
            continue
        le_text = None
        rest: list[tuple[str, str]] = []
        for label, val in labels:
            if label == "le":
                le_text = val
            else:
                rest.append((label, val))
        bound = _le(le_text) if le_text is not None else None
        if bound is None or math.isnan(bound):
            continue
        groups.setdefault(tuple(rest), {})[bound] = v
    if not groups:
        return None

    counts = parsed.samples.get(family + "_count", {})
    sums = parsed.samples.get(family + "_sum", {})
    common: set[float] | None = None
    total_count = 0.0
    total_sum = 0.0
    for key, buckets in groups.items():
        count = counts.get(key)
        if math.inf not in buckets:
            if count is None:  # no +Inf bucket and no _count: this series says nothing about the total
                continue
            buckets[math.inf] = count
        total_count += count if count is not None else buckets[math.inf]
        total_sum += sums.get(key, math.nan)
        common = set(buckets) if common is None else common & set(buckets)
    if not common:
        return None
    summed = tuple(
        (bound, math.fsum(b[bound] for b in groups.values() if math.inf in b)) for bound in sorted(common)
    )
    return Histogram(buckets=summed, count=total_count, sum=total_sum)


def info_labels(parsed: ParsedDump, concept: str) -> dict[str, str] | None:
    """The labels of an info-style gauge (e.g. `vllm:cache_config_info`); the first series when there are
    several (one per engine). Read keys by name and ignore the unknown ones: vLLM adds fields often."""
    family = resolve(parsed, concept)
    if family is None:
        return None
    series = parsed.samples.get(family)
    if not series:
        return None
    return dict(min(series))


def prefix_cache_unit(parsed: ParsedDump) -> Literal["tokens", "blocks"] | None:
    """What the prefix-cache counters count in this dump.

    `vllm:prefix_cache_*` (>= 0.9.2) count tokens. The old `vllm:gpu_prefix_cache_*` counted blocks in
    0.7.3-0.8.x and tokens from 0.9; their HELP text says which ("number of queried blocks" / "tokens").
    Without HELP text the old names' unit is unknown: None.
    """
    family = resolve(parsed, "prefix_cache_queries")
    if family is None:
        return None
    base = family.removesuffix("_total")
    if base.endswith(":prefix_cache_queries") or base.endswith("vllm_prefix_cache_queries"):
        return "tokens"
    doc = parsed.help.get(family) or parsed.help.get(base) or ""
    if "block" in doc:
        return "blocks"
    if "token" in doc:
        return "tokens"
    return None
