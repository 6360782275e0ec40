"""Reading the H200 fixtures (tests/fixtures/gpu-h200-*): the GPU numbers `collect` recorded through NVML
against the `nvidia-smi --query-gpu ... -l 1` log that ran beside it, and what the window shows.

Pure functions over recorded files; used by tests/test_gpu_replay.py and, on the GPU machine, by
tests/gpu/summarize.py (so the numbers printed there are the numbers the tests check).

A fixture folder holds:
- `bundle/`: what `rerank-doctor collect --out bundle` wrote (its `nvidia-smi.csv` is NVML, through
  diagnose/collect/gpu.py, in nvidia-smi's format plus a `t_unix` column);
- `reference-nvidia-smi.csv`: the real nvidia-smi's own log over the same minutes (local-time stamps);
- `meta.json`: at least `utc_offset` ("+0000"), the device's zone, to place those stamps in time;
- `stress-<i>.json`: each client process's `rerank-doctor stress --json` report.
"""

from __future__ import annotations

import itertools
import json
import statistics
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from diagnose.bundle.nvidia_smi import parse_nvidia_smi_csv
from diagnose.bundle.read import read_bundle
from diagnose.derive.window import histogram_delta
from diagnose.metrics import names
from diagnose.metrics.exposition import parse_dump
from diagnose.readings import Bundle, GpuSample

FIELDS = ("util_pct", "power_w", "memory_used_mib", "sm_clock_mhz")


def _zone(utc_offset: str) -> timezone:
    """'+0000' / '-0500' (as `date +%z` prints it) -> a fixed zone."""
    sign = -1 if utc_offset.startswith("-") else 1
    digits = utc_offset.lstrip("+-")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4])))


def reference_samples(csv_text: str, utc_offset: str) -> list[GpuSample]:
    """nvidia-smi's own log, its values read by the product's parser, its local stamps placed with
    the device's recorded zone (the parser would use THIS machine's zone, which may differ)."""
    samples, problems = parse_nvidia_smi_csv(csv_text)
    if problems:
        raise ValueError(f"reference log unreadable: {problems[:2]}")
    stamps = [
        line.split(",", 1)[0].strip()
        for line in csv_text.splitlines()[1:]
        if line.strip() and not line.startswith("timestamp")
    ]
    if len(stamps) != len(samples):
        raise ValueError(f"{len(stamps)} stamps for {len(samples)} samples")
    zone = _zone(utc_offset)
    out = []
    for stamp, s in zip(stamps, samples, strict=True):
        t = datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f").replace(tzinfo=zone).timestamp()
        out.append(
            GpuSample(
                t,
                s.index,
                s.util_pct,
                s.memory_used_mib,
                s.memory_total_mib,
                s.power_w,
                s.sm_clock_mhz,
                s.name,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class FieldAgreement:
    """One GPU number, NVML-through-collect vs nvidia-smi, over the collect window."""

    field: str
    ours_mean: float | None  # mean of collect's samples in the window
    ref_mean: float | None  # mean of nvidia-smi's samples in the same window
    pairs: int  # collect samples with an nvidia-smi sample within max_gap_s
    median_abs_diff: float | None  # over those pairs
    max_abs_diff: float | None


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def compare_gpu(
    ours: list[GpuSample], ref: list[GpuSample], max_gap_s: float = 0.6
) -> dict[str, FieldAgreement]:
    """Window means and nearest-in-time pairs for each field, GPU 0, over collect's own time span."""
    ours = sorted((s for s in ours if s.index == 0), key=lambda s: s.t_unix)
    if not ours:
        return {}
    t0, t1 = ours[0].t_unix, ours[-1].t_unix
    ref = sorted(
        (s for s in ref if s.index == 0 and t0 - 0.5 <= s.t_unix <= t1 + 0.5), key=lambda s: s.t_unix
    )
    out: dict[str, FieldAgreement] = {}
    for field in FIELDS:
        mine = [(s.t_unix, getattr(s, field)) for s in ours if getattr(s, field) is not None]
        theirs = [(s.t_unix, getattr(s, field)) for s in ref if getattr(s, field) is not None]
        diffs = []
        for t, v in mine:
            near = min(theirs, key=lambda r: abs(r[0] - t), default=None)
            if near is not None and abs(near[0] - t) <= max_gap_s:
                diffs.append(abs(v - near[1]))
        out[field] = FieldAgreement(
            field,
            _mean([v for _, v in mine]),
            _mean([v for _, v in theirs]),
            len(diffs),
            statistics.median(diffs) if diffs else None,
            max(diffs) if diffs else None,
        )
    return out


@dataclass(frozen=True, slots=True)
class QueueStep:
    """Engine requests that finished between two consecutive /metrics scrapes."""

    t_end_unix: float
    finished: float  # vllm:request_queue_time_seconds observations in the interval
    queue_mean_s: float | None  # their mean time in the queue
    waiting: float | None  # vllm:num_requests_waiting at the interval's end (summed over engines)


def queue_steps(bundle: Bundle) -> list[QueueStep]:
    parsed = [parse_dump(d) for d in sorted(bundle.dumps, key=lambda d: d.t_unix)]
    steps = []
    for before, after in itertools.pairwise(parsed):
        h = histogram_delta(names.histogram(before, "queue_time"), names.histogram(after, "queue_time"))
        if h is None:
            continue
        steps.append(
            QueueStep(
                after.t_unix, h.count, h.sum / h.count if h.count else None, names.value(after, "waiting")
            )
        )
    return steps


def engine_pairs_per_s(bundle: Bundle) -> float | None:
    """Engine requests (= rerank pairs) finished per second over the whole window, from vLLM's counter."""
    dumps = sorted(bundle.dumps, key=lambda d: d.t_unix)
    if len(dumps) < 2:
        return None
    first, last = parse_dump(dumps[0]), parse_dump(dumps[-1])
    a, b = names.value(first, "request_success"), names.value(last, "request_success")
    if a is None or b is None or last.t_unix <= first.t_unix:
        return None
    return (b - a) / (last.t_unix - first.t_unix)


def stress_reports(folder: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(folder.glob("stress-*.json")):
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(doc, dict) and "pairs_per_s" in doc:
            out.append(doc)
    return out


def summarize(folder: str | Path) -> dict[str, Any]:
    """Everything the replay tests look at, for one fixture folder."""
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text()) if (folder / "meta.json").is_file() else {}
    bundle = read_bundle(folder / "bundle")
    summary: dict[str, Any] = {
        "folder": folder.name,
        "gpu_samples": len(bundle.gpu),
        "dumps": len(bundle.dumps),
    }
    ref_path = folder / "reference-nvidia-smi.csv"
    if ref_path.is_file():
        ref = reference_samples(ref_path.read_text(), meta.get("utc_offset", "+0000"))
        summary["reference_samples"] = len(ref)
        summary["gpu"] = {k: asdict(v) for k, v in compare_gpu(bundle.gpu, ref).items()}
    steps = queue_steps(bundle)
    summary["queue_steps"] = [asdict(s) for s in steps]
    summary["engine_pairs_per_s"] = engine_pairs_per_s(bundle)
    reports = stress_reports(folder)
    summary["clients"] = len(reports)
    summary["client_pairs_per_s"] = sum(r["pairs_per_s"] or 0.0 for r in reports) if reports else None
    summary["issues"] = [f"{i.collector}: {i.reason}" for i in bundle.issues]
    return summary
