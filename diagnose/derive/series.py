"""The window as time series: what the HTML report charts and the terminal report draws as sparklines.

Pure, no I/O: a `Bundle` in, typed series out. The evidence (diagnose/derive/evidence.py) reduces a
window to one number per reading; this module keeps the shape of the same readings over time:
- counters and histograms per interval between consecutive /metrics dumps, read by the evidence's own
  derivers (derive/sections/traffic.py, latency.py: reset-aware deltas, the one first-bucket policy),
  so a queue that grows from 1 s to 12 s over the window reads as a climb, not as a 5 s mean;
- gauges (waiting, running) at every dump; GPU, per-process CPU and sockets at every sample.
Time is in seconds from the first /metrics dump (or the first sample of any kind without one).

A series with no data carries the reason instead (`absent`), never an empty list that would draw as
empty axes, and never a 0 that would read as a measurement. Threshold lines are the numbers the rules
judge by (diagnose/thresholds.py), so a chart shows how far a reading is from a finding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from diagnose.derive.dump_fold import fold_dumps, has_engine_metrics
from diagnose.derive.evidence import NO_ENGINE_METRICS, ONE_SCRAPE, in_window
from diagnose.derive.processes import cpu_by_role, is_titled_api_server, role_of
from diagnose.derive.section import Section, source_of
from diagnose.derive.sections.latency import Latency, derive_latency
from diagnose.derive.sections.scheduler import WINDOW_GAUGES
from diagnose.derive.sections.traffic import Traffic, derive_traffic
from diagnose.metrics import names
from diagnose.metrics.exposition import ParsedDump, parse_dump
from diagnose.progress import StepReporter
from diagnose.readings import Bundle, MetricsDump, ProcessSample, time_ordered
from diagnose.thresholds import Thresholds

# The gauges drawn per dump (the scheduler chart).
_CHARTED_GAUGES = ("waiting", "running")


@dataclass(frozen=True, slots=True)
class Series:
    """One line over the window. `values[i]` is at `t_s[i]`; None is a gap (unknown there), never 0."""

    key: str  # e.g. "queue_mean_s"; the unit is in the name, as everywhere
    label: str  # what a legend says: "queue time, mean"
    unit: str  # "s", "%", "/s", "requests", "W", "MiB", "sockets"
    source: str  # where the numbers come from, in one line
    t_s: tuple[float, ...] = ()  # seconds from the window start
    values: tuple[float | None, ...] = ()
    absent: str | None = None  # why there are no data; None when there are

    @property
    def points(self) -> int:
        """Known values (a gap is not a point)."""
        return sum(v is not None for v in self.values)


@dataclass(frozen=True, slots=True)
class Threshold:
    """A line the rules judge by: `rule.key` in diagnose/thresholds.py, or a fact such as memory.total."""

    label: str  # "warning (queueing.queue_warning_s)"
    value: float  # in the chart's unit
    fact: bool = False  # a property of the hardware (memory.total), not a number a rule judges by


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart: series in one unit, the threshold lines, and notes (e.g. why a line is not drawn)."""

    key: str
    title: str
    unit: str
    series: tuple[Series, ...]
    thresholds: tuple[Threshold, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def absent(self) -> str | None:
        """Why the chart has nothing to draw; None when any of its series has a point."""
        if any(s.points for s in self.series):
            return None
        reasons = list(dict.fromkeys(s.absent or "no known value in the window" for s in self.series))
        return "; ".join(reasons)


@dataclass(frozen=True, slots=True)
class WindowSeries:
    start_unix: float | None  # the instant t_s = 0 stands for (the first /metrics dump)
    window_s: float | None  # first to last /metrics dump
    charts: tuple[Chart, ...]

    def chart(self, key: str) -> Chart:
        return next(c for c in self.charts if c.key == key)

    def series(self, key: str) -> Series:
        return next(s for c in self.charts for s in c.series if s.key == key)


def window_series(
    bundle: Bundle, thresholds: Thresholds | None = None, progress: StepReporter | None = None
) -> WindowSeries:
    """Every chart of the window. The same bundle always gives the same series."""
    limits = thresholds or Thresholds()
    metrics = _Intervals.fold(bundle.dumps, _start(bundle), _issue(bundle, "vllm"), progress)
    metrics.summarized = frozenset(WINDOW_GAUGES[g][0] for g in bundle.store_gauges if g in WINDOW_GAUGES)
    times = metrics.times
    start = times[0] if times else metrics.start_or_none
    span = times[-1] - times[0] if len(times) >= 2 else None
    inside = in_window(times)
    end = times[-1] if len(times) >= 2 else None
    charts = (
        _latency_chart(metrics, limits),
        _http_chart(metrics, bundle, start, end),
        Chart(
            "calls", "HTTP calls per second", "/s", (metrics.traffic("calls_per_s", "HTTP calls per second"),)
        ),
        Chart(
            "pairs",
            "engine requests (pairs) per second",
            "/s",
            (
                metrics.traffic(
                    "engine_requests_per_s", "engine requests (pairs) per second", key="pairs_per_s"
                ),
            ),
        ),
        _scheduler_chart(metrics, limits),
        _cpu_chart(bundle, start, inside, limits),
        _host_chart(bundle, start, inside, limits),
        *_gpu_charts(bundle, start, inside, limits),
        _sockets_chart(bundle, start, inside, limits),
        _schedule_lag_chart(bundle, start, end),
    )
    return WindowSeries(start_unix=start, window_s=span if span and span > 0 else None, charts=charts)


# ------------------------------------------------------------------------------------------------
# /metrics: one point per interval between consecutive dumps (counters, histograms) or per dump (gauges).
# Each interval is read by the evidence's own derivers (derive_traffic, derive_latency), so a point of a
# chart is the number the rules would read for a window of that interval: one policy, one arithmetic.


class _Intervals:
    """The /metrics side of the charts, folded in one pass over the dumps (derive/dump_fold.py): one
    Traffic and one Latency per interval between consecutive dumps, the charted gauges per dump, and
    never more than two parsed dumps held."""

    def __init__(self, start: float | None, issue: str | None) -> None:
        self.start_or_none = start
        self.start = start or 0.0
        self.issue = issue
        self.handler: str | None = None  # the window's serving handler: set before the fold
        self.previous: ParsedDump | None = None
        self.ends: list[float] = []
        self.traffics: list[Traffic] = []
        self.latencies: list[Latency] = []
        self.times: list[float] = []
        self.gauges: dict[str, list[float | None]] = {c: [] for c in _CHARTED_GAUGES}
        self.no_engine: str | None = None
        self.why: str | None = None
        # Gauge concepts the bundle has as the metrics store's window statistics only (fleet mode).
        self.summarized: frozenset[str] = frozenset()

    @classmethod
    def fold(
        cls,
        dumps: Sequence[MetricsDump],
        start: float | None,
        issue: str | None,
        progress: StepReporter | None = None,
    ) -> _Intervals:
        ordered = time_ordered(dumps)
        intervals = cls(ordered[0].t_unix if ordered else start, issue)
        if len(ordered) >= 2:
            # The serving handler is the window's (the busiest non-admin one), as the evidence picks it:
            # from the first and the last dump, read once before the pass.
            whole = derive_traffic(parse_dump(ordered[0]), parse_dump(ordered[-1]), None)
            intervals.handler = whole.http_handler
        fold = fold_dumps(ordered, intervals.add, progress=progress, what="charting the /metrics dumps")
        engine = not fold.count or fold.engine_metrics
        intervals.no_engine = None if engine else NO_ENGINE_METRICS  # with no dump at all, `why` says so
        if not fold.count:
            intervals.why = issue or "no /metrics dump in the bundle"
        elif fold.count < 2:
            intervals.why = "one /metrics dump: counters need two (collect over a window)"
        if intervals.no_engine is not None:
            intervals.latencies = []
        return intervals

    def add(self, parsed: ParsedDump) -> None:
        self.times.append(parsed.t_unix)
        for concept, values in self.gauges.items():
            values.append(names.value(parsed, concept))
        a, self.previous = self.previous, parsed
        if a is None:
            return
        self.ends.append(parsed.t_unix - self.start)
        # Without engine families derive_traffic says so itself; the flag is set after the pass, so each
        # interval is read as engine-less when neither of its dumps has them.
        no_engine = None if has_engine_metrics(a) or has_engine_metrics(parsed) else NO_ENGINE_METRICS
        self.traffics.append(derive_traffic(a, parsed, parsed.t_unix - a.t_unix, no_engine=no_engine))
        self.latencies.append(derive_latency(a, parsed, self.handler))

    def _series(
        self,
        key: str,
        label: str,
        unit: str,
        cls: type[Section],
        rows: Sequence[Section],
        name: str,
        engine: bool,
    ) -> Series:
        source = f"{source_of(cls, name)}; per interval between /metrics dumps"
        # Without vllm: families that is the reason, whatever else; HTTP calls are counted regardless.
        why = (self.no_engine if engine else None) or self.why
        if why is not None:
            return Series(key, label, unit, source, absent=why)
        values = tuple(getattr(r, name) for r in rows)
        if not any(v is not None for v in values):
            # The most frequent reason across the intervals (e.g. every p95 inside the first bucket).
            reasons = [r.missing.get(name, "") for r in rows] or [ONE_SCRAPE]
            return Series(key, label, unit, source, absent=max(set(reasons), key=reasons.count) or None)
        return Series(key, label, unit, source, tuple(self.ends), values)

    def traffic(self, name: str, label: str, key: str | None = None) -> Series:
        return self._series(key or name, label, "/s", Traffic, self.traffics, name, name != "calls_per_s")

    def latency(self, name: str, label: str) -> Series:
        return self._series(name, label, "s", Latency, self.latencies, name, not name.startswith("http_"))

    def per_dump(self, key: str, label: str, unit: str, concept: str) -> Series:
        source = f"{names.CONCEPTS[concept].names[0]} at each /metrics dump"
        if not self.times or self.no_engine is not None:
            return Series(key, label, unit, source, absent=self.no_engine or self.why)
        values = tuple(self.gauges[concept])
        if not any(v is not None for v in values):
            name = names.CONCEPTS[concept].names[0]
            if concept in self.summarized:
                absent = f"{name}: the metrics store sent its window maximum and mean only, no step to draw"
                return Series(key, label, unit, source, absent=absent)
            return Series(key, label, unit, source, absent=f"{name} not exported")
        return Series(key, label, unit, source, tuple(t - self.start for t in self.times), values)


def _latency_chart(m: _Intervals, limits: Thresholds) -> Chart:
    series = (
        m.latency("queue_mean_s", "queue, mean"),
        m.latency("queue_p95_s", "queue, p95"),
        m.latency("e2e_mean_s", "e2e, mean"),
        m.latency("e2e_p95_s", "e2e, p95"),
    )
    queueing = limits.of("queueing")
    lines = _ladder(
        series[:2],  # the queue's lines judge the queue, not e2e
        [
            ("queue warning (queueing.queue_warning_s)", queueing.get("queue_warning_s")),
            ("queue critical (queueing.queue_critical_s)", queueing.get("queue_critical_s")),
        ],
    )
    notes = ("per engine request (one document of a rerank call); a p95 inside the first bucket is a gap",)
    return Chart("latency", "vLLM queue time and end-to-end latency", "s", series, lines, notes)


def _http_chart(m: _Intervals, bundle: Bundle, start: float | None, end: float | None) -> Chart:
    mean = m.latency("http_mean_s", f"HTTP {m.handler or 'calls'}, mean")
    p95 = m.latency("http_p95_s", "HTTP, p95")
    return Chart(
        "http",
        "HTTP latency per call (server) and the client's view",
        "s",
        (mean, p95, *_client(bundle, start, end)),
    )


def _client(bundle: Bundle, start: float | None, end: float | None) -> tuple[Series, ...]:
    """The client's latency from a stress report: a summary over its run, drawn flat across that run."""
    return _flat_over_run(
        bundle,
        start,
        end,
        "latency",
        (("client_mean_s", "client, mean (run)", "mean_s"), ("client_p95_s", "client, p95 (run)", "p95_s")),
        "stress.json: latency from the intended send time, over the whole stress run",
        "no stress report: run `rerank-doctor stress` for the client's view",
        "the stress report has no latency (no call finished)",
    )


def _scheduler_chart(m: _Intervals, limits: Thresholds) -> Chart:
    series = (
        m.per_dump("waiting", "waiting", "requests", "waiting"),
        m.per_dump("running", "running", "requests", "running"),
    )
    engine = limits.of("cpu-engine-core")
    lines = _ladder(
        series,
        [
            ("waiting warning (cpu-engine-core.waiting_warning)", engine.get("waiting_warning")),
            ("waiting critical (cpu-engine-core.waiting_critical)", engine.get("waiting_critical")),
        ],
    )
    notes = (
        "a reranker's requests finish inside one engine step: running reads ~0 at a scrape; read waiting",
    )
    return Chart("scheduler", "requests waiting and running (vLLM gauges)", "requests", series, lines, notes)


# ------------------------------------------------------------------------------------------------
# Samples: per-process CPU, GPU, sockets, each at its own times.

_ROLE_LABELS = (("api_server", "API server"), ("engine_core", "EngineCore"), ("worker", "Worker"))


def _cpu_chart(
    bundle: Bundle, start: float | None, inside: Callable[[float], bool], limits: Thresholds
) -> Chart:
    samples = [s for s in bundle.processes if inside(s.t_unix)]
    roles = cpu_by_role(samples)
    reason = _issue(bundle, "host") or "no per-process CPU samples of vLLM (collect on the serving host)"
    titled_api = any(is_titled_api_server(s.name, s.cmd) for s in samples)
    series: list[Series] = []
    for role, name in _ROLE_LABELS:
        key = f"{role}_cpu_pct"
        source = "processes.csv: psutil cpu_percent, percent of ONE core"
        cpu = roles.get(role)
        if cpu is None or cpu.busiest_pid is None:
            why = reason if not roles.keys() - {"host", "other"} else f"no {name} process seen"
            if role == "worker" and roles.keys() - {"host", "other"}:
                why = "no VLLM::Worker process (GPU builds run the model inside EngineCore)"
            series.append(Series(key, name, "%", source, absent=why))
            continue
        mine = [
            s
            for s in samples
            if s.pid == cpu.busiest_pid and _role(s, titled_api) == role and s.cpu_percent is not None
        ]
        label = (
            f"{name} (busiest of {cpu.process_count}, pid {cpu.busiest_pid})"
            if cpu.process_count > 1
            else name
        )
        series.append(_sampled(key, label, "%", source, start, [(s.t_unix, s.cpu_percent) for s in mine]))
    api, core = limits.of("cpu-api-server"), limits.of("cpu-engine-core")
    lines = _ladder(
        series[:2],  # API server and EngineCore; the Worker spin-waits by design
        [
            ("busy warning (cpu-api-server.busy_warning_pct)", api.get("busy_warning_pct")),
            ("busy warning (cpu-engine-core.busy_warning_pct)", core.get("busy_warning_pct")),
        ],
    )
    notes = ("on the CPU build VLLM::Worker spin-waits near 90 % under any load: not saturation by itself",)
    return Chart("cpu", "CPU per vLLM process (percent of one core)", "%", tuple(series), lines, notes)


def _role(sample: ProcessSample, titled_api: bool) -> str:
    role = role_of(sample.name, sample.cmd)
    # The `vllm serve` launcher above titled API servers only supervises (as cpu_by_role counts it).
    if role == "api_server" and titled_api and not is_titled_api_server(sample.name, sample.cmd):
        return "other"
    return role


def _host_chart(
    bundle: Bundle, start: float | None, inside: Callable[[float], bool], limits: Thresholds
) -> Chart:
    source = "processes.csv HOST_TOTAL row: psutil, percent of ALL cores"
    rows = [
        (s.t_unix, s.cpu_percent)
        for s in bundle.processes
        if inside(s.t_unix) and role_of(s.name, s.cmd) == "host"
    ]
    if rows:
        series = _sampled("host_cpu_pct", "host", "%", source, start, rows)
    else:
        why = _issue(bundle, "host") or "no host CPU samples (collect on the serving host)"
        series = Series("host_cpu_pct", "host", "%", source, absent=why)
    lines = _ladder(
        (series,), [("host busy (cpu-host.busy_warning_pct)", limits.of("cpu-host").get("busy_warning_pct"))]
    )
    return Chart("host", "host CPU (percent of all cores)", "%", (series,), lines)


def _gpu_charts(
    bundle: Bundle, start: float | None, inside: Callable[[float], bool], limits: Thresholds
) -> list[Chart]:
    samples = [s for s in bundle.gpu if inside(s.t_unix)]
    why = _issue(bundle, "gpu") or "no GPU samples: NVML unavailable or no GPU on the serving host"
    indexes = sorted({s.index for s in samples})
    several = len(indexes) > 1

    def per_gpu(
        key: str, label: str, unit: str, source: str, read: Callable[..., float | None]
    ) -> tuple[Series, ...]:
        if not indexes:
            return (Series(f"gpu_{key}", label, unit, source, absent=why),)
        out = []
        for i in indexes:
            rows = [(s.t_unix, read(s)) for s in samples if s.index == i]
            name = f"GPU {i} {label}" if several else label
            out.append(
                _sampled(f"gpu{i}_{key}" if several else f"gpu_{key}", name, unit, source, start, rows)
            )
        return tuple(out)

    busy = per_gpu(
        "util_pct",
        "busy",
        "%",
        "NVML utilization.gpu: share of time a kernel ran, not SM occupancy",
        lambda s: s.util_pct,
    )
    gpu = limits.of("gpu")
    busy_lines = _ladder(
        busy,
        [
            ("GPU-bound warning (gpu.busy_warning_pct)", gpu.get("busy_warning_pct")),
            ("GPU-bound critical (gpu.busy_critical_pct)", gpu.get("busy_critical_pct")),
        ],
    )
    power = per_gpu("power_w", "power", "W", "NVML power draw", lambda s: s.power_w)
    # Why no limit line: bundles do not record the enforced power limit yet (nvidia-smi's power.limit
    # column is not in the bundle's query); drawing 700 W from memory would be a made-up number.
    power_notes = (
        "power limit: not recorded in the bundle, so no limit line (read it with nvidia-smi -q -d POWER)",
    )
    memory = per_gpu("memory_used_mib", "memory used", "MiB", "NVML memory used", lambda s: s.memory_used_mib)
    totals = sorted({s.memory_total_mib for s in samples if s.memory_total_mib is not None})
    memory_lines = tuple(Threshold(f"memory.total {t:,.0f} MiB", t, fact=True) for t in totals[-1:])
    memory_notes = ("vLLM reserves its KV cache at start-up: memory used says little about load",)
    return [
        Chart("gpu_busy", "GPU busy", "%", busy, busy_lines),
        Chart("gpu_power", "GPU power", "W", power, (), power_notes),
        Chart("gpu_memory", "GPU memory", "MiB", memory, memory_lines, memory_notes),
    ]


def _sockets_chart(
    bundle: Bundle, start: float | None, inside: Callable[[float], bool], limits: Thresholds
) -> Chart:
    on_port = [s for s in bundle.sockets if inside(s.t_unix) and s.port is not None]
    port = on_port[-1].port if on_port else None
    source = "sockets.csv: /proc/net/tcp census of the serving port (local or remote port)"
    if on_port:
        rows = [(s.t_unix, float(s.port_states.get("TIME_WAIT", 0))) for s in on_port]
        series = _sampled("time_wait", f"TIME_WAIT on port {port}", "sockets", source, start, rows)
    else:
        why = (
            _issue(bundle, "sockets") or "no socket census of the serving port (collect on the serving host)"
        )
        host = bundle.host_tcp
        if host is not None and host.time_wait is not None:
            # One host-wide reading: every process on the host counts, and one number is no timeline.
            why += f"; host-wide only: {host.time_wait:,} TIME_WAIT in one {host.source or 'ss -s'} reading"
        elif bundle.sockstat_text:
            why += "; the bundle has host-wide totals only (ss -s / sockstat), no timeline"
        series = Series("time_wait", "TIME_WAIT", "sockets", source, absent=why)
    net = limits.of("network-connections")
    lines = _ladder(
        (series,),
        [
            ("warning (network-connections.time_wait_warning)", net.get("time_wait_warning")),
            ("critical (network-connections.time_wait_critical)", net.get("time_wait_critical")),
        ],
    )
    return Chart("time_wait", "TIME_WAIT sockets on the serving port", "sockets", (series,), lines)


def _schedule_lag_chart(bundle: Bundle, start: float | None, end: float | None) -> Chart:
    """The load generator's lag behind its schedule: a summary in stress.json, drawn flat over the run."""
    series = _flat_over_run(
        bundle,
        start,
        end,
        "schedule_lag",
        (("lag_p50_s", "lag, p50 (run)", "p50_s"), ("lag_p99_s", "lag, p99 (run)", "p99_s")),
        "stress.json schedule_lag: how late calls left against their intended send time",
        "no stress report in the bundle (the lag is the load generator's)",
        "the stress report has no schedule lag",
    )
    notes = ("stress keeps a summary, not a timeline: the lines are flat over its run",)
    return Chart("schedule_lag", "load generator schedule lag", "s", series, (), notes)


def _flat_over_run(
    bundle: Bundle,
    start: float | None,
    end: float | None,
    section: str,
    wanted: Sequence[tuple[str, str, str]],
    source: str,
    no_report: str,
    no_value: str,
) -> tuple[Series, ...]:
    """Summary numbers of a stress report as flat lines from its start to its end, cut to the window."""
    report = bundle.stress or {}
    numbers = report.get(section) or {}
    began, elapsed = _number(report.get("started_unix")), _number(report.get("elapsed_s"))
    out: list[Series] = []
    for key, label, field in wanted:
        value = _number(numbers.get(field)) if isinstance(numbers, dict) else None
        if not bundle.stress:
            out.append(Series(key, label, "s", source, absent=no_report))
            continue
        if value is None or began is None or elapsed is None:
            out.append(Series(key, label, "s", source, absent=no_value))
            continue
        origin = start if start is not None else began
        t0, t1 = max(began - origin, 0.0), began + elapsed - origin
        if end is not None:
            t1 = min(t1, end - origin)
        out.append(Series(key, label, "s", source, (t0, max(t0, t1)), (value, value)))
    return tuple(out)


# ------------------------------------------------------------------------------------------------


def _sampled(
    key: str,
    label: str,
    unit: str,
    source: str,
    start: float | None,
    rows: Sequence[tuple[float, float | None]],
) -> Series:
    rows = sorted(rows)
    if not any(v is not None for _, v in rows):
        return Series(key, label, unit, source, absent="no readable value in the samples")
    t0 = start if start is not None else rows[0][0]
    return Series(key, label, unit, source, tuple(t - t0 for t, _ in rows), tuple(v for _, v in rows))


def _number(value: object) -> float | None:
    """A JSON number as a float; None for anything else (a bool is no number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _ladder(series: Sequence[Series], ladder: Sequence[tuple[str, float | None]]) -> tuple[Threshold, ...]:
    """The first (lowest) threshold always, a higher one only once `series` (the ones the thresholds
    judge) reach the one below it.

    Why: a 10,000-socket critical line on a chart whose data stay under 100 would squash the data flat;
    the warning line alone says how much headroom there is.
    """
    peak = max((v for s in series for v in s.values if v is not None), default=None)
    out: list[Threshold] = []
    for label, value in ladder:
        if value is None or not math.isfinite(value):
            continue
        if out and value == out[-1].value:  # two rules judging at the same number: one line
            what, _, keys = out[-1].label.partition(" (")
            other = label.partition(" (")[2]
            merged = (
                f"{what} ({keys.rstrip(')')}, {other}" if keys and other else f"{out[-1].label} · {label}"
            )
            out[-1] = Threshold(merged, value)
            continue
        if out and (peak is None or peak < out[-1].value):
            break
        out.append(Threshold(label, value))
    return tuple(out)


def _start(bundle: Bundle) -> float | None:
    """Without a /metrics dump, the first sample of any kind is t = 0."""
    times = [g.t_unix for g in bundle.gpu] + [p.t_unix for p in bundle.processes]
    times += [c.t_unix for c in bundle.sockets]
    return min(times) if times else None


def _issue(bundle: Bundle, collector: str) -> str | None:
    for issue in bundle.issues:
        if issue.collector == collector:
            return issue.reason + (f" ({issue.fix})" if issue.fix else "")
    return None
