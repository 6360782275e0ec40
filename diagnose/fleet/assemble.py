"""Query answers -> one Bundle per replica (pure, no I/O), for the same pipeline `check --from` runs.

The Bundle is what `collect` would have written on that replica, rebuilt from Prometheus:
- `dumps`: the first is every counter and histogram at the window's start, the last the same at its end
  with the gauges read off the last dump, each stamped with the time Prometheus scraped it (so rates use
  the true span). The dumps are built parsed
  (exposition.PreParsedDump: the samples a parsed /metrics holds, under the same policy), since the
  answers' JSON was already read once by the client; written as text they would only be parsed again.
- `gpu`, `processes`, `sockets`: the exporters' series beside vLLM (sidecars.py): the GPU rows at each
  step; per-process CPU and the socket censuses as one sample of the window's means and maxima (what
  the derivation reads of them), at vLLM's last scrape (the charts' bundles: at every step).
- `issues`: each source Prometheus lacks for this replica, with how to get it.
- `store_quantiles`: the p95s Prometheus computed (queries.STORE_QUANTILE_HISTOGRAMS), whose histograms
  the dumps carry without their finite buckets.
- `store_gauges`: the scheduler's gauges' maxima and means over every scrape of the window, which
  Prometheus computed (queries.GAUGE_WINDOW_KEY): the dumps do not carry those gauges.
With `steps=True` (the HTML page's charted replicas) every range step is a dump of its own instead.

A replica is the value of the replica label (default `pod`; a series without it falls back to
`instance`). Only series of a replica's vLLM targets count as its `http_*` and `process_*` families, so a
sidecar exporter's own `process_cpu_seconds_total` is never read as vLLM's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from diagnose.derive.sections.scheduler import WINDOW_GAUGES
from diagnose.fleet.client import Series
from diagnose.fleet.queries import (
    EXPORTER_WINDOW_KEY,
    GAUGE_WINDOW_KEY,
    OF_LABEL,
    QUANTILE_KEY,
    STAT_LABEL,
    STORE_QUANTILE,
)
from diagnose.fleet.sidecars import dcgm_readings, exporter_readings
from diagnose.fleet.window import Window
from diagnose.metrics.exposition import LabelSet, PreParsedDump, parsed_from_samples
from diagnose.metrics.names import CONCEPTS, spellings
from diagnose.readings import (
    Bundle,
    CollectorIssue,
    MetricsDump,
    ServerInfo,
    StoreGauge,
    StoreQuantile,
)
from diagnose.redact import redact_command_line

# Labels Prometheus adds per target: not part of what vLLM served, left out of the rebuilt exposition.
_TARGET_LABELS = frozenset({"__name__", "job", "namespace", "pod", "container", "endpoint", "service"})

# The answers that carry counters and histograms (queries.py): their values at both ends of the window.
CUMULATIVE_KEYS = ("cumulative", "mean_only")
MEAN_ONLY_KEY = "mean_only"  # histograms fetched without buckets: _count and _sum only
# dcgm-exporter's answers: its series at each step, and each step's maxima.
DCGM_KEYS = ("dcgm", "dcgm_max")

EXPORTER_FIX = (
    "deploy the exporter sidecar (`rerank-doctor export --url http://127.0.0.1:8000` in the vLLM pod, "
    "scraped with the same pod label): per-process CPU and sockets are not in Prometheus otherwise"
)
GPU_FIX = (
    "deploy dcgm-exporter with pod mapping (DCGM_EXPORTER_KUBERNETES=true) or the rerank-doctor exporter "
    "beside vLLM: GPU utilization is not in Prometheus otherwise"
)


@dataclass(slots=True)
class ReplicaData:
    """One replica's rebuilt readings, plus what only the fleet view uses."""

    replica: str
    bundle: Bundle
    model_name: str | None = None
    vllm_version: str | None = None
    flags: str | None = None  # vLLM's command line, from our exporter's rerank_doctor_info (redacted)
    seen_at_start: bool = False
    seen_at_end: bool = False
    first_scrape_unix: float | None = None  # when Prometheus scraped the samples the window starts from
    last_scrape_unix: float | None = None
    counter_resets: float | None = None  # resets() over the window, the largest of its series
    up_min: float | None = None  # min_over_time(up) over the window: 0 = a scrape failed
    up_end: float | None = None
    container_cpu_cores: dict[str, float] = field(default_factory=dict)  # cAdvisor, by container
    sources: dict[str, bool] = field(default_factory=dict)  # vllm, gpu, exporter, cadvisor -> present


def replica_of(labels: dict[str, str], replica_label: str) -> str | None:
    return labels.get(replica_label) or labels.get("instance")


def _is_vllm(name: str) -> bool:
    return name.startswith(("vllm:", "vllm_"))


LabelKey = tuple[tuple[str, str], ...]
Sample = tuple[str, LabelSet]  # (sample name, labels): one series of a rebuilt dump


class _Keys:
    """(name, LabelSet) per label key, shared by every replica: replicas of one model expose the same
    series, so each is sorted and stripped of the target labels once."""

    def __init__(self) -> None:
        self._cache: dict[LabelKey, Sample] = {}

    def get(self, key: LabelKey) -> Sample:
        sample = self._cache.get(key)
        if sample is None:
            name = ""
            pairs = []
            for k, v in key:
                if k == "__name__":
                    name = v
                elif k not in _TARGET_LABELS:
                    pairs.append((k, v))
            sample = self._cache[key] = (name, tuple(sorted(pairs)))
        return sample


def target_of(labels: dict[str, str], replica_label: str) -> str:
    """The vLLM target a series came from, as _split names it: its `instance`, or "" where `instance` is
    the replica label itself (then a replica is one target)."""
    return "" if replica_label == "instance" else labels.get("instance", "")


def _split(labels: dict[str, str], replica_label: str) -> tuple[str | None, str, LabelKey]:
    """(replica, instance, the other labels as a key). Prometheus sends labels sorted by name."""
    replica = labels.pop(replica_label, None)
    instance = labels.pop("instance", "")
    return replica or instance or None, instance, tuple(labels.items())


class _Replica:
    """Mutable accumulator while answers are sorted into replicas."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.start: list[tuple[str, LabelKey, float]] = []  # (instance, key, value)
        self.end: list[tuple[str, LabelKey, float]] = []
        # Chart mode (assemble(steps=True)): every evaluation time's counters, one dump each.
        self.steps: dict[float, list[tuple[str, LabelKey, float]]] = {}
        self.scraped: dict[float, float] = {}  # evaluation time -> when the samples seen then were scraped
        self.gauges: list[tuple[str, LabelKey, tuple[tuple[float, float], ...]]] = []
        self.info: list[dict[str, str]] = []
        self.exporter: list[Series] = []
        self.exporter_window: list[Series] = []  # the window's means and maxima (one point, at its end)
        self.dcgm: list[Series] = []
        self.quantiles: dict[str, list[tuple[str, float]]] = {}  # concept -> (instance, value)
        # The scheduler's gauges over the window: (gauge, statistic) -> sample name -> [(instance, value)]
        self.gauge_window: dict[tuple[str, str], dict[str, list[tuple[str, float]]]] = {}
        self.vllm_instances: set[str] = set()
        self.http_instances: set[str] = set()
        self.data = ReplicaData(name, Bundle())


def assemble(
    answers: dict[str, list[Series]],
    window: Window,
    replica_label: str,
    *,
    require_vllm: bool,
    first_le: Mapping[str, float] | None = None,
    steps: bool = False,
) -> list[ReplicaData]:
    """Every replica found in the answers, sorted by name. `require_vllm=False` (a selector was given)
    also keeps replicas whose only series are HTTP ones (vLLM with --disable-log-stats). `first_le`: the
    first bucket bound of each histogram whose quantile Prometheus computed (answer `quantile:<concept>`).
    `steps=True` (charts: the answers are range queries over the window) makes every evaluation time a
    dump with every counter, histogram and gauge, so each interval has its own rates and quantiles.

    Each answer is walked once and sorted into replicas, so the cost grows with the series, never with
    replicas x series. The answers' label dicts are consumed (labels are popped)."""
    replicas: dict[str, _Replica] = {}

    def get(name: str) -> _Replica:
        r = replicas.get(name)
        if r is None:
            r = replicas[name] = _Replica(name)
        return r

    for answer in CUMULATIVE_KEYS:
        for s in answers.get(answer, []):
            name, inst, key = _split(s.labels, replica_label)
            if name is None:
                continue
            r = get(name)
            metric = s.labels.get("__name__", "")
            if _is_vllm(metric):
                r.vllm_instances.add(inst)
            elif metric.startswith("http_requests"):
                r.http_instances.add(inst)
            series_keys = (
                (key, _inf_bucket(key, metric))
                if answer == MEAN_ONLY_KEY and metric.endswith("_count")
                else (key,)
            )
            for t, v in s.points:
                for k in series_keys:
                    if steps:
                        r.steps.setdefault(t, []).append((inst, k, v))
                    else:
                        (r.end if window.is_end(t) else r.start).append((inst, k, v))
    for s in answers.get("gauges", []):
        name, inst, key = _split(s.labels, replica_label)
        if name is not None:
            r = get(name)
            r.vllm_instances.add(inst)
            r.gauges.append((inst, key, s.points))

    kept = {
        name: r for name, r in replicas.items() if r.vllm_instances or (not require_vllm and r.http_instances)
    }
    for s in answers.get("info", []):
        name = replica_of(s.labels, replica_label)
        if name in kept:
            kept[name].info.append(s.labels)
    for s in answers.get("exporter", []):
        name = replica_of(s.labels, replica_label)
        if name in kept:
            kept[name].exporter.append(s)
    for s in answers.get(EXPORTER_WINDOW_KEY, []):
        name = replica_of(s.labels, replica_label)
        if name in kept and OF_LABEL in s.labels:
            s.labels["__name__"] = s.labels.pop(OF_LABEL)  # queries.py's _exporter_window says why
            kept[name].exporter_window.append(s)
    for s in (s for key in DCGM_KEYS for s in answers.get(key, [])):
        # dcgm-exporter's own pod label is the exporter's pod; its pod mapping puts the GPU's workload in
        # `pod`, which Prometheus renames `exported_pod` unless honor_labels is set.
        name = s.labels.get(f"exported_{replica_label}") or s.labels.get(replica_label)
        if name in kept:
            kept[name].dcgm.append(s)
    for s in answers.get(GAUGE_WINDOW_KEY, []):
        name = replica_of(s.labels, replica_label)
        stat, of = s.labels.get(STAT_LABEL, ""), s.labels.get(OF_LABEL)
        if name in kept and of and ":" in stat and not math.isnan(s.points[0][1]):
            gauge, _, which = stat.partition(":")
            by_name = kept[name].gauge_window.setdefault((gauge, which), {})
            by_name.setdefault(of, []).append((target_of(s.labels, replica_label), s.points[0][1]))
    for concept in first_le or {}:
        for s in answers.get(QUANTILE_KEY + concept, []):
            name = replica_of(s.labels, replica_label)
            if name in kept:
                kept[name].quantiles.setdefault(concept, []).append(
                    (target_of(s.labels, replica_label), s.points[0][1])
                )
    _per_replica_values(kept, answers, replica_label, window)
    keys = _Keys()
    return [_finish(r, window, replica_label, keys, first_le or {}) for _, r in sorted(kept.items())]


def _inf_bucket(count_key: LabelKey, count_name: str) -> LabelKey:
    """The +Inf bucket's labels of a histogram fetched as `_count` and `_sum` only (queries.py's
    mean_only): a histogram's +Inf bucket counts every observation, so it equals `_count`."""
    bucket = count_name.removesuffix("_count") + "_bucket"
    return (*(("__name__", bucket) if k == "__name__" else (k, v) for k, v in count_key), ("le", "+Inf"))


def _per_replica_values(
    kept: dict[str, _Replica], answers: dict[str, list[Series]], label: str, window: Window
) -> None:
    def each(key: str) -> Iterable[tuple[_Replica, Series]]:
        for s in answers.get(key, []):
            name = replica_of(s.labels, label)
            if name in kept:
                yield kept[name], s

    for r, s in each("scraped"):
        for t, scraped in s.points:
            r.scraped[t] = max(r.scraped.get(t, 0.0), scraped)
            if not window.is_end(t):
                r.data.seen_at_start = True
                r.data.first_scrape_unix = min(r.data.first_scrape_unix or math.inf, scraped)
            else:
                r.data.seen_at_end = True
                r.data.last_scrape_unix = max(r.data.last_scrape_unix or 0.0, scraped)
    for r, s in each("resets"):
        r.data.counter_resets = max(r.data.counter_resets or 0.0, s.points[0][1])
    for r, s in each("up_min"):
        if target_of(s.labels, label) in r.vllm_instances | r.http_instances:
            r.data.up_min = min(r.data.up_min if r.data.up_min is not None else 1.0, s.points[0][1])
    for r, s in each("up_end"):
        if target_of(s.labels, label) in r.vllm_instances | r.http_instances:
            r.data.up_end = min(r.data.up_end if r.data.up_end is not None else 1.0, s.points[0][1])
    for s in answers.get("container_cpu", []):
        name = s.labels.get(label)
        if name in kept and (container := s.labels.get("container")):
            kept[name].data.container_cpu_cores[container] = s.points[0][1]


def _finish(
    r: _Replica, window: Window, label: str, keys: _Keys, first_le: Mapping[str, float]
) -> ReplicaData:
    data = r.data
    targets = r.vllm_instances or r.http_instances
    for concept, le in first_le.items():
        # NaN: no observation in the window. Several vLLM targets in one replica (rare: one per pod is the
        # rule): the largest of their quantiles, an upper bound of the replica's own.
        values = [v for inst, v in r.quantiles.get(concept, []) if inst in targets and not math.isnan(v)]
        data.bundle.store_quantiles[concept] = StoreQuantile(
            concept, STORE_QUANTILE, max(values) if values else None, le
        )
    data.bundle.store_gauges = _store_gauges(r.gauge_window, targets)
    # One vLLM target per replica is the rule; with several, `instance` keeps their series apart.
    several = len(targets) > 1

    def series(inst: str, key: LabelKey) -> Sample:
        return keys.get((*key, ("instance", inst)) if several else key)

    def cumulative(values: list[tuple[str, LabelKey, float]]) -> dict[Sample, float]:
        out = {}
        for inst, key, v in values:
            # http_* and process_* are any Python server's: only the vLLM targets' own count.
            if inst not in targets and not _is_vllm(dict(key).get("__name__", "")):
                continue
            out[series(inst, key)] = v
        return out

    if r.steps:
        return _finish_steps(r, data, window, label, series, cumulative)
    t_first = data.first_scrape_unix if data.first_scrape_unix is not None else window.start_unix
    t_last = data.last_scrape_unix if data.last_scrape_unix is not None else window.end_unix
    # The exporter's window means and maxima: one sample covering the window, stamped with vLLM's last
    # scrape (the derivation reads process samples inside the dumps' window).
    r.exporter.extend(Series(s.labels, tuple((t_last, v) for _, v in s.points)) for s in r.exporter_window)
    first = cumulative(r.start)
    last = cumulative(r.end)
    # The gauges the scheduler does not fold (queries.py asks for them at the window's end only) are read
    # off the last dump; the scheduler's come as store_gauges.
    for inst, key, points in r.gauges:
        sample = series(inst, key)
        for _, v in points:
            last[sample] = v
    _info(r, data, label, series, last)
    dumps: list[MetricsDump] = []
    if first and data.seen_at_start:
        dumps.append(_dump(t_first, first))
    if last and (not dumps or t_last > dumps[-1].t_unix):
        dumps.append(_dump(t_last, last))
    elif last and dumps:
        # The same scrape at both ends (one sample in the window): one dump, as one scrape is.
        dumps[-1] = _dump(dumps[-1].t_unix, last)
    data.bundle.dumps = dumps
    return _finish_sources(r, data, window)


def _store_gauges(
    window: dict[tuple[str, str], dict[str, list[tuple[str, float]]]], targets: set[str]
) -> dict[str, StoreGauge]:
    """The scheduler's gauges as Prometheus summarised them: each read under the earliest of its
    concept's names the replica has (as names.resolve reads a dump), both statistics under that one
    name, summed over the replica's vLLM targets."""
    out = {}
    for gauge, (concept, _) in WINDOW_GAUGES.items():
        highs, means = window.get((gauge, "max"), {}), window.get((gauge, "mean"), {})
        for name in (s for n in CONCEPTS[concept].names for s in spellings(n)):
            high = [v for inst, v in highs.get(name, []) if inst in targets]
            if high:
                mean = [v for inst, v in means.get(name, []) if inst in targets]
                if mean:
                    out[gauge] = StoreGauge(gauge, sum(high), sum(mean))
                break
    return out


def _dump(t: float, values: dict[Sample, float]) -> MetricsDump:
    # Parsed already (the answers' JSON was read once, by the client): no exposition text is written
    # only for the parser to read it again.
    return PreParsedDump(parsed_from_samples(t, ((name, ls, v) for (name, ls), v in values.items())))


def _info(
    r: _Replica,
    data: ReplicaData,
    label: str,
    series: Callable[[str, LabelKey], Sample],
    into: dict[Sample, float],
) -> None:
    """vLLM's info series into the dump `into`; our exporter's rerank_doctor_info into the replica's facts."""
    for info in r.info:
        if info.get("__name__", "").startswith("rerank_doctor"):
            data.vllm_version = info.get("vllm_version") or data.vllm_version
            data.model_name = data.model_name or info.get("model") or None
            data.flags = info.get("flags") or data.flags
        else:
            _, inst, key = _split(dict(info), label)
            into[series(inst, key)] = 1.0


def _finish_steps(
    r: _Replica,
    data: ReplicaData,
    window: Window,
    label: str,
    series: Callable[[str, LabelKey], Sample],
    cumulative: Callable[[list[tuple[str, LabelKey, float]]], dict[Sample, float]],
) -> ReplicaData:
    """Chart mode: one dump per scrape the steps saw, counters and gauges together, stamped with the
    scrape's time. A step that sees the same scrape as the one before (steps finer than the scrape
    interval, or a series gone quiet inside Prometheus' 5-minute lookback) is no new dump: repeating it
    would chart zero rates where nothing was scraped."""
    by_t = {t: cumulative(values) for t, values in r.steps.items()}
    for inst, key, points in r.gauges:
        sample = series(inst, key)
        for t, v in points:
            by_t.setdefault(t, {})[sample] = v
    last_t = max(by_t)
    r.end = r.steps.get(last_t, [])
    _info(r, data, label, series, by_t[last_t])
    dumps: list[MetricsDump] = []
    previous: float | None = None
    for t, values in sorted(by_t.items()):
        scraped = r.scraped.get(t, t) if r.scraped else t
        if previous is not None and scraped <= previous:
            continue
        dumps.append(_dump(scraped, values))
        previous = scraped
    data.bundle.dumps = dumps
    return _finish_sources(r, data, window)


def _finish_sources(r: _Replica, data: ReplicaData, window: Window) -> ReplicaData:
    """The replica's model, server facts, GPU and exporter readings, and the sources it lacks."""
    models = {v for _, key, _ in r.end for k, v in key if k == "model_name" and v}
    data.model_name = (sorted(models)[0] if models else None) or data.model_name
    flags = redact_command_line(data.flags) if data.flags else None
    data.bundle.server = ServerInfo(
        url=None, version=data.vllm_version, model_id=data.model_name, flags=flags
    )
    dcgm_readings(data.bundle, r.dcgm)  # first: the exporter's NVML rows are only read without them
    exporter_readings(data.bundle, r.exporter)
    data.sources = {
        "vllm": bool(r.vllm_instances),
        "gpu": bool(data.bundle.gpu),
        "exporter": bool(data.bundle.processes or data.bundle.sockets),
        "cadvisor": bool(data.container_cpu_cores),
    }
    t = window.end_unix
    if not data.bundle.gpu:
        data.bundle.issues.append(
            CollectorIssue(t, "gpu", "no GPU series for this replica in Prometheus (dcgm-exporter)", GPU_FIX)
        )
    if not data.bundle.processes:
        data.bundle.issues.append(
            CollectorIssue(t, "host", "per-process CPU is not in Prometheus for this replica", EXPORTER_FIX)
        )
    if not data.bundle.sockets:
        data.bundle.issues.append(
            CollectorIssue(
                t, "sockets", "no serving-port socket census in Prometheus for this replica", EXPORTER_FIX
            )
        )
    return data


def owner(key: str, labels: dict[str, str], replica_label: str) -> str | None:
    """The replica a series of answer `key` belongs to (as assemble() decides it)."""
    if key in DCGM_KEYS:
        return labels.get(f"exported_{replica_label}") or labels.get(replica_label)
    if key == "container_cpu":
        return labels.get(replica_label)
    return replica_of(labels, replica_label)


def partition(
    answers: dict[str, list[Series]], replica_label: str, parts: int
) -> list[dict[str, list[Series]]]:
    """The answers split into `parts` groups of whole replicas: each group assembles on its own, to the
    same replicas assemble() finds in the whole."""
    out: list[dict[str, list[Series]]] = [{key: [] for key in answers} for _ in range(parts)]
    slot: dict[str, int] = {}
    for key, series in answers.items():
        for s in series:
            name = owner(key, s.labels, replica_label)
            if name is None:
                continue
            index = slot.get(name)
            if index is None:
                index = slot[name] = len(slot) % parts
            out[index][key].append(s)
    return out


def down_without_series(
    answers: dict[str, list[Series]], replica_label: str, diagnosed: set[str]
) -> list[str]:
    """Replicas whose target was down (`up == 0`) at the window's end and that sent no vLLM series in it:
    a pod that crashed before the window, which the vLLM queries alone cannot see."""
    down = {
        name
        for s in answers.get("up_end", [])
        if s.points and s.points[0][1] == 0 and (name := replica_of(s.labels, replica_label)) is not None
    }
    return sorted(down - diagnosed)
