"""The PromQL fleet mode runs: one query per evidence family, all replicas at once.

Cost does not grow with the fleet in queries: each expression returns every replica in one answer, so
1,000 replicas cost the same 23 calls as one (18 queries, plus four label-value lookups and one count that
find the histograms' first bounds). The counters' and histograms' queries (evaluated at the window's
two ends) aggregate `by (__name__, <replica label>, ...)`, which drops the labels the derivation never
reads (`job`, `engine`, node labels) and keeps those answers small; the sums match what the bundle path
does, since the derivation adds series over engines and API servers (`names.value`,
`names.histogram`). The range queries of GPU and exporter series (RAW_KEYS) do not aggregate:
Prometheus would aggregate at every step, and the plain series cost it less than half the CPU.
Where the derivation reads only a quantile of a histogram, Prometheus computes it
(STORE_QUANTILE_HISTOGRAMS): one number per replica instead of some twenty buckets; where it reads only
the window's mean or maximum of a series, Prometheus computes that too, over every scrape: the
scheduler's gauges (GAUGE_WINDOW_KEY) and most exporter series (EXPORTER_MEAN, EXPORTER_PEAK).

The names come from diagnose/metrics/names.py (every era, both spellings `vllm:x` and `vllm_x`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from diagnose.derive.sections.scheduler import WINDOW_GAUGES
from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.fleet.window import promql_range, promql_window_range
from diagnose.metrics.names import CONCEPTS, spellings

# "ends": a range query whose step is the whole window, so it evaluates at the start and at the end only:
# Prometheus looks the series up once for both instants (half the cost of two instant queries).
When = Literal["ends", "end", "range"]

# The labels the derivation reads, per family: histogram bounds, finished_reason, handler, status, reason.
CUMULATIVE_LABELS = ("model_name", "le", "finished_reason", "handler", "status")
# The answers whose series come as Prometheus keeps them, every label on: the info series, the gauges
# read at the window's end, and the range queries' of GPU and exporter series (plan() says why those are
# not aggregated; dcgm_max is: each step's max_over_time has to be named again).
RAW_KEYS = ("info", "gauges", "exporter", "dcgm")

# dcgm-exporter (NVIDIA's GPU exporter on Kubernetes): what GPU clusters run instead of NVML in the pod.
DCGM_UNITS = {
    "DCGM_FI_DEV_GPU_UTIL": "percent",
    "DCGM_FI_DEV_POWER_USAGE": "watts",
    "DCGM_FI_DEV_FB_USED": "MiB",
    "DCGM_FI_DEV_FB_FREE": "MiB",
    "DCGM_FI_DEV_SM_CLOCK": "MHz",
}
# Our own exporter (`rerank-doctor export`) beside vLLM: per-process CPU and sockets Prometheus lacks.
EXPORTER_SERIES = (
    "rerank_doctor_process_cpu_percent",
    "rerank_doctor_process_cpu_max_percent",
    "rerank_doctor_processes",
    "rerank_doctor_role_cpu_percent",
    "rerank_doctor_host_cpu_ratio",
    "rerank_doctor_host_cpu_max_ratio",
    "rerank_doctor_port_sockets",
    "rerank_doctor_port_time_wait_recent_sockets",
    "rerank_doctor_host_sockets",
    "rerank_doctor_gpu_utilization_ratio",
    "rerank_doctor_gpu_power_watts",
    "rerank_doctor_gpu_memory_used_bytes",
    "rerank_doctor_gpu_memory_total_bytes",
    "rerank_doctor_gpu_sm_clock_hertz",
)
# Of those, the ones the derivation reads only the window's mean or its highest value of (derive/
# processes.py, sections/cpu.py, sections/sockets.py): Prometheus computes that over every scrape of the
# window (EXPORTER_WINDOW_KEY), one number a series instead of one a range step. They were three
# quarters of the plan's largest answer. The GPU rows stay step by step: their median is read too.
EXPORTER_MEAN = (
    "rerank_doctor_process_cpu_percent",
    "rerank_doctor_role_cpu_percent",
    "rerank_doctor_host_cpu_ratio",
)
EXPORTER_PEAK = (
    "rerank_doctor_process_cpu_max_percent",
    "rerank_doctor_processes",
    "rerank_doctor_host_cpu_max_ratio",
    "rerank_doctor_port_sockets",
    "rerank_doctor_port_time_wait_recent_sockets",
    "rerank_doctor_host_sockets",
)
EXPORTER_WINDOW_KEY = "exporter_window"
# The scheduler's gauges (WINDOW_GAUGES): their maximum and mean over every scrape of the window, one
# number a replica each, instead of their value at each range step rebuilt into a dump of its own. At the
# steps' instants alone, a 1-hour window's 120 s steps read 31 of its 240 scrapes at a 15 s interval, and
# a reranker's gauges are mostly 0 at any one scrape.
GAUGE_WINDOW_KEY = "gauge_window"
STAT_LABEL = "rerank_doctor_stat"  # "<WINDOW_GAUGES key>:max" or ":mean", on the gauge-window series
INFO_SERIES = ("rerank_doctor_info",)
# The TCP states the Evidence reads of a socket census (derive/sections/sockets.py, derive/host_sockets.py).
SOCKET_STATES_READ = ("TIME_WAIT", "ESTABLISHED")


# Range queries sample GPU and exporter series (and, for the charts, gauges) at this many steps over the
# window (plus one): enough to see a queue build up, few enough that 1,000 replicas answer in a few MB.
RANGE_POINTS = 30
# No scrape interval in common use is shorter: a finer step only repeats the same samples.
MIN_STEP_S = 5.0
# dcgm-exporter series whose highest reading in each step is asked for too (the step's value is one
# instant; the Evidence's maxima are over every scrape).
DCGM_MAXED = ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_POWER_USAGE")
MAX_SUFFIX = "_max"  # the name a step's maximum is given (label_replace), e.g. DCGM_FI_DEV_GPU_UTIL_max
OF_LABEL = "rerank_doctor_of"  # the family a computed series was made from (keeps `or`'s sides apart)


def range_step_s(window_s: float) -> float:
    """The step of the plan's range queries over a window this long."""
    return max(MIN_STEP_S, window_s / RANGE_POINTS)


@dataclass(frozen=True, slots=True)
class Query:
    key: str  # what the answer feeds (assemble.py reads answers by key)
    expr: str
    when: When  # both ends of the window, an instant query at its end, or a range query over it


def parse_selector(text: str | None) -> str:
    """`{namespace="rerank"}` -> `namespace="rerank"` (the matchers to add to every vLLM selector)."""
    if text is None or not text.strip():
        return ""
    body = text.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise DoctorError(
            f"--selector {text!r} is not a label selector",
            """write it in braces, e.g. --selector '{namespace="rerank"}'""",
            ExitStatus.USAGE,
        )
    return body[1:-1].strip().rstrip(",")


# Histograms whose quantiles the derivation never reads, only their sum and count (evidence.py:
# prefill_mean_s, tokens_per_step_mean, engine_steps_per_s): their finite buckets are a fifth of a
# replica's series, so only their _count and _sum are fetched (assemble.py adds the +Inf bucket).
# tests/test_fleet_queries.py fails if the derivation starts reading more of them.
MEAN_ONLY_HISTOGRAMS = ("prefill_time", "iteration_tokens")

# Histograms whose quantile Prometheus computes (`histogram_quantile` over `increase()`, one number per
# replica): the latency section reads only their p95 and mean. Their finite buckets were two thirds of a
# replica's series (4 x ~21 of ~124), which made the answers grow ~37 KB per replica. The dumps keep their
# _count and _sum, and the +Inf bucket made from _count (the mean and the count stay exact deltas). The
# quantile's first-bucket policy needs the first bound: `first_bucket_probe` finds it, fleet-wide, from the
# index. A family whose replicas do not all share that first bound is fetched bucket by bucket, as before.
STORE_QUANTILE = 0.95
STORE_QUANTILE_HISTOGRAMS = ("queue_time", "inference_time", "e2e_latency", "http_duration_highr")
QUANTILE_KEY = "quantile:"  # + concept: the answer key of one family's quantile query


def _sample_names(
    kinds: tuple[str, ...], *, without_buckets: tuple[str, ...] = (), mean_only: bool = False
) -> list[str]:
    """Sample names of every concept of these kinds; `mean_only` picks the histograms of
    `without_buckets`, their `_count` and `_sum` only (or leaves them out)."""
    out: list[str] = []
    for key, concept in CONCEPTS.items():
        if concept.kind not in kinds or (
            concept.kind == "histogram" and (key in without_buckets) != mean_only
        ):
            continue
        for name in concept.names:
            for spelled in spellings(name):
                if concept.kind == "histogram":
                    suffixes = ("_count", "_sum") if mean_only else ("_bucket", "_count", "_sum")
                    out.extend(spelled + suffix for suffix in suffixes)
                else:
                    out.append(spelled)
    return out


def _names_selector(names: list[str] | tuple[str, ...], matchers: str) -> str:
    extra = f", {matchers}" if matchers else ""
    return f'{{__name__=~"{"|".join(names)}"{extra}}}'


def replica_labels(replica_label: str) -> str:
    """The grouping labels that find a replica: its label, and `instance` (the fallback, and the target)."""
    return replica_label if replica_label == "instance" else f"{replica_label}, instance"


def bucket_names(concept: str) -> list[str]:
    """Every `_bucket` sample name of one histogram concept (every era, both spellings)."""
    return [b for name in CONCEPTS[concept].names for b in _buckets_of(name)]


def _buckets_of(name: str) -> list[str]:
    """The `_bucket` sample names of one histogram name, in both spellings."""
    return [s + "_bucket" for s in spellings(name)]


def bucket_selector(concept: str, matchers: str) -> str:
    return _names_selector(bucket_names(concept), matchers)


def regex_of(values: list[str] | set[str]) -> str:
    """An RE2 alternation matching exactly these values, written for a PromQL string (backslashes
    doubled), e.g. for `le=~"..."` or `pod=~"..."`."""
    import re

    return "|".join(re.escape(v).replace("\\", "\\\\") for v in sorted(values))


def first_bucket_probe(first_le_text: dict[str, str], matchers: str) -> str:
    """How many bucket series carry each family's first bound and its +Inf bound (the bounds as the index
    spells them): equal counts mean every histogram of the family starts at that bound."""
    names = [n for concept in first_le_text for n in bucket_names(concept)]
    bounds = regex_of(set(first_le_text.values()))
    extra = f", {matchers}" if matchers else ""
    return f'count by (__name__, le) ({{__name__=~"{"|".join(names)}", le=~"{bounds}|\\\\+Inf"{extra}}})'


def plan(
    replica_label: str,
    matchers: str,
    window_s: float,
    first_le: dict[str, float] | None = None,
    only: list[str] | None = None,
) -> list[Query]:
    """Every query of one fleet diagnosis. `window_s` sizes the `[range]` of the few range functions;
    `first_le` is the first bucket bound of each STORE_QUANTILE_HISTOGRAMS family Prometheus computes the
    quantile of (the others are fetched bucket by bucket). `only`: these replicas and no other (the HTML
    page's charted ones), the GPU and container series included."""
    store = first_le or {}
    without_buckets = (*MEAN_ONLY_HISTOGRAMS, *store)
    node = ""  # the matchers for the node-level exporters' series (dcgm-exporter, cAdvisor)
    if only is not None:
        one_of = f'=~"{regex_of(set(only))}"'
        matchers = f"{matchers}, {replica_label}{one_of}" if matchers else f"{replica_label}{one_of}"
        node = f"{replica_label}{one_of}"
    by = replica_labels(replica_label)
    cumulative = _names_selector(
        _sample_names(("counter", "histogram"), without_buckets=without_buckets), matchers
    )
    # Their _count and _sum only: the +Inf bucket always equals _count, so assemble.py writes it from
    # _count (the parser needs one bucket to see a histogram). Fetched, it was a third of this answer,
    # and its `le=~"|\\+Inf"` matcher made Prometheus test every series' bound.
    mean_only = _names_selector(
        _sample_names(("histogram",), without_buckets=without_buckets, mean_only=True), matchers
    )
    # With the window's statistics of the scheduler's gauges (GAUGE_WINDOW_KEY), the other gauges only at
    # the window's end (the V0 prefix-cache hit rate, read off the last dump); the charts, every gauge at
    # every step.
    windowed = {name for concept, _ in WINDOW_GAUGES.values() for name in CONCEPTS[concept].names}
    gauge_names = [
        s
        for concept in CONCEPTS.values()
        if concept.kind == "gauge"
        for name in concept.names
        if only is not None or name not in windowed
        for s in spellings(name)
    ]
    gauges = _names_selector(gauge_names, matchers)
    info = _names_selector([*_sample_names(("info",)), *INFO_SERIES], matchers)
    # The socket censuses by state: only the states the Evidence reads (the exporter serves all eleven,
    # most of them 0); a series without a `state` label matches the empty alternative.
    states = f'state=~"|{"|".join(SOCKET_STATES_READ)}"'
    exporter_matchers = f"{states}, {matchers}" if matchers else states
    # The diagnosis reads the window's mean or maximum of most exporter series (EXPORTER_MEAN/_PEAK); the
    # charts (`only`) draw every step of them.
    per_step = (
        EXPORTER_SERIES
        if only is not None
        else tuple(n for n in EXPORTER_SERIES if n not in (*EXPORTER_MEAN, *EXPORTER_PEAK))
    )
    exporter = _names_selector(per_step, exporter_matchers)
    # GPU and container series come from node-level exporters in other namespaces: not narrowed by the
    # user's selector; assemble.py keeps only the replicas the vLLM series found. dcgm-exporter names the
    # GPU's workload `exported_pod` (or `pod`, with honor_labels).
    dcgm = " or ".join(_node_selectors(tuple(DCGM_UNITS), node))
    window = promql_range(window_s)
    covering = promql_window_range(window_s)  # for the window statistics over every scrape
    up_selector = f"up{{{matchers}}}" if matchers else "up"
    group = f"__name__, {by}, {', '.join(CUMULATIVE_LABELS)}"
    # timestamp() and resets() drop the metric name, and two names with one label set make Prometheus
    # refuse the whole vector; so they read one counter every vLLM era has (the HTTP one for servers
    # with --disable-log-stats). One server exposes one spelling, so the spelling regex cannot collide.
    beat = [
        _names_selector(spellings(name), matchers)
        for name in (*CONCEPTS["prompt_tokens"].names, "http_requests_total")
    ]

    def each_beat(fn: str, suffix: str = "") -> str:
        return " or ".join(f"max by ({by}) ({fn}({b}{suffix}))" for b in beat)

    return [
        # Counters and histograms: the before/after pair the derivation takes its deltas from. Two
        # queries, not one joined by `or`: `or` matches label sets without the metric name, so it drops
        # every `_count`/`_sum` whose labels equal a counter's of the other side (and it doubles
        # Prometheus' work on the largest answer of the plan).
        Query("cumulative", f"sum by ({group}) ({cumulative})", "ends"),
        Query("mean_only", f"sum by ({group}) ({mean_only})", "ends"),
        # When each replica's samples were scraped: the dump times, so rates use the true span.
        Query("scraped", each_beat("timestamp"), "ends"),
        # vLLM restarted inside the window: the counters count from the restart (the derivation's choice).
        Query("resets", each_beat("resets", f"[{covering}]"), "end"),
        # The range queries' series as they are, not aggregated: a `by` aggregation is evaluated at
        # every step (label sets hashed per series per step), which cost Prometheus 2.5x the CPU of the
        # plain selector for the exporter's series. The answers carry a few more labels (job,
        # namespace, engine); assemble.py drops the target's and the derivation sums engines itself.
        Query("gauges", gauges, "range" if only is not None else "end"),
        *([Query(GAUGE_WINDOW_KEY, _gauge_window(by, matchers, covering), "end")] if only is None else []),
        Query("info", info, "end"),
        Query("exporter", exporter, "range"),
        *(
            [Query(EXPORTER_WINDOW_KEY, _exporter_window(by, exporter_matchers, covering), "end")]
            if only is None
            else []
        ),
        Query("dcgm", dcgm, "range"),
        Query("dcgm_max", _dcgm_max(replica_label, window_s, node), "range"),
        Query(
            "container_cpu",
            f"sum by ({replica_label}, container) (rate(container_cpu_usage_seconds_total"
            f'{{container!="", container!="POD"{", " + node if node else ""}}}[{window}]))',
            "end",
        ),
        # Targets down at the end, or down at some scrape in the window (stale replicas).
        Query("up_min", f"min by ({by}) (min_over_time({up_selector}[{covering}]))", "end"),
        Query("up_end", f"min by ({by}) ({up_selector})", "end"),
        *(
            Query(QUANTILE_KEY + concept, _quantile(concept, by, matchers, window), "end")
            for concept in store
        ),
    ]


def _node_selectors(names: tuple[str, ...], node: str) -> list[str]:
    """A node-level exporter's series; with `node` (`pod=~"..."`), only those whose workload it names:
    dcgm-exporter's pod mapping labels it `exported_pod` (or `pod`, with honor_labels), so two selectors
    to be joined by `or`."""
    if not node:
        return [_names_selector(names, "")]
    return [_names_selector(names, node), _names_selector(names, "exported_" + node)]


def _exporter_window(by: str, matchers: str, window: str) -> str:
    """The window's mean (EXPORTER_MEAN) or maximum (EXPORTER_PEAK) of each exporter series, over every
    scrape in it. The *_over_time functions drop the name, and `or` matches label sets without it:
    label_replace writes the name into OF_LABEL, which keeps the sides apart, and assemble.py makes it
    the series' name again (written as `__name__` too, it was a fifth of this answer's bytes)."""

    def one(name: str, fn: str) -> str:
        selector = f"{name}{{{matchers}}}"
        summary = f"max by ({by}, role, port, state) ({fn}({selector}[{window}]))"
        return f'label_replace({summary}, "{OF_LABEL}", "{name}", "", "")'

    return " or ".join(
        [one(n, "avg_over_time") for n in EXPORTER_MEAN] + [one(n, "max_over_time") for n in EXPORTER_PEAK]
    )


def _gauge_window(by: str, matchers: str, window: str) -> str:
    """The window's maximum and mean of each WINDOW_GAUGES gauge, over every scrape, summed over the
    replica's series (engines) as the derivation sums a dump's: one series per (gauge, name, statistic),
    told apart by OF_LABEL (the sample name: assembly reads the earliest era's present, as names.resolve
    does) and STAT_LABEL."""
    terms = []
    for gauge, (concept, label) in WINDOW_GAUGES.items():
        only = f'{label[0]}="{label[1]}"' if label is not None else ""
        picked = ", ".join(m for m in (only, matchers) if m)
        for name in CONCEPTS[concept].names:
            for spelled in spellings(name):
                for fn, stat in (("max_over_time", "max"), ("avg_over_time", "mean")):
                    summary = f"sum by ({by}) ({fn}({spelled}{{{picked}}}[{window}]))"
                    named = f'label_replace({summary}, "{OF_LABEL}", "{spelled}", "", "")'
                    terms.append(f'label_replace({named}, "{STAT_LABEL}", "{gauge}:{stat}", "", "")')
    return " or ".join(terms)


def _dcgm_max(replica_label: str, window_s: float, node: str) -> str:
    """Each range step's highest GPU utilization and power: max_over_time over the step drops the name,
    so label_replace gives each its own (`DCGM_FI_DEV_GPU_UTIL_max`). `or` matches label sets without
    the metric name, so the name goes into a label of its own too (OF_LABEL), or the power's maxima
    would be dropped as duplicates of the utilization's."""
    step = promql_range(range_step_s(window_s))
    by = f"{replica_label}, exported_{replica_label}, gpu, modelName"

    def peak(name: str) -> str:
        inner = " or ".join(f"max_over_time({sel}[{step}])" for sel in _node_selectors((name,), node))
        named = f'label_replace(max by ({by}) ({inner}), "__name__", "{name}{MAX_SUFFIX}", "", "")'
        return f'label_replace({named}, "{OF_LABEL}", "{name}", "", "")'

    return " or ".join(peak(name) for name in DCGM_MAXED)


def _quantile(concept: str, by: str, matchers: str, window: str) -> str:
    """The family's p95 over the window per replica. A server that exposes two of its names (vLLM 0.7
    has both queue-time histograms) is read under the first, as names.resolve reads a dump: `or on
    (replica)` keeps the later names only for replicas the earlier ones lack, buckets and all (and
    increase() drops the name, so two names in one sum would collide)."""
    per_name = f" or on ({by}) ".join(
        f"sum by ({by}, le) (increase({_names_selector(_buckets_of(name), matchers)}[{window}]))"
        for name in CONCEPTS[concept].names
    )
    return f"histogram_quantile({STORE_QUANTILE:g}, {per_name})"
