"""Turns what tests/gpu/run_h200.sh brought back (the unpacked gpu-h200-results.tar.gz) into
tests/fixtures/gpu-h200-*/: the recordings as they were written on the GPU machine, plus a README.md per
folder with how each was made and what it shows (numbers computed from the files, by tests/gpu_support.py).

    python3 tests/gpu/make_fixtures.py RESULTS_DIR tests/fixtures RUNS.json

RUNS.json says which device run made which window (device-tool run, its wall and device seconds, the
rerank-doctor tree it ran): {"windows": {"4b-8api-closed": "A", ...}, "runs": {"A": {...}, ...}}.
Nothing is edited: files are copied byte for byte; only README.md and meta.json are written here
(meta.json adds the device facts to the utc_offset the GPU machine recorded).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gpu_support import reference_samples, summarize

from diagnose.bundle.read import read_bundle
from diagnose.derive.processes import cpu_by_role

COPY = {  # name on the GPU machine -> name in the fixture
    "reference-nvidia-smi.csv": "reference-nvidia-smi.csv",
    "load.txt": "load.txt",
    "server-cmd.txt": "server-cmd.txt",
    "collect.out": "collect-output.txt",
}
OUTSIDE = ("top.log", "ps.log", "ss.log")  # logged beside the window since issue 10, when present


def env_facts(results: Path) -> dict[str, str]:
    facts: dict[str, str] = {}
    for line in (results / "env.txt").read_text().splitlines():
        parts = line.split()
        if line.startswith("vllm "):
            facts["stack"] = line.strip()
        elif len(parts) == 2 and parts[0] in {
            "aiohttp", "nvidia-ml-py", "prometheus_client", "psutil", "requests", "rich", "torch",
            "transformers", "tokenizers", "triton", "uvloop", "numpy",
        }:  # fmt: skip
            facts[parts[0]] = parts[1]
        elif line.startswith("Python "):
            facts["python"] = line.strip()
        elif line.startswith("uname:"):
            facts["kernel"] = parts[3]
        elif "Driver Version:" in line and "CUDA Version:" in line:
            facts["driver"] = line.split("Driver Version:")[1].split()[0]
            facts["cuda"] = line.split("CUDA Version:")[1].split()[0]
    return facts


def fmt(x: float | None, nd: int = 1) -> str:
    return "unknown" if x is None else f"{x:,.{nd}f}"


def window_readme(name: str, folder: Path, run: dict, facts: dict[str, str], server_log: str) -> str:
    s = summarize(folder)
    bundle = read_bundle(folder / "bundle")
    roles = cpu_by_role(bundle.processes)
    load = (folder / "load.txt").read_text()
    cmd = (folder / "server-cmd.txt").read_text().strip()
    g = s["gpu"]
    steps = s["queue_steps"]
    lines = [
        f"# {name}: real vLLM 0.26.0 on one NVIDIA H200, `rerank-doctor collect` beside `nvidia-smi`",
        "",
        "A recording, not a hand-written fixture. Made by `tests/gpu/run_h200.sh` on the device machine "
        f"(device run {run['id']}, {run['when']}), brought back as its results tarball and copied here "
        "byte for byte by `tests/gpu/make_fixtures.py` (which wrote only this README and `meta.json`).",
        "",
        "## How it was made",
        f"- Device: 1x NVIDIA H200 (143,771 MiB, power limit 700 W), driver {facts.get('driver')}, CUDA "
        f"{facts.get('cuda')}, 16 cores, Firecracker VM kernel {facts.get('kernel')}; "
        f"{facts.get('python')}, "
        f"torch {facts.get('torch')}, transformers {facts.get('transformers')}, nvidia-ml-py "
        f"{facts.get('nvidia-ml-py')}, psutil {facts.get('psutil')}, aiohttp {facts.get('aiohttp')}.",
        "- vLLM 0.26.0: the PyPI CUDA wheel trimmed as in "
        "../../../../shared/captures/gpu-vllm-0.26/README.md (see tests/gpu/README.md), on PYTHONPATH with "
        "the carried cp312 wheels; `VLLM_USE_FLASHINFER_SAMPLER=0`.",
        f"- rerank-doctor: {run['tree']}.",
        f"- Device tool call: `{run['command']}` "
        f"(wall {run['wall_s']} s, {run['device_s']} s of device time).",
        "- Model: random-weight `Qwen3ForSequenceClassification` (num_labels=1) with Qwen3-Reranker-"
        f"{'4B' if name.startswith('4b') else '0.6B'}'s shape, built on the machine by "
        "`tests/gpu/gen_model.py` "
        "(seed 0); tokenizer: byte-level BPE from `tests/gpu/mk_tok.py`, about 1 token per stress word "
        "(vLLM counted 312 prompt tokens per pair). Scores mean nothing; compute, memory and CPU costs are "
        "the real shape's.",
        f"- Server (fresh start, healthy after {run['healthy_after_s'].get(name.rsplit('-', 1)[0], '?')} s, "
        "then a 6 s unmeasured warm-up):",
        f"  `{cmd}`",
        "- Load and collection (from `load.txt`):",
        *[f"  - {line}" for line in load.strip().splitlines()],
        "",
        "## Files",
        "- `bundle/`: exactly what `rerank-doctor collect --out bundle` wrote (NVML samples in "
        "`nvidia-smi.csv`, per-process CPU in `processes.csv`, /metrics every 5 s in `metrics.prom`, "
        "sockets, server info).",
        "- `reference-nvidia-smi.csv`: nvidia-smi's own 1 s log, started ~1 s before the load and stopped "
        "~1 s after the collect window; local-time stamps, zone in `meta.json` (`utc_offset`).",
        "- `stress-<i>.json`: the report of each client process (`rerank-doctor stress --json`); only "
        "client 0 scraped /metrics before and after.",
        "- `top.log`, `ps.log`, `ss.log` (where present): `top -b` every 1 s, `ps` every 5 s and ss's "
        "TIME-WAIT count on the port every 1 s, logged by the driver beside the window (see `load.txt`; "
        "on the 2026-12-02 machine `ss` was not installed, so ss.log holds only its error).",
        "- `collect-output.txt`: what collect printed. `server.log`: the vLLM server's log"
        + (
            " (the same server also made the open-loop window)."
            if "8api" in name and name.startswith("4b")
            else "."
        ),
        "",
        "## What it shows (computed from the files by tests/gpu_support.py)",
        "| GPU 0 over the collect window | collect (NVML) mean | nvidia-smi mean | paired samples "
        "| median / max abs diff |",
        "|---|---|---|---|---|",
    ]
    units = {"util_pct": "%", "power_w": "W", "memory_used_mib": "MiB", "sm_clock_mhz": "MHz"}
    for field, unit in units.items():
        a = g[field]
        lines.append(
            f"| {field} ({unit}) | {fmt(a['ours_mean'])} | {fmt(a['ref_mean'])} | {a['pairs']} | "
            f"{fmt(a['median_abs_diff'])} / {fmt(a['max_abs_diff'])} |"
        )
    t0 = min(x.t_unix for x in bundle.gpu)
    t1 = max(x.t_unix for x in bundle.gpu)
    ref_rows = (folder / "reference-nvidia-smi.csv").read_text().splitlines()[1:]
    ref = reference_samples(
        (folder / "reference-nvidia-smi.csv").read_text(),
        json.loads((folder / "meta.json").read_text())["utc_offset"],
    )
    inside = [row for row, x in zip(ref_rows, ref, strict=True) if t0 - 0.5 <= x.t_unix <= t1 + 0.5]
    capped = sum(1 for row in inside if int(row.rsplit(",", 1)[1].strip(), 16) & 0x4)
    lines += [
        "",
        f"- nvidia-smi `clocks_event_reasons.active` had the SW power cap bit (0x4) set in {capped} of the "
        f"{len(inside)} reference samples inside the collect window.",
        "- memory.used: NVML's `nvmlDeviceGetMemoryInfo` (v1, what collect reads) counts the memory the "
        "driver reserves; nvidia-smi reports used without it. The difference is the same in every sample.",
        f"- Engine requests (= pairs) finished per second, vLLM's `request_success_total` over the window: "
        f"{fmt(s['engine_pairs_per_s'])}; the clients' own pairs/s (sum of {s['clients']}): "
        f"{fmt(s['client_pairs_per_s'])}.",
        "- Per 5 s scrape interval, mean `request_queue_time_seconds` of the requests that finished in it, "
        "and `num_requests_waiting` at its end:",
        "  " + ", ".join(f"{fmt(st['queue_mean_s'], 2)} s / {fmt(st['waiting'], 0)}" for st in steps),
        "- CPU (percent of one core; busiest process of each role, mean over the window): "
        + "; ".join(
            f"{r} {fmt(v.mean_pct)} (of {v.process_count})"
            for r, v in roles.items()
            if r in ("api_server", "engine_core")
        )
        + f"; host {fmt(roles['host'].mean_pct if 'host' in roles else None)} % of all 16 cores.",
        f"- Collector issues: {s['issues'] or 'none'}.",
        "",
    ]
    return "\n".join(lines)


def main(results: str, dest: str, runs_json: str) -> int:
    res, out = Path(results), Path(dest)
    info = json.loads(Path(runs_json).read_text())
    facts = env_facts(res)
    for name, run_id in info["windows"].items():
        src = res / f"gpu-h200-{name}"
        dst = out / f"gpu-h200-{name}"
        if dst.exists():
            shutil.rmtree(dst)
        dst.mkdir(parents=True)
        shutil.copytree(src / "bundle", dst / "bundle")
        for a, b in COPY.items():
            shutil.copy2(src / a, dst / b)
        for f in [src / n for n in OUTSIDE if (src / n).is_file()]:
            shutil.copy2(f, dst / f.name)
        for f in sorted(src.glob("stress-*.json")):
            shutil.copy2(f, dst / f.name)
        server = name.rsplit("-", 1)[0]  # 4b-8api-open -> 4b-8api
        shutil.copy2(res / f"server-{server}.log", dst / "server.log")
        run = dict(info["runs"][run_id], id=run_id, healthy_after_s=info["healthy_after_s"])
        meta = {
            "utc_offset": json.loads((src / "meta.json").read_text())["utc_offset"],
            "device": "1x NVIDIA H200 143771 MiB, power limit 700 W",
            "driver": facts.get("driver"),
            "cuda": facts.get("cuda"),
            "versions": {k: v for k, v in facts.items() if k not in ("driver", "cuda")},
            "device_run": run,
        }
        (dst / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        (dst / "README.md").write_text(window_readme(name, dst, run, facts, ""))
        print("wrote", dst)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
