"""Peak memory and time of reading a bundle's /metrics as it grows: the whole-bundle path against the
streaming reader, at 10, 1,000 and 10,000 dumps and for one 200 MB dump, beside the input size.

- reference (what `check --from` does today): read_bundle -> build_evidence, every dump's text held
  and every dump parsed (evidence keeps the parsed list for its gauges).
- streaming: diagnose.bundle.stream.fold_window(stream_dumps(...)) with the gauge readings the window
  math needs (first and last dump kept parsed, running max/mean per gauge; everything else let go).

Each measurement runs in a fresh interpreter (peak RSS from getrusage, so one run's heap cannot hide
another's); the interpreter's own baseline (imports only) is printed too. Input: the lab's recorded
vLLM 0.32 /metrics (tests/fixtures/vllm-0.32-cpu-lab, its second dump: 52 KB) repeated at times 5 s
apart; the 200 MB dump repeats its series with a distinct label so that no line is a duplicate. A dump past
64 MiB is not vLLM's /metrics: both paths skip it unparsed (the reference then refuses the bundle, exit 4).

Run: python benchmarks/bundle_memory.py [--dumps 10 1000 10000] [--big-mb 200]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "tests" / "fixtures" / "vllm-0.32-cpu-lab" / "metrics.prom"

_CHILD = r"""
import json, resource, sys, time
mode, folder = sys.argv[1], sys.argv[2]
from pathlib import Path
from diagnose.bundle import read_bundle
from diagnose.bundle.stream import fold_window, stream_dumps
from diagnose.derive.evidence import build_evidence
from diagnose.metrics import names
start = time.perf_counter()
from diagnose.errors import DoctorError
if mode == "reference":
    try:
        n = build_evidence(read_bundle(folder)).dumps
    except DoctorError:  # e.g. its only dump is far past any vLLM /metrics: refused as bad input
        n = 0
elif mode == "streaming":
    gauges = lambda p: {c: names.value(p, c) for c in ("kv_usage", "waiting", "running")}
    n = fold_window(stream_dumps(Path(folder) / "metrics.prom"), gauges).dumps
else:
    n = 0
took = time.perf_counter() - start
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"dumps": n, "s": took, "peak_mb": peak_mb}))
"""


def run(mode: str, folder: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(folder)],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def lab_dump() -> str:
    """The lab's second dump (after traffic): one /metrics body, no marker."""
    from diagnose.bundle import split_dumps

    return split_dumps(LAB.read_text())[-1].text


def write_dumps(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    body = lab_dump()
    with (folder / "metrics.prom").open("w") as handle:
        for i in range(count):
            handle.write(f"### capture t_unix={1_800_000_000 + 5 * i:.3f}\n")
            handle.write(body)
    return folder


def write_big_dump(folder: Path, megabytes: int) -> Path:
    folder.mkdir(parents=True)
    samples = [line for line in lab_dump().splitlines() if line and not line.startswith("#")]
    labelled = [
        re.sub(
            r"^([^{\s]+)(\{?)", lambda m: m.group(1) + '{copy="%d"' + ("," if m.group(2) else "}"), s, count=1
        )
        for s in samples
    ]
    target = megabytes * 1024 * 1024
    written = 0
    with (folder / "metrics.prom").open("w") as handle:
        handle.write("### capture t_unix=1800000000.000\n")
        copy = 0
        while written < target:
            chunk = "\n".join(line.replace("%d", str(copy), 1) for line in labelled) + "\n"
            handle.write(chunk)
            written += len(chunk)
            copy += 1
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dumps", type=int, nargs="*", default=[10, 1000, 10000])
    parser.add_argument("--big-mb", type=int, default=200, help="size of the single-dump case (0: skip)")
    args = parser.parse_args()
    base = run("baseline", REPO)
    print(f"interpreter + imports alone: {base['peak_mb']:.0f} MB peak")
    head = f"{'input':>26} {'size MB':>8} | {'reference s':>11} {'MB':>6} | {'streaming s':>11} {'MB':>6}"
    print(head + " | MB ratio")
    with tempfile.TemporaryDirectory() as tmp:
        cases = [(f"{n} dumps", lambda d, n=n: write_dumps(d, n)) for n in args.dumps]
        if args.big_mb:
            cases.append((f"one {args.big_mb} MB dump", lambda d: write_big_dump(d, args.big_mb)))
        for i, (name, make) in enumerate(cases):
            folder = make(Path(tmp) / f"b{i}")
            size_mb = (folder / "metrics.prom").stat().st_size / 1e6
            ref, ours = run("reference", folder), run("streaming", folder)
            assert ref["dumps"] == ours["dumps"], (ref, ours)
            print(
                f"{name:>26} {size_mb:8.1f} | {ref['s']:11.2f} {ref['peak_mb']:6.0f} | "
                f"{ours['s']:11.2f} {ours['peak_mb']:6.0f} | {ours['peak_mb'] / ref['peak_mb']:.2f}"
            )
            for path in folder.iterdir():
                path.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
