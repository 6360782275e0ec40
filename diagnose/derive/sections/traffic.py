"""Traffic: calls (HTTP), engine requests (one per document of a rerank call), failures; counter deltas."""

from __future__ import annotations

from dataclasses import dataclass

from diagnose.derive import window
from diagnose.derive.section import Section, build, group, num
from diagnose.metrics.exposition import ParsedDump

# Handlers that are not the user's traffic: health checks, our own scrapes, model listing.
ADMIN_HANDLERS = frozenset(
    {
        "/metrics",
        "/health",
        "/ping",
        "/v1/models",
        "/version",
        "/load",
        "/is_sleeping",
        "/server_info",
        "none",
    }
)

_HTTP_FIELDS = ("http_handler", "calls_per_s", "calls_delta", "calls_by_handler", "docs_per_call")


@dataclass(frozen=True, slots=True, kw_only=True)
class Traffic(Section):
    http_handler: str | None = num("the non-admin handler with the most calls, e.g. /v1/rerank")
    calls_per_s: float | None = num("http_requests_total, non-admin handlers, delta / window")
    calls_delta: float | None = num("http_requests_total, non-admin handlers, delta")
    calls_by_handler: dict[str, float] | None = num("http_requests_total delta by handler (non-admin)")  # noqa: RUF009
    http_4xx_delta: float | None = num('http_requests_total{status="4xx"} delta')
    http_5xx_delta: float | None = num('http_requests_total{status="5xx"} delta')
    engine_requests_delta: float | None = num("vllm:request_success_total, all finished_reason, delta")
    engine_requests_per_s: float | None = num("vllm:request_success_total delta / window (pairs/s)")
    finished_by_reason: dict[str, float] | None = num("vllm:request_success_total delta by finished_reason")  # noqa: RUF009
    failed_requests_delta: float | None = num("finished_reason error + abort, delta")
    admission_rejections_delta: float | None = num("vllm:admission_rejections_total delta (0.32+)")
    docs_per_call: float | None = num("engine requests delta / calls delta (N documents = N requests)")


_ENGINE_FIELDS = (
    "engine_requests_delta",
    "engine_requests_per_s",
    "finished_by_reason",
    "failed_requests_delta",
    "admission_rejections_delta",
    "docs_per_call",
)


def derive_traffic(
    first: ParsedDump, last: ParsedDump, window_s: float | None, *, no_engine: str | None = None
) -> Traffic:
    """Traffic between two dumps `window_s` apart. `no_engine` is the reason when /metrics has no vllm:
    families (then only the HTTP instrumentator's counters are read)."""
    why: dict[str, str] = {}
    values: dict[str, object] = {}
    engine_requests: float | None = None
    if no_engine is not None:
        group(why, _ENGINE_FIELDS, no_engine)
    else:
        reasons = window.label_deltas(first, last, "request_success", "finished_reason")
        values["finished_by_reason"] = reasons
        if reasons is not None:
            engine_requests = sum(reasons.values())
            values["failed_requests_delta"] = reasons.get("error", 0.0) + reasons.get("abort", 0.0)
        values["engine_requests_delta"] = engine_requests
        values["engine_requests_per_s"] = window.rate(engine_requests, window_s)
        values["admission_rejections_delta"] = window.delta(first, last, "admission_rejections")
        why["admission_rejections_delta"] = "vllm:admission_rejections_total is exported from vLLM 0.32 on"

    by_handler = window.label_deltas(first, last, "http_requests", "handler")
    if by_handler is None:
        group(
            why,
            _HTTP_FIELDS,
            "no http_requests_total (vLLM before 0.8.3, or the HTTP instrumentator is off)",
        )
        return build(Traffic, values, why)
    user = {h: d for h, d in by_handler.items() if h not in ADMIN_HANDLERS}
    calls = sum(user.values())
    statuses = window.label_deltas(first, last, "http_requests", "status") or {}
    values.update(
        calls_by_handler=user,
        calls_delta=calls,
        calls_per_s=window.rate(calls, window_s),
        http_4xx_delta=statuses.get("4xx", 0.0),
        http_5xx_delta=statuses.get("5xx", 0.0),
        docs_per_call=window.ratio(engine_requests, calls),
    )
    busiest = max(user.items(), key=lambda kv: kv[1], default=None)
    if busiest is None or busiest[1] <= 0:
        group(why, ["http_handler", "docs_per_call"], "no calls in the window")
    else:
        values["http_handler"] = busiest[0]
    return build(Traffic, values, why)
