"""Latency: vLLM's per-request histograms and the HTTP server's, bucket delta over the window.

One policy for a quantile that falls in a histogram's first bucket (`quantiles.first_bucket_bound`): it
is unknown, with the bound as the reason; the mean (sum/count) is exact and stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from diagnose.derive import quantiles, window
from diagnose.derive.section import Section, build, group, num
from diagnose.metrics.exposition import ParsedDump
from diagnose.metrics.names import Histogram
from diagnose.readings import StoreQuantile

NO_REQUEST = "no request finished in the window"


@dataclass(frozen=True, slots=True, kw_only=True)
class Latency(Section):
    queue_p95_s: float | None = num("vllm:request_queue_time_seconds, bucket delta over the window, p95")
    queue_mean_s: float | None = num("vllm:request_queue_time_seconds, sum/count delta")
    inference_mean_s: float | None = num("vllm:request_inference_time_seconds, sum/count delta")
    inference_p95_s: float | None = num("vllm:request_inference_time_seconds, bucket delta, p95")
    prefill_mean_s: float | None = num("vllm:request_prefill_time_seconds, sum/count delta")
    e2e_p95_s: float | None = num("vllm:e2e_request_latency_seconds, bucket delta, p95 (per pair)")
    e2e_mean_s: float | None = num("vllm:e2e_request_latency_seconds, sum/count delta")
    http_p95_s: float | None = num("http_request_duration_highr_seconds, bucket delta, p95 (per call)")
    http_mean_s: float | None = num("http_request_duration_seconds{handler}, sum/count delta (per call)")


@dataclass(frozen=True, slots=True)
class Summary:
    """A histogram over the window: a quantile, the mean, and the first-bucket bound when the quantile
    fell inside it (then `quantile` is None)."""

    quantile: float | None
    mean: float | None
    at_most: float | None = None


def summarize(h: Histogram | None, q: float = 0.95, store: StoreQuantile | None = None) -> Summary:
    """The one reading of a histogram delta: (quantile, mean), the quantile unknown in the first bucket.
    `store` is the quantile the metrics store computed, where the buckets were not fetched (fleet mode);
    the mean is the delta's either way."""
    if h is None or not h.count > 0:
        return Summary(None, None)
    if store is not None and store.q == q:
        at_most = quantiles.first_bucket_bound_of(store.value, store.first_bucket_le)
        return Summary(None if at_most is not None else store.value, quantiles.mean(h), at_most)
    return Summary(quantiles.resolved_quantile(q, h), quantiles.mean(h), quantiles.first_bucket_bound(q, h))


def _p95(name: str, s: Summary, why: dict[str, str]) -> float | None:
    if s.at_most is not None:
        why[name] = (
            f"inside the histogram's first bucket (≤ {s.at_most:g}): too fine to resolve; see the mean"
        )
    return s.quantile


def derive_latency(
    first: ParsedDump,
    last: ParsedDump,
    handler: str | None,
    store_quantiles: Mapping[str, StoreQuantile] | None = None,
) -> Latency:
    """Latency over the window between two dumps; `handler` is the serving HTTP handler (Traffic's);
    `store_quantiles` the quantiles Prometheus computed (fleet mode), by concept."""
    why: dict[str, str] = {}
    store = store_quantiles or {}

    def of(concept: str) -> Summary:
        return summarize(window.hist(first, last, concept), store=store.get(concept))

    queue_h = window.hist(first, last, "queue_time")
    queue = summarize(queue_h, store=store.get("queue_time"))
    inference = of("inference_time")
    e2e = of("e2e_latency")
    values: dict[str, object] = {
        "queue_p95_s": _p95("queue_p95_s", queue, why),
        "queue_mean_s": queue.mean,
        "inference_p95_s": _p95("inference_p95_s", inference, why),
        "inference_mean_s": inference.mean,
        "prefill_mean_s": summarize(window.hist(first, last, "prefill_time")).mean,
        "e2e_p95_s": _p95("e2e_p95_s", e2e, why),
        "e2e_mean_s": e2e.mean,
    }
    if queue_h is not None and queue_h.count <= 0:
        group(why, list(values), NO_REQUEST)
    if handler is None:
        group(why, ["http_p95_s", "http_mean_s"], "no calls in the window")
    else:
        # The mean from the handler's own histogram (exact: sum/count). The p95 from the 20-bucket "highr"
        # histogram: the handler-labelled one has only 0.1/0.5/1/+Inf buckets, useless above 1 s. "highr"
        # has no handler label, but /metrics is not instrumented and health checks are few and fast.
        labelled = summarize(window.hist(first, last, "http_duration", handler=handler))
        highr = of("http_duration_highr")
        values["http_mean_s"] = labelled.mean
        p95 = _p95("http_p95_s", highr, why)
        values["http_p95_s"] = p95 if p95 is not None else labelled.quantile
    return build(Latency, values, why)
