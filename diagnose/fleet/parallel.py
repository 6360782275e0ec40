"""Each replica's diagnosis, spread over the machine's cores: the one part of fleet mode that grows with
the fleet on this side of the wire (assembling a Bundle and running the rules, ~1-1.5 ms per replica).

The answers are split into groups of whole replicas. This process diagnoses the first group itself;
each other group goes to a forked child, which inherits the answers (nothing is pickled on the way in)
and sends back each replica's report with a slimmed Bundle through a pipe (the readings were only
needed to derive the report; the fleet summary reads the issues). A child that fails or dies has its
group diagnosed here instead: a fork is a speed-up, never a way to lose replicas. Where fork is
unavailable or the fleet is small (MIN_REPLICAS_PER_WORKER), it all runs in this process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
from collections.abc import Mapping
from dataclasses import dataclass, replace

from diagnose.fleet.assemble import CUMULATIVE_KEYS, ReplicaData, assemble, partition
from diagnose.fleet.client import Series
from diagnose.fleet.window import Window
from diagnose.pipeline import diagnose
from diagnose.progress import StepReporter, held_still
from diagnose.readings import Bundle
from diagnose.report import Report
from diagnose.thresholds import Thresholds

# Below this many replicas per group a fork costs more than it saves (benchmarks/fleet_workers.py, on 2
# cores: 6 replicas took 0.008 s in one process and 0.011-0.014 s split in two). Above it the split
# gains, though little on those 2 cores: over five runs at 206 replicas, split in two took 0.71-1.10x
# the one-process time (median 0.86x), at 1,000 replicas 0.76-0.99x. The parent's half ran ~30 %
# slower after the fork than alone (copy-on-write faults on the answers it consumes, or two vCPUs
# sharing one physical core: not told apart).
MIN_REPLICAS_PER_WORKER = 25

Pairs = list[tuple[ReplicaData, Report]]


@dataclass(frozen=True, slots=True)
class _Job:
    window: Window
    replica_label: str
    require_vllm: bool
    thresholds: Thresholds | None
    source: str
    first_le: Mapping[str, float]

    def run(self, answers: dict[str, list[Series]]) -> Pairs:
        out = []
        for data in assemble(
            answers, self.window, self.replica_label, require_vllm=self.require_vllm, first_le=self.first_le
        ):
            report = diagnose(
                data.bundle, self.thresholds, source=f"{self.source} {self.replica_label}={data.replica}"
            )
            out.append((data, report))
        return out


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
    first_le: Mapping[str, float] | None = None,
    progress: StepReporter | None = None,
) -> Pairs:
    """(rebuilt readings, report) for every replica in the answers, in replica order within each group;
    `first_le` as assemble() takes it. `workers`: processes in all, this one included (default: the cores
    this process may run on). `progress`'s threads are held still while the children are forked."""
    job = _Job(window, replica_label, require_vllm, thresholds, source, first_le or {})
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    replicas = len(
        {s.labels.get(replica_label) or s.labels.get("instance") for s in answers.get(CUMULATIVE_KEYS[0], [])}
    )
    parts = max(1, min(workers, replicas // max(1, min_per_worker)))
    if parts < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return job.run(answers)
    groups = partition(answers, replica_label, parts)
    _import_the_pipeline()
    children: list[tuple[int, int]] = []  # (pid, read end of its pipe) of each child not yet collected
    try:
        with held_still(progress):
            for group in groups[1:]:
                try:
                    children.append(_fork(job, group))
                except OSError:  # no fork here (a pid limit, no memory): the rest stays in this process
                    break
        results = [job.run(groups[0])]
        for group in groups[1:]:  # the children, in their groups' order, then the groups none took
            # _collect reaps (or stops) its child whatever happens.
            got = _collect(*children.pop(0)) if children else None
            results.append(got if got is not None else job.run(group))
    finally:
        for pid, read_fd in children:  # Ctrl-C or a failure here: the children are stopped, not awaited
            _stop(pid, read_fd)
    return [pair for group_pairs in results for pair in group_pairs]


def _fork(job: _Job, group: dict[str, list[Series]]) -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: diagnose, send, and leave without running the parent's exit handlers
        status = 1
        try:
            os.close(read_fd)
            # The CLI turns SIGTERM into KeyboardInterrupt; a child keeps the defaults, and Ctrl-C (sent to
            # the whole process group) is the parent's to handle.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            payload = pickle.dumps(_slim(job.run(group)), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(payload)
            status = 0
        finally:
            os._exit(status)  # no flush of inherited buffers, no atexit: those are the parent's
    os.close(write_fd)
    return pid, read_fd


def _collect(pid: int, read_fd: int) -> Pairs | None:
    """The child's reports, or None when it failed (its group is then diagnosed in the parent)."""
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            payload = pipe.read()
    except BaseException:  # Ctrl-C while waiting: the child is stopped, not awaited
        _stop(pid, None)
        raise
    _, status = os.waitpid(pid, 0)
    if status != 0 or not payload:
        return None
    try:
        pairs: Pairs = pickle.loads(payload)
    except (pickle.UnpicklingError, EOFError, ValueError):
        return None
    return pairs


def _stop(pid: int, read_fd: int | None) -> None:
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    if read_fd is not None:
        with contextlib.suppress(OSError):
            os.close(read_fd)


def _slim(pairs: Pairs) -> Pairs:
    return [(replace(data, bundle=Bundle(issues=data.bundle.issues)), report) for data, report in pairs]


def _import_the_pipeline() -> None:
    """The derivation and the rules imported before the fork (pipeline.diagnose imports them lazily): the
    children inherit them instead of each importing them again (~0.13 s of CPU per child)."""
    import diagnose.derive.evidence
    import diagnose.redact
    import diagnose.rules.engine  # noqa: F401
