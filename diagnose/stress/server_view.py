"""The server's own view of the load window, from /metrics scraped just before and just after it.

Pure: two exposition texts in, numbers out. It sits beside the client's numbers so the gap between
them is visible: client latency ≫ vLLM's e2e latency means time went outside the engine (the API
server, the network, the client); e2e ≫ queue + inference means the engine core itself is busy.

Units differ and the report says so: a rerank call with N documents is N engine requests in vLLM
(DESIGN §2), so the engine's e2e p95 is per document, the client's per call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True, slots=True)
class ServerView:
    window_s: float | None
    engine_requests: float | None  # vllm:request_success_total delta (all finished_reason values)
    http_requests: float | None  # http_requests_total delta (every handler, /metrics included)
    # Each p95 is None when it falls in the first bucket; its `_at_most_s` then holds that bucket's bound
    # (derive.quantiles.first_bucket_bound: the quantile is "<= 0.3 s", nothing finer).
    queue_p95_s: float | None  # vllm:request_queue_time_seconds, bucket delta over the window, p95
    queue_mean_s: float | None  # same histogram, _sum/_count delta (exact, unlike the p95)
    e2e_p95_s: float | None  # vllm:e2e_request_latency_seconds, bucket delta, p95 (per engine request)
    e2e_mean_s: float | None
    inference_p95_s: float | None  # vllm:request_inference_time_seconds, bucket delta, p95
    inference_mean_s: float | None
    prompt_tokens_per_request: float | None  # prompt_tokens_total delta / engine requests
    queue_p95_at_most_s: float | None = None
    e2e_p95_at_most_s: float | None = None
    inference_p95_at_most_s: float | None = None
    # vllm:prefix_cache_hits_total / prefix_cache_queries_total deltas (tokens; blocks before 0.9): how
    # much of the load the cache answered. Fresh bodies per run keep an earlier run's bodies out of it.
    prefix_cache_hit_ratio: float | None = None
    prefix_cache_queries: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def server_view(before_text: str, after_text: str, before_unix: float, after_unix: float) -> ServerView:
    from diagnose.derive.quantiles import first_bucket_bound, histogram_quantile, mean
    from diagnose.derive.window import counter_delta, histogram_delta
    from diagnose.metrics import names
    from diagnose.metrics.exposition import parse_text

    before = parse_text(before_text, before_unix)
    after = parse_text(after_text, after_unix)
    notes: list[str] = []

    def delta(concept: str) -> float | None:
        return counter_delta(names.value(before, concept), names.value(after, concept))

    def summary(concept: str) -> tuple[float | None, float | None, float | None]:
        """(p95, p95 at most, mean) over the window; the mean (_sum/_count) is exact."""
        h = histogram_delta(names.histogram(before, concept), names.histogram(after, concept))
        if h is None:
            return None, None, None
        at_most = first_bucket_bound(0.95, h)  # the one first-bucket policy (derive/quantiles.py)
        p95 = None if at_most is not None else histogram_quantile(0.95, h)
        return p95, at_most, mean(h)

    engine_requests = delta("request_success")
    prompt_tokens = delta("prompt_tokens")
    if names.resolve(after, "request_success") is None:
        notes.append("no vllm: engine metrics in /metrics (--disable-log-stats, or not vLLM)")
    queue_p95, queue_le, queue_mean = summary("queue_time")
    e2e_p95, e2e_le, e2e_mean = summary("e2e_latency")
    inference_p95, inference_le, inference_mean = summary("inference_time")
    prefix_queries = delta("prefix_cache_queries")
    prefix_hits = delta("prefix_cache_hits")
    hit_ratio = prefix_hits / prefix_queries if prefix_hits is not None and prefix_queries else None
    if prefix_queries == 0:
        notes.append("no prefix-cache lookups in the window (prefix caching off, or no requests)")
    per_request = prompt_tokens / engine_requests if prompt_tokens is not None and engine_requests else None
    return ServerView(
        window_s=after_unix - before_unix,
        engine_requests=engine_requests,
        http_requests=delta("http_requests"),
        queue_p95_s=queue_p95,
        queue_mean_s=queue_mean,
        e2e_p95_s=e2e_p95,
        e2e_mean_s=e2e_mean,
        inference_p95_s=inference_p95,
        inference_mean_s=inference_mean,
        prompt_tokens_per_request=per_request,
        queue_p95_at_most_s=queue_le,
        e2e_p95_at_most_s=e2e_le,
        inference_p95_at_most_s=inference_le,
        prefix_cache_hit_ratio=hit_ratio,
        prefix_cache_queries=prefix_queries,
        notes=notes,
    )
