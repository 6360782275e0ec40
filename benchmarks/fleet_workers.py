"""Fleet mode's per-replica diagnosis in one process against split over forked children: where it pays.

The answers come from a real Prometheus 2.42 over a TSDB backfilled from the repo's real recordings (as
benchmarks/fleet.py builds it), fetched once; then `diagnose_replicas` alone is timed with 1, 2, 4, ...
workers (up to the machine's cores), median of 3 runs each, on a fresh copy of the answers (assembling
consumes their label dicts). The ratio is each time against the one-process time of the same run.
diagnose/fleet/parallel.py's MIN_REPLICAS_PER_WORKER rests on this ("workers" counts the parent, which
diagnoses a group itself): on 2 cores, 6 replicas took 0.008 s in one process and 0.011-0.014 s split in
two; over five runs at 206 replicas the split took 0.71-1.10x the one-process time (median 0.86x), at
1,000 replicas 0.76-0.99x. The machine is noisy: run it several times.

    python benchmarks/fleet_workers.py                  # 206 and 1,000 replicas
    python benchmarks/fleet_workers.py --sizes 1000
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

import fleet as fleet_bench  # noqa: E402
import fleet_backfill as fb  # noqa: E402

RUNS = 3


def worker_counts(cores: int) -> list[int]:
    counts = [1]
    while counts[-1] * 2 <= cores:
        counts.append(counts[-1] * 2)
    if counts[-1] != cores:
        counts.append(cores)
    return counts


def main() -> None:
    from diagnose.fleet.client import PrometheusClient
    from diagnose.fleet.fetch import fetch
    from diagnose.fleet.parallel import _import_the_pipeline, diagnose_replicas
    from diagnose.fleet.window import Window

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="206,1000")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    print(f"cores: {cores}  load: {os.getloadavg()[0]:.1f}  runs per cell: {RUNS} (median)")
    _import_the_pipeline()  # the imports are a fixed cost whatever the worker count
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        paths = fleet_bench.recordings(tmp)
        for size in (int(s) for s in args.sizes.split(",")):
            data, t0, end = fleet_bench.backfill(size, paths, tmp)
            window = Window(t0, end)
            with fb.prometheus_over(data) as url:
                answers, first_le = fetch(
                    PrometheusClient(url, total_s=300), window, "pod", 'namespace="rerank"'
                )
            frozen = pickle.dumps(answers)
            one_process_s = None
            for workers in worker_counts(cores):
                times = []
                for _ in range(RUNS):
                    copy = pickle.loads(frozen)
                    gc.collect()
                    gc.disable()  # as diagnose_fleet runs it
                    t = time.perf_counter()
                    diagnose_replicas(
                        copy, window, "pod", require_vllm=False, thresholds=None, source=url,
                        workers=workers, min_per_worker=1, first_le=first_le,
                    )  # fmt: skip
                    times.append(time.perf_counter() - t)
                    gc.enable()
                median = statistics.median(times)
                one_process_s = one_process_s or median
                print(
                    f"{size:>6} replicas  {workers:>3} workers  {median:6.3f} s"
                    f"  ({median / one_process_s:.2f}x one process)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
