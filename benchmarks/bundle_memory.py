"""Peak memory and time of `check --from` as a bundle's /metrics grows: this tree against a baseline
revision that held every dump, at 10, 1,000 and 10,000 dumps and for one 200 MB dump, beside the input size.

Both sides run the same steps in a fresh interpreter (peak RSS from getrusage, so one run's heap cannot
hide another's): `read_bundle` -> `pipeline.diagnose` (evidence + rules, what `check --from` prints), and
with `--html` also `window_series` (the charts of `check --html`).
- reference: git revision `--baseline` (default f96cbab, the last one whose reader held every dump's text
  and whose evidence parsed them all into one list), unpacked with `git archive` into a temporary folder.
- this tree: the reader indexes the dumps (diagnose/bundle/stream.py) and the evidence and the series fold
  them one at a time (diagnose/derive/dump_fold.py).
The interpreter's own baseline (imports only) is printed too. Input: the lab's recorded vLLM 0.32 /metrics
(tests/fixtures/vllm-0.32-cpu-lab, its second dump: 52 KB) repeated at times 5 s apart; the 200 MB dump
repeats its series with a distinct label so that no line is a duplicate. A dump past 64 MiB is not vLLM's
/metrics: both skip it unparsed and refuse the bundle (exit 4), so that row measures the reading alone.

Run: python benchmarks/bundle_memory.py [--dumps 10 1000 10000] [--big-mb 200] [--html] [--baseline REV]
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
sys.path.insert(0, str(REPO))  # this tree's diagnose, installed or not
LAB = REPO / "tests" / "fixtures" / "vllm-0.32-cpu-lab" / "metrics.prom"

_CHILD = r"""
import json, resource, sys, time
html, folder = sys.argv[1] == "html", sys.argv[2]
from diagnose.bundle import read_bundle
from diagnose.errors import DoctorError
from diagnose.pipeline import diagnose
start = time.perf_counter()
try:
    bundle = read_bundle(folder)
    report = diagnose(bundle)
    n, label = len(bundle.dumps), report.verdict.label
    if html:
        from diagnose.derive.series import window_series
        window_series(bundle)
except DoctorError:  # e.g. its only dump is far past any vLLM /metrics: refused as bad input
    n, label = 0, "refused"
took = time.perf_counter() - start
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"dumps": n, "label": label, "s": took, "peak_mb": peak_mb}))
"""


def run(root: Path, folder: Path, html: bool) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, "html" if html else "check", str(folder)],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def baseline_memory(root: Path) -> float:
    code = "import resource, diagnose.pipeline, diagnose.bundle, diagnose.derive.series; "
    code += "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env={"PYTHONPATH": str(root)}, capture_output=True, text=True
    )
    return float(out.stdout.strip())


def unpack_revision(rev: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "diagnose"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


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
    parser.add_argument("--html", action="store_true", help="also build the HTML report's series")
    parser.add_argument("--baseline", default="f96cbab", metavar="REV", help="the reference revision")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = unpack_revision(args.baseline, Path(tmp) / "baseline")
        print(
            f"interpreter + imports alone: {baseline_memory(REPO):.0f} MB peak "
            f"(baseline {args.baseline}: {baseline_memory(old):.0f} MB)"
        )
        what = "check --from --html" if args.html else "check --from"
        print(f"{what}: reference = {args.baseline}, ours = this tree")
        head = f"{'input':>22} {'size MB':>8} | {'reference s':>11} {'MB':>6} | {'ours s':>8} {'MB':>6}"
        print(head + " | MB ratio | time ratio | verdicts")
        cases = [(f"{n} dumps", lambda d, n=n: write_dumps(d, n)) for n in args.dumps]
        if args.big_mb:
            cases.append((f"one {args.big_mb} MB dump", lambda d: write_big_dump(d, args.big_mb)))
        for i, (name, make) in enumerate(cases):
            folder = make(Path(tmp) / f"b{i}")
            size_mb = (folder / "metrics.prom").stat().st_size / 1e6
            ref, ours = run(old, folder, args.html), run(REPO, folder, args.html)
            same = "same" if (ref["dumps"], ref["label"]) == (ours["dumps"], ours["label"]) else "DIFFER"
            print(
                f"{name:>22} {size_mb:8.1f} | {ref['s']:11.2f} {ref['peak_mb']:6.0f} | "
                f"{ours['s']:8.2f} {ours['peak_mb']:6.0f} | {ours['peak_mb'] / ref['peak_mb']:8.2f} | "
                f"{ours['s'] / ref['s']:10.2f} | {same} ({ours['label']})",
                flush=True,
            )
            for path in folder.iterdir():
                path.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
