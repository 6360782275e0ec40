"""A prometheus_client custom collector over the latest diagnosis (not a pile of mutable Gauges).

Every scrape formats the last good snapshot; nothing here does I/O, so a scrape costs the same whether
vLLM answers in 1 ms or hangs. Names are in base units (`_seconds`, `_ratio`, `_bytes`, `_watts`,
`_hertz`); `_percent` only for CPU in percent of ONE core, as top and psutil report it (200 = two
cores busy), because that is the number the saturation rules reason in (a single Python process tops
out at 100).

Staleness: `rerank_doctor_last_success_timestamp_seconds`, `rerank_doctor_collection_age_seconds`, and
`rerank_doctor_stale` (1 when the latest window failed or the last good one is older than
`stale_after_s`). Values keep being served while stale, so a dashboard shows the last known state and
an alert can say how old it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from diagnose import __version__
from diagnose.exporter.snapshot import COLLECTORS, Snapshot
from diagnose.exporter.state import ExporterState, StateView
from diagnose.redact import redact_command_line
from diagnose.report import LABELS

PREFIX = "rerank_doctor"


def _gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))


class ReportCollector(Collector):
    def __init__(
        self,
        state: ExporterState,
        *,
        url: str = "",
        stale_after_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._state = state
        self._url = url
        self._stale_after_s = stale_after_s
        self._clock = clock

    def describe(self) -> list[Metric]:
        # Registering must not call collect(): that would format a snapshot at import time for nothing.
        return []

    def collect(self) -> Iterator[Metric]:
        return iter(
            families(self._state.view(), now=self._clock(), url=self._url, stale_after_s=self._stale_after_s)
        )


def families(view: StateView, *, now: float, url: str = "", stale_after_s: float = 60.0) -> list[Metric]:
    """Every metric family for one state view (pure: tests call it directly)."""
    out: list[Metric] = []
    snap = view.snapshot

    info = InfoMetricFamily(
        PREFIX,
        "rerank-doctor exporter: its version, the vLLM it watches and its command line (secrets redacted; "
        "fleet mode reads the current flags from it)",
        labels=["version", "url", "vllm_version", "model", "flags"],
    )
    version, model = ((snap.vllm_version or ""), (snap.model or "")) if snap else ("", "")
    flags = redact_command_line(snap.flags) if snap and snap.flags else ""
    info.add_metric([__version__, url, version, model, flags], {})
    out.append(info)

    up = _gauge(
        "collector_up",
        "1 when this collector produced readings in the latest window (vllm: /metrics; gpu: NVML; "
        "host: per-process CPU; sockets: the TCP census)",
        ("collector",),
    )
    for name in COLLECTORS:
        up.add_metric([name], 1.0 if view.collector_up.get(name) else 0.0)
    out.append(up)

    runs = CounterMetricFamily(
        f"{PREFIX}_collections", "Collection windows finished, by outcome", labels=["outcome"]
    )
    runs.add_metric(["ok"], float(view.windows_ok))
    runs.add_metric(["failed"], float(view.windows_failed))
    out.append(runs)

    stale = _gauge(
        "stale",
        f"1 when the values below are not fresh: the latest window failed, or the last good one ended more "
        f"than {stale_after_s:g} s ago (or none has finished yet)",
    )
    age = None if snap is None else max(0.0, now - snap.window_end_t_unix)
    is_stale = snap is None or view.last_attempt_ok is False or (age is not None and age > stale_after_s)
    stale.add_metric([], 1.0 if is_stale else 0.0)
    out.append(stale)
    if snap is None:
        return out  # nothing diagnosed yet: unknown is absent, not 0

    out.append(
        _one(
            "last_success_timestamp_seconds",
            "When the last good window ended (Unix time)",
            snap.window_end_t_unix,
        )
    )
    out.append(_one("collection_age_seconds", "Seconds since the last good window ended", age or 0.0))
    out.append(
        _one(
            "collection_duration_seconds",
            "Wall time the last good window and its diagnosis took",
            snap.collection_s,
        )
    )
    if snap.window_s is not None:
        out.append(
            _one("window_seconds", "First to last /metrics dump of the last good window", snap.window_s)
        )
    out.extend(_verdict(snap))
    out.extend(_gpu(snap))
    out.extend(_cpu(snap))
    out.extend(_sockets(snap))
    return out


def _one(name: str, doc: str, value: float) -> GaugeMetricFamily:
    fam = _gauge(name, doc)
    fam.add_metric([], value)
    return fam


def _verdict(snap: Snapshot) -> list[Metric]:
    report = snap.report
    bottleneck = _gauge(
        "bottleneck",
        "The current verdict: 1 for the label rerank-doctor names as the bottleneck, 0 for the others",
        ("label",),
    )
    for label in LABELS:
        bottleneck.add_metric([label], 1.0 if report.verdict.label == label else 0.0)
    severity = _gauge(
        "verdict_severity", "Severity of the current verdict: 0 ok, 1 info, 2 warning, 3 critical"
    )
    severity.add_metric([], float(int(report.verdict.severity)))
    finding = _gauge(
        "finding",
        "One series per finding of the last window (rule_id as `rerank-doctor check` prints it)",
        ("rule_id", "label", "severity", "confidence", "provisional"),
    )
    for f in report.findings:
        finding.add_metric(
            [f.rule_id, f.label, f.severity.label, f.confidence, "true" if f.provisional else "false"], 1.0
        )
    skipped = _gauge(
        "rule_skipped", "1 for each rule that could not judge the last window (see `check`)", ("rule_id",)
    )
    for s in report.skipped:
        skipped.add_metric([s.rule_id], 1.0)
    return [bottleneck, severity, finding, skipped]


def _gpu(snap: Snapshot) -> list[Metric]:
    if not snap.gpus:
        return []
    util = _gauge(
        "gpu_utilization_ratio",
        "NVML utilization.gpu (share of time a kernel ran, not SM occupancy), mean over the window, 0-1",
        ("gpu", "name"),
    )
    used = _gauge("gpu_memory_used_bytes", "GPU memory used at the end of the window", ("gpu",))
    total = _gauge("gpu_memory_total_bytes", "GPU memory in total", ("gpu",))
    power = _gauge("gpu_power_watts", "GPU power draw, mean over the window", ("gpu",))
    clock = _gauge("gpu_sm_clock_hertz", "SM clock, mean over the window", ("gpu",))
    for g in snap.gpus:
        idx = str(g.index)
        for fam, value, labels in (
            (util, g.util_mean_ratio, [idx, g.name or ""]),
            (used, g.memory_used_bytes, [idx]),
            (total, g.memory_total_bytes, [idx]),
            (power, g.power_mean_w, [idx]),
            (clock, g.sm_clock_mean_hz, [idx]),
        ):
            if value is not None:
                fam.add_metric(labels, value)
    return [util, used, total, power, clock]


def _cpu(snap: Snapshot) -> list[Metric]:
    out: list[Metric] = []
    if snap.roles:
        mean = _gauge(
            "process_cpu_percent",
            "CPU of the busiest vLLM process of each role (api_server, engine_core, worker), mean over the "
            "window, in percent of ONE core (100 = one core saturated); the whole host is host_cpu_ratio",
            ("role",),
        )
        peak = _gauge("process_cpu_max_percent", "Same, highest one-second sample of the window", ("role",))
        count = _gauge("processes", "vLLM processes seen per role", ("role",))
        together = _gauge(
            "role_cpu_percent",
            "CPU of every vLLM process of each role together, mean over the window, in percent of ONE core "
            "(8 API servers at 50 % each = 400); only when every process of the role was measured",
            ("role",),
        )
        for r in snap.roles:
            if r.mean_pct is not None:
                mean.add_metric([r.role], r.mean_pct)
            if r.max_pct is not None:
                peak.add_metric([r.role], r.max_pct)
            count.add_metric([r.role], float(r.processes))
            if r.total_mean_pct is not None:
                together.add_metric([r.role], r.total_mean_pct)
        out += [mean, peak, count, together]
    # The whole host in the unit `check` and bundles give it, all cores (docs/units.md), as a 0-1 ratio.
    for name, doc, value in (
        (
            "host_cpu_ratio",
            "CPU of the whole host, mean over the window, fraction of ALL cores",
            snap.host_cpu_mean_ratio,
        ),
        ("host_cpu_max_ratio", "Same, highest one-second sample of the window", snap.host_cpu_max_ratio),
    ):
        if value is not None:
            family = _gauge(name, doc)
            family.add_metric([], value)
            out.append(family)
    return out


def _sockets(snap: Snapshot) -> list[Metric]:
    out: list[Metric] = []
    if snap.port_sockets is not None and snap.serving_port is not None:
        port = _gauge(
            "port_sockets",
            "TCP sockets on the serving port by state, last census of the window (TIME_WAIT floods = clients "
            "not reusing connections)",
            ("port", "state"),
        )
        for state, n in sorted(snap.port_sockets.items()):
            port.add_metric([str(snap.serving_port), state], float(n))
        out.append(port)
        if snap.port_time_wait_recent is not None:
            recent = _gauge(
                "port_time_wait_recent_sockets",
                "TIME_WAIT sockets on the serving port closed in the last 5 s (their 60 s timer has >55 s "
                "left), last census: connections closed per 5 s, an ongoing flood told from an old one",
                ("port",),
            )
            recent.add_metric([str(snap.serving_port)], float(snap.port_time_wait_recent))
            out.append(recent)
    if snap.host_sockets is not None:
        host = _gauge("host_sockets", "TCP sockets on the whole host by state, last census", ("state",))
        for state, n in sorted(snap.host_sockets.items()):
            host.add_metric([state], float(n))
        out.append(host)
    return out
