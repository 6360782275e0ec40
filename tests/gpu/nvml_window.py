"""Fallback window with no vLLM: the real sampler (diagnose.collect.sampler.collect_window) with only the
NVML and host sources, written as a bundle by the real BundleWriter, while a transformers scoring loop
(pid --pid) keeps the GPU busy. Used by run_h200.sh's `nvml` step only if vLLM cannot be started there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> int:
    from diagnose.bundle import BundleWriter
    from diagnose.collect.gpu import NvmlSource
    from diagnose.collect.host import HostSource
    from diagnose.collect.sampler import Sources, collect_window

    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    sources = Sources(gpu=NvmlSource(), host=HostSource(), pid=a.pid)
    with BundleWriter(a.out, settings={"duration_s": a.duration, "note": "no vLLM: NVML + host only"}) as w:
        bundle = collect_window(sources, duration_s=a.duration, writer=w)
    print("gpu samples", len(bundle.gpu), "process samples", len(bundle.processes), "issues", bundle.issues)
    return 0


if __name__ == "__main__":
    sys.exit(main())
