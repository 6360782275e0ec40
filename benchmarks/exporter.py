"""CPU cost of `rerank-doctor export`: per scrape, and of the background collection, at 1 scrape/s.

Target: the exporter at one scrape per second costs <= 0.5 % of one core (scrape formatting + the
collection thread). Prints:
- CPU ms per scrape of our custom collector over a real diagnosis (the s5 H200 capture run through
  read_bundle -> diagnose.pipeline.diagnose), and the reference measured in the same run:
  prometheus_client's default process + platform + gc collectors, scraped the same way; the ratio.
- CPU of the background collection thread (time.thread_time) over real windows against a local stand-in
  vLLM on 127.0.0.1 that serves the lab's recorded 0.32 /metrics (tests/fixtures/vllm-0.32-cpu-lab),
  with the real host and socket collectors; as % of one core.
- The total at 1 scrape/s, as % of one core, against the 0.5 % target.
- N scrapers (default 100) arriving at once: how many had to retry their connect (a connect slower than
  0.5 s: the kernel dropped the SYN of a full listen queue, the client re-sent it after ~1 s), and the
  slowest answer, for our server and for prometheus_client's start_http_server (reference) serving the
  same registry in the same run.

Run: python benchmarks/exporter.py [--seconds 95] [--window 30] [--scrapers 100] [--scrapers-only]
The loop runs with the exporter's defaults otherwise (5 s beat, one /metrics scrape at each window end).
"""

from __future__ import annotations

import argparse
import http.server
import json
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from diagnose.bundle import read_bundle, split_dumps
from diagnose.collect.sockets import TCP_STATES
from diagnose.exporter.collector import ReportCollector
from diagnose.exporter.loop import CollectionLoop
from diagnose.exporter.server import build_registry, serve
from diagnose.exporter.snapshot import build_snapshot
from diagnose.exporter.state import ExporterState
from diagnose.pipeline import diagnose

REPO = Path(__file__).resolve().parent.parent
S5 = REPO.parent / "shared" / "captures" / "gpu-vllm-0.26" / "s5_cpu_bound_tiny_c32_d500_w3.tar.gz"
LAB = REPO / "tests" / "fixtures" / "vllm-0.32-cpu-lab" / "metrics.prom"
TARGET_PCT = 0.5


def cpu_ms_per_scrape(registry: CollectorRegistry, reps: int) -> float:
    generate_latest(registry)  # warm
    start = time.process_time()
    for _ in range(reps):
        generate_latest(registry)
    return (time.process_time() - start) * 1000 / reps


def diagnosed_state(tmp: Path) -> ExporterState:
    with tarfile.open(S5) as tar:
        tar.extractall(tmp, filter="data")
    bundle = read_bundle(next(p for p in tmp.iterdir() if p.is_dir()))
    report = diagnose(bundle)
    state = ExporterState()
    state.publish(
        build_snapshot(
            bundle,
            report,
            window_end_t_unix=time.time(),
            collection_s=1.0,
            tcp_states=TCP_STATES.values(),
        )
    )
    return state


def stand_in_vllm() -> tuple[http.server.ThreadingHTTPServer, str]:
    dumps = split_dumps(LAB.read_text())
    metrics = dumps[-1].text.encode()
    routes = {
        "/metrics": (metrics, "text/plain; version=0.0.4"),
        "/health": (b"", "text/plain"),
        "/version": (json.dumps({"version": "0.32.0"}).encode(), "application/json"),
        "/v1/models": (
            json.dumps({"data": [{"id": "lab-reranker", "max_model_len": 2048}]}).encode(),
            "application/json",
        ),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, kind = routes.get(self.path, (b"not found", "text/plain"))
            self.send_response(200 if self.path in routes else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class MeasuredLoop(CollectionLoop):
    """The real loop; records the CPU its own thread used per window (collection + diagnosis, not the
    stand-in server's threads) and each window's wall time."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.windows: list[tuple[float, float]] = []  # (thread CPU s, wall s)

    def run_once(self) -> bool:
        cpu, wall = time.thread_time(), time.monotonic()
        try:
            return super().run_once()
        finally:
            self.windows.append((time.thread_time() - cpu, time.monotonic() - wall))


RETRY_S = 0.5  # a loopback connect takes microseconds; one that took this long had its SYN dropped


def burst(port: int, scrapers: int) -> tuple[int, float, int]:
    """`scrapers` clients released at once: (connects that were retried, slowest answer s, failures)."""
    import socket

    gate = threading.Barrier(scrapers)
    connect_s: list[float] = []
    answer_s: list[float] = []
    failed: list[str] = []

    def one() -> None:
        gate.wait()
        started = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                connect_s.append(time.monotonic() - started)
                sock.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
                reply = b""
                while chunk := sock.recv(65536):
                    reply += chunk
            if not reply.startswith(b"HTTP/1.0 200") and not reply.startswith(b"HTTP/1.1 200"):
                failed.append(reply[:40].decode(errors="replace"))
            answer_s.append(time.monotonic() - started)
        except OSError as err:
            failed.append(type(err).__name__)

    threads = [threading.Thread(target=one) for _ in range(scrapers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        print(f"  failures: {sorted(set(failed))[:3]}")
    return sum(1 for c in connect_s if c >= RETRY_S), max(answer_s, default=float("nan")), len(failed)


def scrapers_section(registry: CollectorRegistry, scrapers: int) -> None:
    ours, _ = serve(registry, bind="127.0.0.1", port=0)
    reference, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        for name, server in (
            ("rerank-doctor serve()", ours),
            ("prometheus_client start_http_server", reference),
        ):
            burst(server.server_address[1], 5)  # warm
            retried, slowest_s, failed = burst(server.server_address[1], scrapers)
            print(
                f"{scrapers} scrapers at once, {name}: {retried} connects retried (>= {RETRY_S} s), "
                f"slowest answer {slowest_s:.2f} s, {failed} failed"
            )
    finally:
        ours.shutdown()
        reference.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=95.0, help="wall time of the collection run")
    parser.add_argument("--window", type=float, default=30.0, help="exporter window (default 30, as shipped)")
    parser.add_argument("--reps", type=int, default=300, help="scrapes per scrape measurement")
    parser.add_argument("--scrapers", type=int, default=100, help="concurrent scrapers in the burst test")
    parser.add_argument("--scrapers-only", action="store_true", help="only the concurrent-scrapers test")
    args = parser.parse_args()
    if not S5.is_file() or not LAB.is_file():
        print(f"inputs missing: {S5} or {LAB}", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory() as tmp:
        state = diagnosed_state(Path(tmp))
    ours = build_registry(ReportCollector(state, url="http://127.0.0.1:8000"), self_metrics=False)
    reference = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=reference)
    PlatformCollector(registry=reference)
    GCCollector(registry=reference)
    ours_ms = cpu_ms_per_scrape(ours, args.reps)
    ref_ms = cpu_ms_per_scrape(reference, args.reps)
    print(f"scrape, rerank-doctor collector (s5 H200 diagnosis): {ours_ms:.3f} ms CPU")
    print(
        f"scrape, prometheus_client default process+platform+gc collectors (reference): {ref_ms:.3f} ms CPU"
    )
    print(f"ratio ours / reference: {ours_ms / ref_ms:.2f}x")
    scrapers_section(ours, args.scrapers)
    if args.scrapers_only:
        return 0

    server, url = stand_in_vllm()
    loop = MeasuredLoop(url, ExporterState(), window_s=args.window, use_gpu=True)
    loop.start()
    time.sleep(args.seconds)
    loop.stop(timeout_s=30)
    server.shutdown()
    view = loop.state.view()
    full = [w for w in loop.windows if w[1] >= args.window * 0.9]  # the last one is cut short by stop()
    first_cpu, first_wall = loop.windows[0]
    print(
        f"first window (finds vLLM by its port): {first_cpu * 1000:.0f} ms CPU over {first_wall:.1f} s "
        f"= {first_cpu / first_wall * 100:.3f} % of one core"
    )
    steady = full[1:] or full
    cpu_s = sum(c for c, _ in steady)
    wall_s = sum(w for _, w in steady)
    collect_pct = cpu_s / wall_s * 100
    scrape_pct = ours_ms / 1000 * 1.0 * 100  # one scrape per second
    total_pct = collect_pct + scrape_pct
    print(
        f"background collection, steady state: {cpu_s * 1000:.0f} ms CPU over {wall_s:.1f} s "
        f"({len(steady)} windows of {args.window:g} s; "
        f"{view.windows_ok} ok, {view.windows_failed} failed in all) "
        f"= {collect_pct:.3f} % of one core"
    )
    print(f"scrapes at 1/s: {scrape_pct:.3f} % of one core")
    print(
        f"total at 1 scrape/s: {total_pct:.3f} % of one core (target <= {TARGET_PCT} %): "
        f"ratio to target {total_pct / TARGET_PCT:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
