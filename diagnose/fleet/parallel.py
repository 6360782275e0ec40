"""Each replica's diagnosis, spread over the machine's cores: the one part of fleet mode that grows with
the fleet on this side of the wire (assembling a Bundle and running the rules, ~1.2 ms per replica).

The answers are split into groups of whole replicas; forked workers inherit them (nothing is pickled on
the way in) and send back each replica's report with a slimmed Bundle (the readings were only needed to
derive the report; the fleet summary reads the issues). Where fork is unavailable, the fleet is small or
the machine has fewer than four cores (MIN_WORKERS), it all runs in this process.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Mapping
from dataclasses import replace

from diagnose.fleet.assemble import CUMULATIVE_KEYS, ReplicaData, assemble, partition
from diagnose.fleet.client import Series
from diagnose.fleet.window import Window
from diagnose.pipeline import diagnose
from diagnose.progress import StepReporter, held_still
from diagnose.readings import Bundle
from diagnose.report import Report
from diagnose.thresholds import Thresholds

# The pool pays from four workers on (benchmarks/fleet_workers.py: diagnose_replicas alone, median of
# 3). Its parent diagnoses no replica itself: it forks, waits and unpickles the reports (206 reports
# pickle in 0.024 s and load in 0.020 s); why two workers lose more than that was not profiled.
# On 16 cores, over answers saved on this machine: 1,000 replicas took 1.19 s in one process, 1.14 s
# with 2 workers, 0.81 s with 4, 0.61 s with 8, 0.51 s with 16 (206 replicas: 0.38, 0.30, 0.20, 0.13 s
# with 8). On this 2-core machine 2 workers were slower than one (1,000: 1.37 s against 1.32 s; 206:
# 0.29 s against 0.26 s).
MIN_WORKERS = 4
# Below this many replicas a worker's start costs more than it saves (206 replicas gain from 8 workers).
MIN_REPLICAS_PER_WORKER = 25

_JOB: (
    tuple[list[dict[str, list[Series]]], Window, str, bool, Thresholds | None, str, Mapping[str, float]]
    | None
) = None


def _diagnose(
    answers: dict[str, list[Series]],
    window: Window,
    replica_label: str,
    require_vllm: bool,
    thresholds: Thresholds | None,
    source: str,
    first_le: Mapping[str, float],
) -> list[tuple[ReplicaData, Report]]:
    out = []
    for data in assemble(answers, window, replica_label, require_vllm=require_vllm, first_le=first_le):
        report = diagnose(data.bundle, thresholds, source=f"{source} {replica_label}={data.replica}")
        out.append((data, report))
    return out


def _slim(pairs: list[tuple[ReplicaData, Report]]) -> list[tuple[ReplicaData, Report]]:
    return [(replace(data, bundle=Bundle(issues=data.bundle.issues)), report) for data, report in pairs]


def _work(index: int) -> list[tuple[ReplicaData, Report]]:
    assert _JOB is not None
    groups, window, label, require_vllm, thresholds, source, first_le = _JOB
    return _slim(_diagnose(groups[index], window, label, require_vllm, thresholds, source, first_le))


def diagnose_replicas(
    answers: dict[str, list[Series]],
    window: Window,
    replica_label: str,
    *,
    require_vllm: bool,
    thresholds: Thresholds | None,
    source: str,
    workers: int | None = None,
    min_per_worker: int = MIN_REPLICAS_PER_WORKER,
    min_workers: int = MIN_WORKERS,
    first_le: Mapping[str, float] | None = None,
    progress: StepReporter | None = None,
) -> list[tuple[ReplicaData, Report]]:
    """(rebuilt readings, report) for every replica in the answers; `first_le` as assemble() takes it.
    `progress`'s threads are held still while the workers are forked."""
    first_le = first_le or {}
    global _JOB
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    replicas = len(
        {s.labels.get(replica_label) or s.labels.get("instance") for s in answers.get(CUMULATIVE_KEYS[0], [])}
    )
    parts = max(1, min(workers, replicas // min_per_worker))
    if parts < max(2, min_workers) or "fork" not in multiprocessing.get_all_start_methods():
        return _diagnose(answers, window, replica_label, require_vllm, thresholds, source, first_le)
    groups = partition(answers, replica_label, parts)
    _JOB = (groups, window, replica_label, require_vllm, thresholds, source, first_le)
    _import_the_pipeline()
    with held_still(progress):
        pool = multiprocessing.get_context("fork").Pool(parts, initializer=_worker_signals)
    try:
        results = pool.map(_work, range(parts))
        pool.close()  # the normal end: workers exit on their own, no signal is sent
    except BaseException:
        pool.terminate()  # Ctrl-C or a failure: the workers are stopped (SIGTERM, default action)
        raise
    finally:
        pool.join()
        _JOB = None
    return [pair for group in results for pair in group]


def _import_the_pipeline() -> None:
    """The derivation and the rules imported before the fork (pipeline.diagnose imports them lazily):
    the workers inherit them instead of each importing them again (~0.13 s of CPU per worker)."""
    import diagnose.derive.evidence
    import diagnose.redact
    import diagnose.rules.engine  # noqa: F401


def _worker_signals() -> None:
    """Workers keep the default signal actions. A forked worker inherits the CLI's handler that turns
    SIGTERM into KeyboardInterrupt, and `with Pool()` always ends with terminate (SIGTERM to every worker):
    one 206-replica run hung 695 s there, its worker blocked on the task queue's lock, the parent joining
    it (py-spy stacks; the exact cause was not pinned down). Now the normal end sends no signal at all,
    and a terminate kills outright. Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
