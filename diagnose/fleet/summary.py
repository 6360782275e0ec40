"""Per-replica reports -> the fleet view (pure): worst first, imbalance, stale replicas, versions, headroom.

Each replica's verdict is the ordinary report of its rebuilt Bundle; nothing here re-judges a replica.
The fleet adds what only many replicas show:
- imbalance: a replica's share of its model's pairs/s against its share of the model's capacity (equal
  capacity assumed where the evidence gives none: replicas of one model usually run one shape);
- stale: replicas whose series vanished or went stale in the window, or whose target was down (`up`);
- versions: the vLLM versions per model (from our exporter's `rerank_doctor_info`, when deployed);
- headroom: pairs/s served against the capacity the evidence implies.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from diagnose.fleet.assemble import ReplicaData
from diagnose.fleet.window import Window
from diagnose.report import CONFIDENCES, LABELS, Report, Severity, Verdict

# A replica is out of balance when its load share is at least this many times its capacity share
# (or at most its inverse): 1.5x is one replica doing the work of one and a half.
IMBALANCE_RATIO = 1.5
# A replica whose last scrape is older than this at the window's end is stale (8 default scrape intervals).
STALE_AFTER_S = 120.0
# Capacity is extrapolated from the busiest resource's busy share only above this share: below it the
# extrapolation says little (an idle replica's "capacity" would be pairs/s divided by almost nothing).
MIN_BUSY_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class ReplicaResult:
    replica: str
    model_name: str | None
    vllm_version: str | None
    report: Report
    data: ReplicaData
    pairs_per_s: float | None  # vllm:request_success_total delta / window (one engine request = one pair)
    # pairs/s divided by the busy share (0-1) of its busiest measured resource (GPU, API server, engine core):
    # a linear extrapolation to that resource at 100 %; None when no resource is measured busy enough.
    capacity_pairs_per_s: float | None
    load_share: float | None = None  # of its model's pairs/s, 0-1
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Imbalance:
    model_name: str
    replica: str
    load_share: float  # 0-1 of the model's pairs/s
    capacity_share: float  # 0-1 of the model's capacity (1/n when capacity is unknown)
    capacity_known: bool


@dataclass(frozen=True, slots=True)
class StaleReplica:
    replica: str
    reason: str


@dataclass(frozen=True, slots=True)
class Headroom:
    served_pairs_per_s: float  # every replica with a known rate
    capacity_pairs_per_s: float | None  # the replicas with an implied capacity, summed
    served_by_those_pairs_per_s: float | None  # what those same replicas serve
    replicas_with_capacity: int
    replicas_without_capacity: int


@dataclass(slots=True)
class FleetReport:
    source: str
    window: Window
    replica_label: str
    selector: str
    replicas: list[ReplicaResult]  # worst first
    verdict: Verdict
    by_label: dict[str, int]
    imbalance: list[Imbalance] = field(default_factory=list)
    stale: list[StaleReplica] = field(default_factory=list)
    versions: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # model -> version -> replicas
    headroom: Headroom | None = None
    warnings: list[str] = field(default_factory=list)
    queries: int = 0
    bytes_read: int = 0

    def worst(self) -> Severity:
        return max((r.report.worst() for r in self.replicas), default=Severity.OK)


def _num(report: Report, key: str) -> float | None:
    value = report.evidence.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _capacity(report: Report, pairs_per_s: float | None) -> float | None:
    if pairs_per_s is None or pairs_per_s <= 0:
        return None
    shares = [
        v / 100.0
        for key in ("gpu_util_mean_pct", "api_server_cpu_mean_pct", "engine_core_cpu_mean_pct")
        if (v := _num(report, key)) is not None
    ]
    busiest = max(shares, default=None)
    if busiest is None or busiest < MIN_BUSY_SHARE:
        return None
    return pairs_per_s / min(1.0, busiest)


def _notes(data: ReplicaData) -> tuple[str, ...]:
    notes = []
    if not data.seen_at_start:
        notes.append(
            "no samples at the window's start (it appeared inside the window): counters need both ends"
        )
    if data.counter_resets:
        notes.append(
            f"vLLM restarted in the window ({data.counter_resets:g} counter resets):"
            " counts are from the restart"
        )
    return tuple(notes)


def _stale(data: ReplicaData, window: Window) -> str | None:
    if data.up_end == 0:
        return "down: up == 0 at the end of the window"
    if not data.seen_at_end:
        return "vanished: its series were gone before the window ended"
    if data.last_scrape_unix is not None and window.end_unix - data.last_scrape_unix > STALE_AFTER_S:
        return f"stale: last scraped {window.end_unix - data.last_scrape_unix:.0f} s before the window ended"
    if data.up_min == 0:
        return "flapping: at least one failed scrape (up == 0) in the window"
    return None


def _sort_key(r: ReplicaResult) -> tuple[int, int, tuple[str | int, ...], str]:
    v = r.report.verdict
    # The name last: natural_order ties rr-01 with rr-1, and the workers' groups come in any order.
    return (-int(r.report.worst()), -CONFIDENCES.index(v.confidence), natural_order(r.replica), r.replica)


def natural_order(name: str) -> tuple[str | int, ...]:
    """rr-2 before rr-10: the digit runs of a name compared as numbers (re.split alternates text, digits)."""
    return tuple(int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", name)))


def fleet_verdict(results: list[ReplicaResult]) -> Verdict:
    """The worst severity any replica has, with the label most replicas at that severity share."""
    worst = max((r.report.worst() for r in results), default=Severity.OK)
    at_worst = [r for r in results if r.report.worst() == worst]
    labels = Counter(r.report.verdict.label for r in at_worst)
    label = min(labels, key=lambda lab: (-labels[lab], LABELS.index(lab) if lab in LABELS else len(LABELS)))
    deciding = [r for r in at_worst if r.report.verdict.label == label]
    rules = Counter(r.report.verdict.rule_id for r in deciding if r.report.verdict.rule_id)
    confidence = min((r.report.verdict.confidence for r in deciding), key=CONFIDENCES.index)
    return Verdict(label, worst, confidence, rules.most_common(1)[0][0] if rules else None)


def summarize(
    pairs: list[tuple[ReplicaData, Report]],
    window: Window,
    *,
    source: str,
    replica_label: str,
    selector: str,
    warnings: list[str],
    queries: int,
    bytes_read: int,
    down_without_series: list[str] | None = None,
) -> FleetReport:
    results = []
    for data, report in pairs:
        rate = _num(report, "engine_requests_per_s")
        results.append(
            ReplicaResult(
                replica=data.replica,
                model_name=data.model_name,
                vllm_version=data.vllm_version,
                report=report,
                data=data,
                pairs_per_s=rate,
                capacity_pairs_per_s=_capacity(report, rate),
                notes=_notes(data),
            )
        )
    results, imbalance = _imbalance(results)
    results.sort(key=_sort_key)
    stale = [StaleReplica(r.replica, why) for r in results if (why := _stale(r.data, window)) is not None]
    stale += [
        StaleReplica(name, "down: up == 0 at the end of the window, and no vLLM series in it")
        for name in down_without_series or []
    ]
    versions: dict[str, dict[str, list[str]]] = {}
    for r in results:
        if r.vllm_version:
            versions.setdefault(r.model_name or "unknown model", {}).setdefault(r.vllm_version, []).append(
                r.replica
            )
    return FleetReport(
        source=source,
        window=window,
        replica_label=replica_label,
        selector=selector,
        replicas=results,
        verdict=fleet_verdict(results),
        by_label=dict(Counter(r.report.verdict.label for r in results).most_common()),
        imbalance=imbalance,
        stale=stale,
        versions=versions,
        headroom=_headroom(results),
        warnings=list(warnings),
        queries=queries,
        bytes_read=bytes_read,
    )


def _imbalance(results: list[ReplicaResult]) -> tuple[list[ReplicaResult], list[Imbalance]]:
    by_model: dict[str, list[ReplicaResult]] = {}
    for r in results:
        by_model.setdefault(r.model_name or "unknown model", []).append(r)
    shared: dict[str, float] = {}
    found: list[Imbalance] = []
    for model, group in sorted(by_model.items()):
        rated = [r for r in group if r.pairs_per_s is not None]
        total = sum(r.pairs_per_s or 0.0 for r in rated)
        if len(rated) < 2 or total <= 0:
            continue
        capacities = [r.capacity_pairs_per_s for r in rated]
        known = all(c is not None for c in capacities)
        cap_total = sum(c or 0.0 for c in capacities) if known else 0.0
        for r in rated:
            share = (r.pairs_per_s or 0.0) / total
            shared[r.replica] = share
            cap_share = (
                (r.capacity_pairs_per_s or 0.0) / cap_total if known and cap_total > 0 else 1 / len(rated)
            )
            if cap_share > 0 and (
                share / cap_share >= IMBALANCE_RATIO or share / cap_share <= 1 / IMBALANCE_RATIO
            ):
                found.append(Imbalance(model, r.replica, share, cap_share, known and cap_total > 0))
    found.sort(key=lambda i: -abs(i.load_share - i.capacity_share))
    out = [
        ReplicaResult(
            r.replica,
            r.model_name,
            r.vllm_version,
            r.report,
            r.data,
            r.pairs_per_s,
            r.capacity_pairs_per_s,
            shared.get(r.replica),
            r.notes,
        )
        for r in results
    ]
    return out, found


def _headroom(results: list[ReplicaResult]) -> Headroom | None:
    rated = [r for r in results if r.pairs_per_s is not None]
    if not rated:
        return None
    with_cap = [r for r in rated if r.capacity_pairs_per_s is not None]
    return Headroom(
        served_pairs_per_s=sum(r.pairs_per_s or 0.0 for r in rated),
        capacity_pairs_per_s=sum(r.capacity_pairs_per_s or 0.0 for r in with_cap) if with_cap else None,
        served_by_those_pairs_per_s=sum(r.pairs_per_s or 0.0 for r in with_cap) if with_cap else None,
        replicas_with_capacity=len(with_cap),
        replicas_without_capacity=len(rated) - len(with_cap),
    )
