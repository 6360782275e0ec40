"""Prints, on the GPU machine right after a window, the numbers tests/test_gpu_replay.py will check.

    python3 tests/gpu/summarize.py /tmp/w/gpu-h200-4b-8api-open
It writes meta.json (the device's UTC offset, needed to place nvidia-smi's local stamps) if missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for gpu_support
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo, for diagnose

from gpu_support import summarize


def main(folder: str) -> int:
    d = Path(folder)
    meta = d / "meta.json"
    if not meta.is_file():
        offset = subprocess.run(["date", "+%z"], capture_output=True, text=True).stdout.strip()
        meta.write_text(json.dumps({"utc_offset": offset}) + "\n")
    try:
        s = summarize(d)
    except Exception as err:  # a summary must not end the run: say what broke and go on
        print(f"summary of {d.name} failed: {type(err).__name__}: {err}")
        return 1
    (d / "summary.json").write_text(json.dumps(s, indent=1, default=str) + "\n")
    gpu = s.get("gpu", {})
    for field in ("util_pct", "power_w", "memory_used_mib", "sm_clock_mhz"):
        g = gpu.get(field)
        if g:
            print(
                f"  {field}: collect mean {g['ours_mean']!s:.8} vs nvidia-smi {g['ref_mean']!s:.8} "
                f"(pairs {g['pairs']}, median |d| {g['median_abs_diff']}, max |d| {g['max_abs_diff']})"
            )
    q = [(round(x["queue_mean_s"], 3) if x["queue_mean_s"] is not None else None) for x in s["queue_steps"]]
    w = [x["waiting"] for x in s["queue_steps"]]
    print(f"  queue mean per 5s step: {q}; waiting: {w}")
    print(
        f"  engine pairs/s {s['engine_pairs_per_s']}, "
        f"clients {s['clients']} pairs/s {s['client_pairs_per_s']}, "
        f"gpu samples {s['gpu_samples']}, dumps {s['dumps']}, issues {s['issues'][:3]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
