"""Fleet mode at 6, 10, 100, 206 and 1,000 replicas: time to verdict, queries, peak memory, in one run.

Each fleet is a real Prometheus 2.42 over a TSDB backfilled (tests/fleet_backfill.py) from the repo's real
recordings, replica i being recording i mod 13 (8 repo recordings + the 5 H200 captures when ../shared is
there). Beside each fleet run, the reference: the same verdicts computed bundle by bundle
(`read_bundle` + `diagnose` per replica, as `check --from` does), in the same run. Every measurement runs
in a fresh Python process, so peak memory (VmHWM) is its own; fleet mode's forked children (one per core
beyond the first, from 50 replicas) share its pages and are not counted.

"CPU s" is the processor time the timed run took: fleet mode's own (its children included) + the Prometheus
server's. On this machine both share the same cores, so it bounds the wall time from below: CPU s / cores.

Targets (issue 11): 6 -> 206 replicas costs at most 3x the time; 1,000 replicas within 10 s on 2 cores.
"Prometheus eval s" is the server's own evaluation time for the same queries (`stats=all`, summed over
them, measured in an untimed extra pass, one query at a time): the share of the cores fleet mode cannot
save on this machine, where Prometheus runs beside it.

    python benchmarks/fleet.py                 # all sizes
    python benchmarks/fleet.py --sizes 6,206   # a subset
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import fleet_backfill as fb  # noqa: E402
import psutil  # noqa: E402

CAPTURES = REPO.parent / "shared" / "captures" / "gpu-vllm-0.26"
SELECTOR = '{namespace="rerank"}'
RUNS = 3  # per size and method, after one warm-up; the median is reported


def recordings(tmp: Path) -> list[Path]:
    paths = list(fb.RECORDINGS)
    if CAPTURES.is_dir():
        for tar in sorted(CAPTURES.glob("s*.tar.gz")):
            with tarfile.open(tar) as t:
                t.extractall(tmp / "captures", filter="data")
        paths += sorted(p for p in (tmp / "captures").iterdir() if p.is_dir())
    return paths


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries that across fork+exec,
    so a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_fleet(url: str, start: float, end: float) -> None:
    from diagnose.fleet import fetch as fleet_fetch
    from diagnose.fleet import run
    from diagnose.fleet.client import PrometheusClient
    from diagnose.fleet.window import Window

    # diagnose_fleet(), phase by phase: the queries (Prometheus' work and the answers' decoding), then
    # assembling and diagnosing every replica (forked children beside it on a multi-core machine), then the
    # summary.
    original_fetch = run.fetch
    marks: dict[str, float] = {}

    def fetch(*args: object, **kwargs: object) -> object:
        answers = original_fetch(*args, **kwargs)  # type: ignore[arg-type]
        marks["fetched"] = time.perf_counter()
        return answers

    run.fetch = fetch  # type: ignore[assignment]
    prometheus = _prometheus_process(url)
    theirs0, ours0 = prometheus.cpu_times(), os.times()
    t = time.perf_counter()
    client = PrometheusClient(url, total_s=300)
    report = run.diagnose_fleet(client, Window(start, end), selector=SELECTOR)
    seconds = time.perf_counter() - t
    theirs1, ours1 = prometheus.cpu_times(), os.times()
    # CPU seconds over the timed run: fleet mode's own (its forked children included: they are reaped
    # before it returns) and the Prometheus server's, which shares the same cores here.
    ours_cpu_s = sum(ours1[:4]) - sum(ours0[:4])
    theirs_cpu_s = theirs1.user + theirs1.system - theirs0.user - theirs0.system
    labels = {r.replica: r.report.verdict.label for r in report.replicas}
    peak = peak_rss_mb()
    # Once more, untimed, asking Prometheus what the same queries cost it (its evaluation time, summed
    # over the queries): on one machine the server and fleet mode share the cores.
    # One query at a time, so that each evaluation time is the query's own, not its wait for a core.
    stats = PrometheusClient(url, total_s=300, ask_stats=True)
    fleet_fetch.PARALLEL_QUERIES = 1
    original_fetch(stats, Window(start, end), "pod", 'namespace="rerank"')
    print(json.dumps({"s": seconds, "fetch_s": marks["fetched"] - t, "queries": client.queries,
                      "bytes": client.bytes_read, "labels": labels, "maxrss_mb": peak,
                      "prometheus_eval_s": stats.eval_s, "cpu_s": ours_cpu_s,
                      "prometheus_cpu_s": theirs_cpu_s}))  # fmt: skip


def _prometheus_process(url: str) -> psutil.Process:
    """The Prometheus server this benchmark started (fb.prometheus_over), found by its listen address."""
    flag = "--web.listen-address=" + url.removeprefix("http://")
    for process in psutil.process_iter(["cmdline"]):
        if flag in (process.info["cmdline"] or []):
            return process
    raise RuntimeError(f"no Prometheus process listens on {url}")


def _child_bundles(paths: list[str]) -> None:
    from diagnose.bundle import read_bundle
    from diagnose.pipeline import diagnose

    t = time.perf_counter()
    labels = {fb.replica_name(i): diagnose(read_bundle(Path(p))).verdict.label for i, p in enumerate(paths)}
    seconds = time.perf_counter() - t
    print(json.dumps({"s": seconds, "labels": labels, "maxrss_mb": peak_rss_mb()}))


def _child(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True, timeout=900
    )
    return json.loads(out.stdout)


def backfill(size: int, paths: list[Path], tmp: Path) -> tuple[Path, float, float]:
    """A TSDB of `size` replicas, replica i being recording i mod len(paths), in the past hour:
    (its data folder, the window's start and end, unix seconds)."""
    loaded = {p: fb.load_recording(p) for p in paths}
    replicas = [(fb.replica_name(i), loaded[paths[i % len(paths)]]) for i in range(size)]
    t0 = float(int(time.time()) - 3600)
    work = tmp / f"fleet-{size}"
    work.mkdir()
    fb.write_openmetrics(replicas, work / "fleet.om", t0)
    fb.create_blocks(work / "fleet.om", work / "data")
    (work / "fleet.om").unlink()
    return work / "data", t0, t0 + max(60.0, max(r.span_s for _, r in replicas) + 10.0)


def measure(size: int, paths: list[Path], tmp: Path) -> dict:
    t = time.perf_counter()
    data, t0, end = backfill(size, paths, tmp)
    build_s = time.perf_counter() - t
    work = data.parent
    bundle_paths = [str(paths[i % len(paths)]) for i in range(size)]
    # The bundle-by-bundle list goes through a file: 1,000 paths do not fit a command line comfortably.
    (work / "paths.json").write_text(json.dumps(bundle_paths))
    with fb.prometheus_over(work / "data") as url:
        _child(["fleet", url, str(t0), str(end)])  # warm-up: Prometheus maps the blocks on first use
        fleet = [_child(["fleet", url, str(t0), str(end)]) for _ in range(RUNS)]
    bundles = [_child(["bundles", str(work / "paths.json")]) for _ in range(RUNS)]
    agree = fleet[0]["labels"] == bundles[0]["labels"]
    return {
        "replicas": size,
        "build_s": build_s,
        "fleet_s": statistics.median(r["s"] for r in fleet),
        "fetch_s": statistics.median(r["fetch_s"] for r in fleet),
        "prometheus_eval_s": statistics.median(r["prometheus_eval_s"] for r in fleet),
        "cpu_s": statistics.median(r["cpu_s"] for r in fleet),
        "prometheus_cpu_s": statistics.median(r["prometheus_cpu_s"] for r in fleet),
        "queries": fleet[0]["queries"],
        "answer_mb": fleet[0]["bytes"] / 1e6,
        "fleet_maxrss_mb": max(r["maxrss_mb"] for r in fleet),
        "bundles_s": statistics.median(r["s"] for r in bundles),
        "bundles_maxrss_mb": max(r["maxrss_mb"] for r in bundles),
        "labels_agree": agree,
    }


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        if sys.argv[2] == "fleet":
            _child_fleet(sys.argv[3], float(sys.argv[4]), float(sys.argv[5]))
        else:
            _child_bundles(json.loads(Path(sys.argv[3]).read_text()))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="6,10,100,206,1000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"cpus: {os.cpu_count()}  load: {os.getloadavg()[0]:.1f}  runs per cell: {RUNS} (median)")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        paths = recordings(tmp)
        print(f"{len(paths)} real recordings, cycled over the replicas")
        rows = []
        header = (
            "replicas  queries  answer MB  fleet s (queries s)  CPU s: fleet + Prometheus  Prometheus eval s"
            "  fleet MB  bundles s  bundles MB  labels  (TSDB build s)"
        )
        print(header)
        for size in sizes:
            row = measure(size, paths, tmp)
            rows.append(row)
            print(
                f"{row['replicas']:>8}  {row['queries']:>7}  {row['answer_mb']:>9.1f}  {row['fleet_s']:>7.2f}"
                f" ({row['fetch_s']:>8.2f})  {row['cpu_s']:>11.2f} + {row['prometheus_cpu_s']:>10.2f}"
                f"  {row['prometheus_eval_s']:>17.2f}"
                f"  {row['fleet_maxrss_mb']:>8.0f}  {row['bundles_s']:>9.2f}"
                f"  {row['bundles_maxrss_mb']:>10.0f}  {'agree' if row['labels_agree'] else 'DIFFER':>6}"
                f"  ({row['build_s']:.0f})",
                flush=True,
            )
    by_size = {r["replicas"]: r for r in rows}
    if 6 in by_size and 206 in by_size:
        ratio = by_size[206]["fleet_s"] / by_size[6]["fleet_s"]
        print(
            f"6 -> 206 replicas: {ratio:.2f}x the time (target <= 3x; bundle by bundle: "
            f"{by_size[206]['bundles_s'] / by_size[6]['bundles_s']:.1f}x); Prometheus' own evaluation "
            f"{by_size[6]['prometheus_eval_s']:.2f} -> {by_size[206]['prometheus_eval_s']:.2f} s"
        )
        cpu = {n: by_size[n]["cpu_s"] + by_size[n]["prometheus_cpu_s"] for n in (6, 206)}
        print(
            f"CPU seconds, fleet mode + Prometheus: {cpu[6]:.2f} -> {cpu[206]:.2f} on "
            f"{os.cpu_count()} cores (the 3x budget at 206 replicas is {3 * by_size[6]['fleet_s']:.2f} s of "
            "wall time)"
        )
    if 1000 in by_size:
        r = by_size[1000]
        print(
            f"1,000 replicas: {r['fleet_s']:.2f} s to verdict (target <= 10 s), {r['queries']} queries; "
            f"bundle by bundle {r['bundles_s']:.1f} s ({r['bundles_s'] / r['fleet_s']:.1f}x the fleet time)"
        )


if __name__ == "__main__":
    main()
