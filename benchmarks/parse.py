"""CPU cost of parsing one vLLM /metrics exposition: our parser vs prometheus_client's.

Why it matters: the collector samples /metrics at 1 Hz and all collectors together must cost <= 5 ms of
CPU per sample. Prints CPU milliseconds per parse (time.process_time over many repetitions) for
`diagnose.metrics.exposition.parse_text` (first parse, cache cold, and steady state, cache warm: the
1 Hz case) and for prometheus_client's `text_string_to_metric_families` (fully consumed), and the ratio.

Run: python benchmarks/parse.py [exposition files...]
Default inputs: the s3 capture's metrics_end.txt (vLLM 0.26, H200) and the lab's 0.32 fixture if present.
"""

from __future__ import annotations

import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from diagnose.bundle import split_dumps
from diagnose.metrics import exposition
from diagnose.metrics.exposition import parse_text

REPO = Path(__file__).resolve().parent.parent
S3_TAR = REPO.parent / "shared" / "captures" / "gpu-vllm-0.26" / "s3_gpu_saturated_c64_d80_w300.tar.gz"
LAB = REPO / "tests" / "fixtures" / "vllm-0.32-cpu-lab" / "metrics.prom"


def cpu_ms_per_call(fn: Callable[[], object], reps: int) -> float:
    start = time.process_time()
    for _ in range(reps):
        fn()
    return (time.process_time() - start) * 1000 / reps


def reference(text: str) -> None:
    for family in text_string_to_metric_families(text):
        for _ in family.samples:
            pass


def cold(text: str) -> None:
    exposition._series_cache.clear()
    parse_text(text)


def inputs(args: list[str], tmp: Path) -> list[tuple[str, str]]:
    if args:
        return [(a, Path(a).read_text(errors="replace")) for a in args]
    out: list[tuple[str, str]] = []
    if S3_TAR.is_file():
        with tarfile.open(S3_TAR) as tar:
            tar.extractall(tmp, filter="data")
        end = next(tmp.rglob("metrics_end.txt"))
        out.append(("vLLM 0.26 H200 s3 metrics_end.txt", end.read_text()))
    if LAB.is_file():
        out.append(
            (
                "vLLM 0.32 CPU lab fixture (last dump)",
                split_dumps(LAB.read_text(errors="replace"))[-1].text,
            )
        )
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cases = inputs(sys.argv[1:], Path(tmp))
    if not cases:
        sys.exit("no input: give exposition files, or have ../shared/captures next to the repo")
    for label, text in cases:
        reps_ref = 30
        ref_ms = cpu_ms_per_call(lambda t=text: reference(t), reps_ref)
        cold_ms = cpu_ms_per_call(lambda t=text: cold(t), 100)
        parse_text(text)
        warm_ms = cpu_ms_per_call(lambda t=text: parse_text(t), 300)
        lines = text.count("\n")
        print(f"{label}: {len(text) / 1024:.1f} KiB, {lines} lines")
        print(f"  prometheus_client text_string_to_metric_families: {ref_ms:7.2f} ms CPU per parse")
        for what, ms in (
            ("cold cache (first scrape)", cold_ms),
            ("warm cache (every later scrape)", warm_ms),
        ):
            print(f"  parse_text, {what:<37} {ms:7.2f} ms   ratio {ref_ms / ms:5.1f}x")


if __name__ == "__main__":
    main()
