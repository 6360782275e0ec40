"""Evidence: every number the rules read, derived from one collection window (pure, no I/O).

Counters and histograms come from the first and the last /metrics dump of the window (deltas, reset-aware);
gauges are the max (or mean) over every dump, because a reranker's gauges are mostly 0 at any one scrape
(DESIGN §2: requests finish inside one engine step). GPU and per-process CPU come from the samples taken
inside the window. Unknown is None, never 0, and `missing` says why for every None.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields

from diagnose.derive import quantiles, window
from diagnose.derive.flags import parse_flags
from diagnose.derive.processes import cpu_by_role
from diagnose.metrics import names
from diagnose.metrics.exposition import ParsedDump, parse_dump
from diagnose.readings import Bundle, GpuSample, MetricsDump, ProcessSample, SocketCensus

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


@dataclass(frozen=True, slots=True)
class ClientView:
    """Latency as the load client saw it (a stress report, or a capture's load_result.json)."""

    mean_s: float | None
    p95_s: float | None
    calls: int | None = None


@dataclass(slots=True)
class Evidence:
    # --- the window -------------------------------------------------------------------------------
    window_s: float | None = None  # last /metrics dump time minus the first
    dumps: int = 0  # /metrics dumps in the window
    # --- latency: vLLM histograms, bucket delta over the window ----------------------------------
    queue_p95_s: float | None = None  # vllm:request_queue_time_seconds, p95
    queue_mean_s: float | None = None  # same, sum/count
    inference_mean_s: float | None = None  # vllm:request_inference_time_seconds, sum/count
    inference_p95_s: float | None = None  # same, p95
    prefill_mean_s: float | None = None  # vllm:request_prefill_time_seconds, sum/count
    e2e_p95_s: float | None = None  # vllm:e2e_request_latency_seconds, p95 (per engine request = per pair)
    e2e_mean_s: float | None = None  # same, sum/count
    # --- HTTP (prometheus-fastapi-instrumentator), the serving handler only -------------------
    http_handler: str | None = None  # the non-admin handler with the most calls, e.g. /v1/rerank
    http_p95_s: float | None = None  # http_request_duration_seconds{handler}, p95 (per call, all its docs)
    http_mean_s: float | None = None  # same, sum/count
    calls_per_s: float | None = None  # http_requests_total, non-admin handlers, delta / window
    calls_delta: float | None = None  # same, delta
    calls_by_handler: dict[str, float] | None = None  # http_requests_total delta by handler (non-admin)
    http_4xx_delta: float | None = None  # http_requests_total{status="4xx"} delta
    http_5xx_delta: float | None = None  # http_requests_total{status="5xx"} delta
    # --- engine requests (one per document of a rerank call) ---------------------------------
    engine_requests_delta: float | None = None  # vllm:request_success_total, all finished_reason, delta
    engine_requests_per_s: float | None = None  # same / window
    finished_by_reason: dict[str, float] | None = None  # vllm:request_success_total delta by finished_reason
    failed_requests_delta: float | None = None  # finished_reason error + abort, delta
    admission_rejections_delta: float | None = None  # vllm:admission_rejections_total delta (0.32+)
    docs_per_call: float | None = None  # engine requests delta / calls delta (DESIGN §2: N docs = N requests)
    # --- request shape --------------------------------------------------------------------------
    prompt_tokens_delta: float | None = None  # vllm:prompt_tokens_total delta
    prompt_tokens_per_s: float | None = None  # same / window
    prompt_tokens_per_pair: float | None = (
        None  # prompt tokens delta / vllm:request_prompt_tokens count delta
    )
    prompt_tokens_p99: float | None = None  # vllm:request_prompt_tokens, bucket delta, p99
    prompt_tokens_max_le: float | None = None  # upper bound of the highest non-empty finite bucket (same)
    generation_tokens_delta: float | None = None  # vllm:generation_tokens_total delta (~0 for a reranker)
    tokens_per_step_mean: float | None = None  # vllm:iteration_tokens_total histogram, sum/count
    engine_steps_per_s: float | None = None  # same, count / window
    # --- prefix cache -------------------------------------------------------------------------
    prefix_queries_delta: float | None = None  # vllm:prefix_cache_queries_total delta
    prefix_hits_delta: float | None = None  # vllm:prefix_cache_hits_total delta
    prefix_hit_ratio: float | None = None  # hits delta / queries delta
    prefix_queries_per_prompt_token: float | None = None  # queries delta / prompt tokens delta (1.0 normally)
    prefix_cache_unit: str | None = None  # "tokens" (current names) or "blocks" (names before 0.9)
    # --- scheduler gauges, over every dump -------------------------------------------------------
    kv_usage_max_ratio: float | None = None  # vllm:kv_cache_usage_perc (0-1), max
    waiting_max: float | None = None  # vllm:num_requests_waiting, max
    waiting_mean: float | None = None  # same, mean
    running_max: float | None = None  # vllm:num_requests_running, max
    waiting_capacity_max: float | None = None  # vllm:num_requests_waiting_by_reason{reason="capacity"}, max
    preemptions_delta: float | None = None  # vllm:num_preemptions_total delta
    # --- GPU (NVML or nvidia-smi), the busiest GPU over the window --------------------------------
    gpu_count: int | None = None
    gpu_util_mean_pct: float | None = None  # utilization.gpu: share of time a kernel ran, NOT SM occupancy
    gpu_util_median_pct: float | None = None  # same, median ("steady" when the median is high)
    gpu_util_max_pct: float | None = None
    gpu_power_mean_w: float | None = None
    gpu_power_max_w: float | None = None
    gpu_memory_used_max_mib: float | None = None  # says little: vLLM reserves the KV cache at startup
    gpu_sm_clock_min_mhz: float | None = None
    # --- CPU by process role (percent of ONE core), samples inside the window ---------------------
    api_server_count: int | None = None  # API-server processes seen
    api_server_cpu_mean_pct: float | None = None  # the busiest API server, mean
    api_server_cpu_max_pct: float | None = None  # the busiest API server, max
    api_server_cpu_metrics_pct: float | None = None  # process_cpu_seconds_total rate (single API server only)
    engine_core_cpu_mean_pct: float | None = None  # VLLM::EngineCore (busiest), mean
    engine_core_cpu_max_pct: float | None = None
    worker_cpu_mean_pct: float | None = None  # VLLM::Worker (CPU builds; spin-waits, not saturation)
    host_cpu_mean_pct: float | None = None  # HOST_TOTAL row: percent of ALL cores
    host_cpu_max_pct: float | None = None
    # --- sockets on the serving port -------------------------------------------------------------
    serving_port: int | None = None
    time_wait_on_port_max: float | None = None
    established_on_port_max: float | None = None
    # --- client view (a stress report), when there is one ----------------------------------------
    client_mean_s: float | None = None
    client_p95_s: float | None = None
    # --- bypass (step 4: the same pairs on the model directly), when a bypass report is in the bundle -
    bypass_direct_pairs_per_s: float | None = (
        None  # bypass.json overhead: the model alone, one batch at a time
    )
    bypass_served_pairs_per_s: float | None = None  # the same pairs and batches through the server
    bypass_overhead_share: float | None = None  # (served - direct time) / served time, 0-1
    # --- disk -------------------------------------------------------------------------------------
    disk_busy_max_pct: float | None = None  # not collected yet: the io rule skips with the reason
    # --- configuration: /v1/models, vllm:cache_config_info labels, the command line ---------------
    max_model_len: int | None = None
    block_size: int | None = None
    enable_prefix_caching: bool | None = None
    num_gpu_blocks: int | None = None
    kv_cache_size_tokens: int | None = None  # cache_config_info, or num_gpu_blocks x block_size
    gpu_memory_utilization: float | None = None
    flags_known: bool = False  # the command line was available
    flags: dict[str, str] = field(default_factory=dict)  # "--flag" -> value ("true" for a bare switch)
    flag_api_server_count: int | None = None  # 1 when the flags are known and do not set it (the default)
    flag_data_parallel_size: int | None = None  # 1 when known and unset
    flag_max_num_seqs: int | None = None
    flag_max_num_batched_tokens: int | None = None
    flag_max_model_len: int | None = None
    flag_gpu_memory_utilization: float | None = None
    flag_enable_prefix_caching: bool | None = None  # True/False only when the flag is given
    flag_disable_log_stats: bool | None = None
    # --- why fields are None ----------------------------------------------------------------------
    missing: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """Every field but `missing`, in declaration order (the JSON renderer relies on the order)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "missing"}


# ------------------------------------------------------------------------------------------------
# Groups of fields that share one reason for being unknown.
# vLLM's per-request latency histograms: unknown together when no request finished in the window.
_LATENCY_FIELDS = [
    "queue_p95_s",
    "queue_mean_s",
    "inference_mean_s",
    "inference_p95_s",
    "prefill_mean_s",
    "e2e_p95_s",
    "e2e_mean_s",
]
_METRIC_FIELDS = [
    *_LATENCY_FIELDS,
    "http_handler",
    "http_p95_s",
    "http_mean_s",
    "calls_per_s",
    "calls_delta",
    "calls_by_handler",
    "http_4xx_delta",
    "http_5xx_delta",
    "engine_requests_delta",
    "engine_requests_per_s",
    "finished_by_reason",
    "failed_requests_delta",
    "admission_rejections_delta",
    "docs_per_call",
    "prompt_tokens_delta",
    "prompt_tokens_per_s",
    "prompt_tokens_per_pair",
    "prompt_tokens_p99",
    "prompt_tokens_max_le",
    "generation_tokens_delta",
    "tokens_per_step_mean",
    "engine_steps_per_s",
    "prefix_queries_delta",
    "prefix_hits_delta",
    "prefix_hit_ratio",
    "prefix_queries_per_prompt_token",
    "prefix_cache_unit",
    "preemptions_delta",
    "api_server_cpu_metrics_pct",
]
_GAUGE_FIELDS = ["kv_usage_max_ratio", "waiting_max", "waiting_mean", "running_max", "waiting_capacity_max"]
_CONFIG_FIELDS = [
    "block_size",
    "enable_prefix_caching",
    "num_gpu_blocks",
    "kv_cache_size_tokens",
    "gpu_memory_utilization",
]
_GPU_FIELDS = [
    "gpu_count",
    "gpu_util_mean_pct",
    "gpu_util_median_pct",
    "gpu_util_max_pct",
    "gpu_power_mean_w",
    "gpu_power_max_w",
    "gpu_memory_used_max_mib",
    "gpu_sm_clock_min_mhz",
]
_PROCESS_FIELDS = [
    "api_server_count",
    "api_server_cpu_mean_pct",
    "api_server_cpu_max_pct",
    "engine_core_cpu_mean_pct",
    "engine_core_cpu_max_pct",
    "worker_cpu_mean_pct",
]
_HOST_FIELDS = ["host_cpu_mean_pct", "host_cpu_max_pct"]
_SOCKET_FIELDS = ["time_wait_on_port_max", "established_on_port_max"]
_FLAG_FIELDS = [
    "flag_api_server_count",
    "flag_data_parallel_size",
    "flag_max_num_seqs",
    "flag_max_num_batched_tokens",
    "flag_max_model_len",
    "flag_gpu_memory_utilization",
    "flag_enable_prefix_caching",
    "flag_disable_log_stats",
]


def client_view_from_stress(report: dict | None) -> ClientView | None:
    """The client's latency from a bundle's stress.json (LoadReport.to_dict()), when it has any."""
    latency = (report or {}).get("latency") or {}
    if not latency.get("count"):
        return None
    return ClientView(mean_s=latency.get("mean_s"), p95_s=latency.get("p95_s"), calls=latency.get("count"))


def build_evidence(bundle: Bundle, client: ClientView | None = None) -> Evidence:
    """All the numbers of one window. Pure: the same bundle always gives the same Evidence."""
    ev = Evidence()
    why: dict[str, str] = {}  # field -> reason, for fields that stay None
    dumps = sorted(bundle.dumps, key=lambda d: d.t_unix)
    ev.dumps = len(dumps)
    parsed = [parse_dump(d) for d in dumps]
    span = _window(dumps)

    _flags(ev, bundle.server.flags, why)
    if not parsed:
        _group(
            why, _METRIC_FIELDS + _GAUGE_FIELDS + _CONFIG_FIELDS, _issue(bundle, "vllm") or "no /metrics dump"
        )
    elif not any(_has_engine_metrics(p) for p in parsed):
        ev.window_s = span
        reason = "no vllm: families in /metrics: the server runs with --disable-log-stats (or is not vLLM)"
        _group(why, _METRIC_FIELDS + _GAUGE_FIELDS + _CONFIG_FIELDS, reason)
        _http(ev, parsed[0], parsed[-1], why)  # the HTTP instrumentator still reports
    else:
        if span is None:
            _group(
                why, _METRIC_FIELDS, "one scrape: counters need two (a window of at least two /metrics dumps)"
            )
        else:
            ev.window_s = span
            _counters(ev, parsed[0], parsed[-1], why)
            _http(ev, parsed[0], parsed[-1], why)
        _gauges(ev, parsed, why)
        _cache_config(ev, parsed[-1], why)

    ev.max_model_len = bundle.server.max_model_len or ev.flag_max_model_len
    if ev.max_model_len is None:
        why["max_model_len"] = "neither /v1/models nor the command line gave max_model_len"

    in_window = _in_window(dumps)
    _gpu(ev, [s for s in bundle.gpu if in_window(s.t_unix)] or bundle.gpu, bundle, why)
    bounds = (dumps[0].t_unix, dumps[-1].t_unix + 1.0) if span is not None else (None, None)
    _processes(ev, bundle.processes, bounds, bundle, why)
    _sockets(ev, [s for s in bundle.sockets if in_window(s.t_unix)] or bundle.sockets, bundle, why)

    client = client or client_view_from_stress(bundle.stress)
    if client is not None:
        ev.client_mean_s, ev.client_p95_s = client.mean_s, client.p95_s
    why.setdefault("client_mean_s", "no stress report: run `rerank-doctor stress` for the client's view")
    why.setdefault("client_p95_s", why["client_mean_s"])
    _bypass(ev, bundle.bypass, why)
    why["disk_busy_max_pct"] = "disk IO is not collected yet"

    ev.missing = {
        name: why.get(name, "not reported by this server")
        for name, value in ev.as_dict().items()
        if value is None
    }
    return ev


def _bypass(ev: Evidence, report: dict | None, why: dict[str, str]) -> None:
    """Step 4's numbers: the served-vs-direct comparison measured against the server (--url) first."""
    fields = ("bypass_direct_pairs_per_s", "bypass_served_pairs_per_s", "bypass_overhead_share")
    rows = [r for r in (report or {}).get("overhead") or [] if isinstance(r, dict)]
    rows.sort(key=lambda r: r.get("source") != "url")  # same pairs, same batches: the cleanest comparison
    if not rows:
        _group(why, list(fields), "no bypass report: run `rerank-doctor bypass --url URL --save BUNDLE`")
        return
    row = rows[0]
    ev.bypass_direct_pairs_per_s = row.get("direct_pairs_per_s")
    ev.bypass_served_pairs_per_s = row.get("served_pairs_per_s")
    ev.bypass_overhead_share = row.get("share_of_served")


# ------------------------------------------------------------------------------------------------
def _window(dumps: list[MetricsDump]) -> float | None:
    if len(dumps) < 2:
        return None
    span = dumps[-1].t_unix - dumps[0].t_unix
    return span if span > 0 else None


def _in_window(dumps: list[MetricsDump]) -> Callable[[float], bool]:
    """Is a sample time inside the metrics window (with 1 s slack at both ends)? Always, without one."""
    if len(dumps) < 2 or dumps[0].t_unix <= 0:
        return lambda t: True
    lo, hi = dumps[0].t_unix - 1.0, dumps[-1].t_unix + 1.0
    return lambda t: lo <= t <= hi


def _group(why: dict[str, str], names_: Iterable[str], reason: str) -> None:
    for name in names_:
        why.setdefault(name, reason)


def _issue(bundle: Bundle, collector: str) -> str | None:
    for issue in bundle.issues:
        if issue.collector == collector:
            return issue.reason + (f" ({issue.fix})" if issue.fix else "")
    return None


def _has_engine_metrics(parsed: ParsedDump) -> bool:
    return any(name.startswith(("vllm:", "vllm_")) for name in parsed.types) or any(
        name.startswith(("vllm:", "vllm_")) for name in parsed.samples
    )


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def _delta(before: ParsedDump, after: ParsedDump, concept: str, **match: str) -> float | None:
    return window.counter_delta(names.value(before, concept, **match), names.value(after, concept, **match))


def _label_deltas(before: ParsedDump, after: ParsedDump, concept: str, label: str) -> dict[str, float] | None:
    b = names.by_label(before, concept, label) or {}
    a = names.by_label(after, concept, label)
    if a is None:
        return None
    out: dict[str, float] = {}
    for key in a:
        d = window.counter_delta(b.get(key, 0.0), a[key])
        if d is not None:
            out[key] = d
    return out


def _hist(before: ParsedDump, after: ParsedDump, concept: str, **match: str) -> names.Histogram | None:
    return window.histogram_delta(
        names.histogram(before, concept, **match), names.histogram(after, concept, **match)
    )


def _hist_stats(
    h: names.Histogram | None, q: float = 0.95, field_name: str = "", why: dict[str, str] | None = None
) -> tuple[float | None, float | None]:
    """(quantile q, mean); both None when the window saw no observation.

    A quantile that falls in the first bucket is None: interpolating inside (0, le] only says "somewhere
    below le". vLLM's latency buckets start at 0.3 s, so a 1 ms queue would read as a 285 ms p95.
    The mean (sum/count) is exact and stays.
    """
    if h is None or h.count <= 0:
        return None, None
    quantile = quantiles.histogram_quantile(q, h)
    first_le, first_count = h.buckets[0] if h.buckets else (math.inf, 0.0)
    if quantile is not None and math.isfinite(first_le) and first_count >= q * h.count:
        quantile = None
        if why is not None and field_name:
            why[field_name] = (
                f"inside the histogram's first bucket (≤ {first_le:g}): too fine to resolve; see the mean"
            )
    return quantile, quantiles.mean(h)


def _max_finite_le(h: names.Histogram | None) -> float | None:
    """The upper bound of the highest bucket that gained observations; None if that is +Inf."""
    if h is None or h.count <= 0:
        return None
    previous = 0.0
    highest: float | None = None
    for le, cumulative in h.buckets:
        if cumulative > previous:
            highest = le
        previous = cumulative
    return highest if highest is not None and math.isfinite(highest) else None


def _counters(ev: Evidence, first: ParsedDump, last: ParsedDump, why: dict[str, str]) -> None:
    seconds = ev.window_s

    def per_s(delta: float | None) -> float | None:
        return window.rate(delta, seconds) if delta is not None and seconds else None

    queue = _hist(first, last, "queue_time")
    ev.queue_p95_s, ev.queue_mean_s = _hist_stats(queue, 0.95, "queue_p95_s", why)
    inference = _hist(first, last, "inference_time")
    ev.inference_p95_s, ev.inference_mean_s = _hist_stats(inference, 0.95, "inference_p95_s", why)
    _, ev.prefill_mean_s = _hist_stats(_hist(first, last, "prefill_time"))
    ev.e2e_p95_s, ev.e2e_mean_s = _hist_stats(_hist(first, last, "e2e_latency"), 0.95, "e2e_p95_s", why)
    if queue is not None and queue.count <= 0:
        _group(why, _LATENCY_FIELDS, "no request finished in the window")

    reasons = _label_deltas(first, last, "request_success", "finished_reason")
    ev.finished_by_reason = reasons
    if reasons is not None:
        ev.engine_requests_delta = sum(reasons.values())
        ev.failed_requests_delta = reasons.get("error", 0.0) + reasons.get("abort", 0.0)
    ev.engine_requests_per_s = per_s(ev.engine_requests_delta)
    ev.admission_rejections_delta = _delta(first, last, "admission_rejections")
    if ev.admission_rejections_delta is None:
        why["admission_rejections_delta"] = "vllm:admission_rejections_total is exported from vLLM 0.32 on"

    ev.prompt_tokens_delta = _delta(first, last, "prompt_tokens")
    ev.prompt_tokens_per_s = per_s(ev.prompt_tokens_delta)
    prompt_hist = _hist(first, last, "request_prompt_tokens")
    ev.prompt_tokens_per_pair = _ratio(ev.prompt_tokens_delta, prompt_hist.count if prompt_hist else None)
    ev.prompt_tokens_p99, _ = _hist_stats(prompt_hist, 0.99, "prompt_tokens_p99", why)
    ev.prompt_tokens_max_le = _max_finite_le(prompt_hist)
    if prompt_hist is not None and prompt_hist.count <= 0:
        _group(
            why,
            ["prompt_tokens_per_pair", "prompt_tokens_p99", "prompt_tokens_max_le"],
            "no request in the window",
        )
    ev.generation_tokens_delta = _delta(first, last, "generation_tokens")
    steps = _hist(first, last, "iteration_tokens")
    if steps is not None and steps.count > 0:
        ev.tokens_per_step_mean = quantiles.mean(steps)
        ev.engine_steps_per_s = per_s(steps.count)

    ev.prefix_queries_delta = _delta(first, last, "prefix_cache_queries")
    ev.prefix_hits_delta = _delta(first, last, "prefix_cache_hits")
    ev.prefix_hit_ratio = _ratio(ev.prefix_hits_delta, ev.prefix_queries_delta)
    if ev.prefix_queries_delta == 0:
        why["prefix_hit_ratio"] = "no prefix-cache lookups in the window (prefix caching off, or no requests)"
    if ev.prefix_hit_ratio is None and (rate := names.value(last, "prefix_cache_hit_rate")) is not None:
        ev.prefix_hit_ratio = rate  # the V0 gauge: vLLM's own running hit rate, the best there is
    ev.prefix_cache_unit = names.prefix_cache_unit(last)
    if ev.prefix_cache_unit == "tokens":
        ev.prefix_queries_per_prompt_token = _ratio(ev.prefix_queries_delta, ev.prompt_tokens_delta)
    elif ev.prefix_queries_delta is not None:
        why["prefix_cache_unit"] = (
            "gpu_prefix_cache_* counted blocks before vLLM 0.9, tokens after; no HELP says which"
        )
        why["prefix_queries_per_prompt_token"] = "prefix-cache queries may be counted in blocks, not tokens"
    ev.preemptions_delta = _delta(first, last, "preemptions")

    # process_cpu_seconds_total is the API server's own process, and exists only with ONE API server
    # (with several, vLLM uses prometheus multiprocess mode and drops process_* series).
    cpu_s = _delta(first, last, "process_cpu")
    if cpu_s is not None and seconds:
        ev.api_server_cpu_metrics_pct = 100.0 * cpu_s / seconds
    else:
        why["api_server_cpu_metrics_pct"] = (
            "no process_cpu_seconds_total (several API servers, or not exported)"
        )


def _http(ev: Evidence, first: ParsedDump, last: ParsedDump, why: dict[str, str]) -> None:
    by_handler = _label_deltas(first, last, "http_requests", "handler")
    if by_handler is None:
        _group(
            why,
            [
                "http_handler",
                "http_p95_s",
                "http_mean_s",
                "calls_per_s",
                "calls_delta",
                "calls_by_handler",
                "docs_per_call",
            ],
            "no http_requests_total (vLLM before 0.8.3, or the HTTP instrumentator is off)",
        )
        return
    user = {h: d for h, d in by_handler.items() if h not in ADMIN_HANDLERS}
    ev.calls_by_handler = user
    ev.calls_delta = sum(user.values())
    ev.calls_per_s = window.rate(ev.calls_delta, ev.window_s) if ev.window_s else None
    statuses = _label_deltas(first, last, "http_requests", "status") or {}
    ev.http_4xx_delta = statuses.get("4xx", 0.0)
    ev.http_5xx_delta = statuses.get("5xx", 0.0)
    ev.docs_per_call = _ratio(ev.engine_requests_delta, ev.calls_delta)
    busiest = max(user.items(), key=lambda kv: kv[1], default=None)
    if busiest is None or busiest[1] <= 0:
        _group(why, ["http_handler", "http_p95_s", "http_mean_s", "docs_per_call"], "no calls in the window")
        return
    ev.http_handler = busiest[0]
    # The mean from the handler's own histogram (exact: sum/count). The p95 from the 20-bucket "highr"
    # histogram: the handler-labelled one has only 0.1/0.5/1/+Inf buckets, useless above 1 s. "highr" has
    # no handler label, but /metrics is not instrumented and health checks are few and fast.
    labelled_p95, ev.http_mean_s = _hist_stats(_hist(first, last, "http_duration", handler=busiest[0]))
    highr_p95, _ = _hist_stats(_hist(first, last, "http_duration_highr"), 0.95, "http_p95_s", why)
    ev.http_p95_s = highr_p95 if highr_p95 is not None else labelled_p95


def _gauges(ev: Evidence, parsed: list[ParsedDump], why: dict[str, str]) -> None:
    def series(concept: str, **match: str) -> list[float]:
        return [v for p in parsed if (v := names.value(p, concept, **match)) is not None]

    kv = series("kv_usage")
    ev.kv_usage_max_ratio = max(kv) if kv else None
    waiting = series("waiting")
    ev.waiting_max = max(waiting) if waiting else None
    ev.waiting_mean = statistics.fmean(waiting) if waiting else None
    running = series("running")
    ev.running_max = max(running) if running else None
    capacity = [
        by["capacity"]
        for p in parsed
        if (by := names.by_label(p, "waiting_by_reason", "reason")) is not None and "capacity" in by
    ]
    ev.waiting_capacity_max = max(capacity) if capacity else None
    if not capacity:
        why["waiting_capacity_max"] = "no num_requests_waiting_by_reason (vLLM before 0.11)"


def _bool(text: str | None) -> bool | None:
    if text is None:
        return None
    return {"true": True, "false": False}.get(text.strip().lower())


def _int(text: str | None) -> int | None:
    try:
        return int(float(text)) if text not in (None, "", "None") else None
    except (ValueError, OverflowError):  # "abc"; "nan"; "1e400" (a flag value is outside input)
        return None


def _float(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "", "None") else None
        return value if value is None or math.isfinite(value) else None
    except ValueError:
        return None


def _cache_config(ev: Evidence, last: ParsedDump, why: dict[str, str]) -> None:
    labels = names.info_labels(last, "cache_config")
    if labels is None:
        _group(why, _CONFIG_FIELDS, "no vllm:cache_config_info in /metrics")
        return
    ev.block_size = _int(labels.get("block_size"))
    ev.enable_prefix_caching = _bool(labels.get("enable_prefix_caching"))
    ev.num_gpu_blocks = _int(labels.get("num_gpu_blocks"))
    ev.gpu_memory_utilization = _float(labels.get("gpu_memory_utilization"))
    ev.kv_cache_size_tokens = _int(labels.get("kv_cache_size_tokens"))
    if ev.kv_cache_size_tokens is None and ev.num_gpu_blocks and ev.block_size:
        ev.kv_cache_size_tokens = ev.num_gpu_blocks * ev.block_size


def _gpu(ev: Evidence, samples: list[GpuSample], bundle: Bundle, why: dict[str, str]) -> None:
    if not samples:
        _group(why, _GPU_FIELDS, _issue(bundle, "gpu") or "needs NVML: no GPU samples in the bundle")
        return
    by_index: dict[int, list[GpuSample]] = {}
    for s in samples:
        by_index.setdefault(s.index, []).append(s)
    ev.gpu_count = len(by_index)

    def util_mean(rows: list[GpuSample]) -> float:
        values = [r.util_pct for r in rows if r.util_pct is not None]
        return statistics.fmean(values) if values else -1.0

    # Judge the busiest GPU: with tensor parallelism they move together; with replicas the hot one matters.
    rows = max(by_index.values(), key=util_mean)
    util = [r.util_pct for r in rows if r.util_pct is not None]
    power = [r.power_w for r in rows if r.power_w is not None]
    memory = [r.memory_used_mib for r in rows if r.memory_used_mib is not None]
    clock = [r.sm_clock_mhz for r in rows if r.sm_clock_mhz is not None]
    if util:
        ev.gpu_util_mean_pct = statistics.fmean(util)
        ev.gpu_util_median_pct = statistics.median(util)
        ev.gpu_util_max_pct = max(util)
    else:
        _group(
            why, ["gpu_util_mean_pct", "gpu_util_median_pct", "gpu_util_max_pct"], "NVML gave no utilization"
        )
    ev.gpu_power_mean_w = statistics.fmean(power) if power else None
    ev.gpu_power_max_w = max(power) if power else None
    ev.gpu_memory_used_max_mib = max(memory) if memory else None
    ev.gpu_sm_clock_min_mhz = min(clock) if clock else None
    _group(why, _GPU_FIELDS, "this GPU does not report it")


def _processes(
    ev: Evidence,
    samples: list[ProcessSample],
    bounds: tuple[float | None, float | None],
    bundle: Bundle,
    why: dict[str, str],
) -> None:
    roles = cpu_by_role(samples, *bounds) or cpu_by_role(samples)
    host = roles.get("host")
    if host is not None and host.mean_pct is not None:
        ev.host_cpu_mean_pct, ev.host_cpu_max_pct = host.mean_pct, host.max_pct
    else:
        _group(why, _HOST_FIELDS, _issue(bundle, "host") or "no host CPU samples (run on the serving host)")
    if not any(role in roles for role in ("api_server", "engine_core", "worker")):
        reason = _issue(bundle, "host") or "no per-process CPU samples of vLLM (run on the serving host)"
        _group(why, _PROCESS_FIELDS, reason)
        return
    api = roles.get("api_server")
    if api is not None:
        ev.api_server_count = api.process_count
        ev.api_server_cpu_mean_pct, ev.api_server_cpu_max_pct = api.mean_pct, api.max_pct
    else:
        _group(
            why,
            ["api_server_count", "api_server_cpu_mean_pct", "api_server_cpu_max_pct"],
            "no API-server process seen",
        )
    core = roles.get("engine_core")
    if core is not None:
        ev.engine_core_cpu_mean_pct, ev.engine_core_cpu_max_pct = core.mean_pct, core.max_pct
    else:
        _group(
            why, ["engine_core_cpu_mean_pct", "engine_core_cpu_max_pct"], "no VLLM::EngineCore process seen"
        )
    worker = roles.get("worker")
    if worker is not None:
        ev.worker_cpu_mean_pct = worker.mean_pct
    else:
        why["worker_cpu_mean_pct"] = "no VLLM::Worker process (GPU builds run the model inside EngineCore)"
    _group(why, _PROCESS_FIELDS, "no readable CPU sample for this process")


def _sockets(ev: Evidence, samples: list[SocketCensus], bundle: Bundle, why: dict[str, str]) -> None:
    ports = [s.port for s in samples if s.port is not None]
    ev.serving_port = ports[-1] if ports else None
    on_port = [s for s in samples if s.port is not None]
    if not on_port:
        reason = _issue(bundle, "sockets") or (
            "no socket census on the serving port (run on the serving host)"
            if not samples
            else "the serving port is unknown"
        )
        _group(why, [*_SOCKET_FIELDS, "serving_port"], reason)
        return
    ev.time_wait_on_port_max = max(s.port_states.get("TIME_WAIT", 0) for s in on_port)
    ev.established_on_port_max = max(s.port_states.get("ESTABLISHED", 0) for s in on_port)


# ------------------------------------------------------------------------------------------------
# The command line: the flags the rules propose changes to, and their current values.

_INT_FLAGS = {
    "--api-server-count": "flag_api_server_count",
    "--data-parallel-size": "flag_data_parallel_size",
    "--max-num-seqs": "flag_max_num_seqs",
    "--max-num-batched-tokens": "flag_max_num_batched_tokens",
    "--max-model-len": "flag_max_model_len",
}


def _flags(ev: Evidence, command_line: str | None, why: dict[str, str]) -> None:
    if not command_line:
        _group(
            why, _FLAG_FIELDS, "the vLLM command line is unknown (run on the serving host, or add flags.txt)"
        )
        return
    flags = parse_flags(command_line)
    ev.flags_known = True
    ev.flags = flags
    for flag, attr in _INT_FLAGS.items():
        setattr(ev, attr, _int(flags.get(flag)))
    # Defaults that do not depend on the hardware: one API server, one data-parallel rank.
    if ev.flag_api_server_count is None:
        ev.flag_api_server_count = 1
    if ev.flag_data_parallel_size is None:
        ev.flag_data_parallel_size = 1
    ev.flag_gpu_memory_utilization = _float(flags.get("--gpu-memory-utilization"))
    if "--no-enable-prefix-caching" in flags:
        ev.flag_enable_prefix_caching = False
    elif "--enable-prefix-caching" in flags:
        ev.flag_enable_prefix_caching = _bool(flags["--enable-prefix-caching"]) is not False
    ev.flag_disable_log_stats = "--disable-log-stats" in flags
    _group(why, _FLAG_FIELDS, "not set on the command line (vLLM's default for this hardware applies)")
