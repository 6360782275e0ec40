"""The fleet summary (diagnose/fleet/summary.py) over reports of real recordings: imbalance against
capacity, mixed versions, stale replicas, the fleet verdict."""

from __future__ import annotations

from pathlib import Path

from diagnose.bundle import read_bundle
from diagnose.fleet.assemble import ReplicaData
from diagnose.fleet.summary import summarize
from diagnose.fleet.window import Window
from diagnose.pipeline import diagnose

FIXTURES = Path(__file__).resolve().parent / "fixtures"
WINDOW = Window(1796234000.0, 1796234600.0)


def _replica(name: str, recording: str, *, model: str, version: str | None = None, **state: object) -> tuple:
    path = FIXTURES / recording
    bundle = read_bundle(path / "bundle" if (path / "bundle").is_dir() else path)
    data = ReplicaData(
        name, bundle, model_name=model, vllm_version=version, seen_at_start=True, seen_at_end=True
    )
    data.last_scrape_unix = WINDOW.end_unix - 5
    for key, value in state.items():
        setattr(data, key, value)
    return data, diagnose(bundle)


def _summary(*pairs: tuple) -> object:
    return summarize(
        list(pairs), WINDOW, source="http://prom", replica_label="pod", selector="", warnings=[], queries=10,
        bytes_read=0,
    )  # fmt: skip


def test_a_replica_with_most_of_its_models_pairs_and_unknown_capacity_is_out_of_balance() -> None:
    # The CPU lab served 9.9 pairs/s, the 0.7-era recording 0.5: as two replicas of one model with no
    # measured busy resource (equal capacity assumed), the first carries 95 % against a fair 50 %.
    report = _summary(
        _replica("rr-0", "vllm-0.32-cpu-lab", model="m"), _replica("rr-1", "vllm-0.7-era", model="m")
    )
    (busy, idle) = sorted(report.imbalance, key=lambda i: -i.load_share)
    assert (busy.replica, idle.replica) == ("rr-0", "rr-1")
    assert busy.load_share > 0.9 and busy.capacity_share == 0.5 and not busy.capacity_known


def test_load_that_follows_measured_capacity_is_not_imbalance() -> None:
    # 611 pairs/s with the API server saturated, 809 with the engine core saturated: each serves what its
    # busiest resource allows, so 43 % / 57 % of the load is 43 % / 57 % of the capacity.
    report = _summary(
        _replica("rr-0", "gpu-h200-0.6b-1api-closed", model="m"),
        _replica("rr-1", "gpu-h200-0.6b-8api-closed", model="m"),
    )
    assert report.imbalance == []
    assert all(r.capacity_pairs_per_s is not None for r in report.replicas)


def test_mixed_versions_of_one_model_are_listed_by_version() -> None:
    report = _summary(
        _replica("rr-0", "vllm-0.32-cpu-lab", model="m", version="0.32.0"),
        _replica("rr-1", "vllm-0.32-cpu-lab", model="m", version="0.34.0"),
        _replica("rr-2", "vllm-0.32-cpu-lab", model="m", version="0.34.0"),
    )
    assert report.versions == {"m": {"0.32.0": ["rr-0"], "0.34.0": ["rr-1", "rr-2"]}}


def test_down_vanished_and_stale_replicas_are_each_named() -> None:
    report = _summary(
        _replica("rr-0", "vllm-0.32-cpu-lab", model="m", up_end=0.0),
        _replica("rr-1", "vllm-0.32-cpu-lab", model="m", seen_at_end=False),
        _replica("rr-2", "vllm-0.32-cpu-lab", model="m", last_scrape_unix=WINDOW.end_unix - 600),
        _replica("rr-3", "vllm-0.32-cpu-lab", model="m"),
    )
    reasons = {s.replica: s.reason.split(":")[0] for s in report.stale}
    assert reasons == {"rr-0": "down", "rr-1": "vanished", "rr-2": "stale"}


def test_the_fleet_verdict_is_the_worst_severity_with_its_most_common_label() -> None:
    report = _summary(
        _replica("rr-0", "gpu-h200-4b-1api-closed", model="a"),
        _replica("rr-1", "gpu-h200-4b-8api-closed", model="a"),
        _replica("rr-2", "gpu-h200-0.6b-1api-closed", model="b"),
        _replica("rr-3", "vllm-0.32-cpu-lab", model="c"),
    )
    labels = [r.report.verdict.label for r in report.replicas]
    worst = report.replicas[0].report.worst()
    assert report.verdict.severity == worst
    at_worst = [r.report.verdict.label for r in report.replicas if r.report.worst() == worst]
    assert report.verdict.label == max(set(at_worst), key=at_worst.count)
    assert report.by_label == {label: labels.count(label) for label in set(labels)}


def test_a_target_down_with_no_vllm_series_is_named_beside_the_diagnosed_replicas() -> None:
    from diagnose.fleet.assemble import down_without_series
    from diagnose.fleet.client import Series

    up = {
        "up_end": [
            Series({"pod": "rr-0", "instance": "rr-0:8000"}, ((WINDOW.end_unix, 1.0),)),
            Series({"pod": "rr-9", "instance": "rr-9:8000"}, ((WINDOW.end_unix, 0.0),)),
        ]
    }
    down = down_without_series(up, "pod", {"rr-0"})
    pairs = [_replica("rr-0", "vllm-0.32-cpu-lab", model="m")]
    report = summarize(
        pairs, WINDOW, source="", replica_label="pod", selector="", warnings=[], queries=10, bytes_read=0,
        down_without_series=down,
    )  # fmt: skip
    assert [(s.replica, s.reason.split(":")[0]) for s in report.stale] == [("rr-9", "down")]
