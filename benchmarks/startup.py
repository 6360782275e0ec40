"""`rerank-doctor --help` must start in <= 300 ms (issue: foundation).

Reference, measured in the same run: a bare `python -c pass` (the interpreter's own floor) and
`python -c "import rich, prometheus_client, requests, psutil"` (what eager imports would cost). The
ratio says how much of the budget the tool itself uses. Wall time, best and median of N runs.

    python benchmarks/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

BUDGET_S = 0.300


def timed(cmd: list[str], runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return min(samples), statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    py = sys.executable
    cases = {
        "python -c pass (floor)": [py, "-c", "pass"],
        "eager imports (reference)": [py, "-c", "import rich.console, prometheus_client, requests, psutil"],
        "rerank-doctor --help": [py, "-m", "diagnose", "--help"],
        "rerank-doctor check --help": [py, "-m", "diagnose", "check", "--help"],
    }
    results = {name: timed(cmd, args.runs) for name, cmd in cases.items()}
    floor = results["python -c pass (floor)"][1]
    eager = results["eager imports (reference)"][1]
    for name, (best, median) in results.items():
        print(f"{name:32s} best {best * 1000:6.1f} ms  median {median * 1000:6.1f} ms")
    ours = results["rerank-doctor --help"][1]
    print(
        f"--help median / interpreter floor: {ours / floor:.2f}x; "
        f"/ eager-import reference: {ours / eager:.2f}x"
    )
    verdict = "PASS" if ours <= BUDGET_S else "FAIL"
    print(f"{verdict}: --help median {ours * 1000:.0f} ms against a budget of {BUDGET_S * 1000:.0f} ms")
    return 0 if ours <= BUDGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
