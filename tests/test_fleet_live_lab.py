"""Fleet mode end to end on real parts: a real Prometheus 2.42 scraping two real vLLM servers (the lab)
and the rerank-doctor exporter beside each, with load driven at one of them.

Each replica is a `pod` label (Prometheus static_configs), on its vLLM target and on its exporter target
alike, as a PodMonitor would give them. One replica gets a closed loop past the lab's capacity (the load
of test_scenarios_lab.py's past-capacity test), the other nothing; `check --prometheus` over a window of
that load must put the loaded replica first with a non-healthy verdict, read from the queue it measured,
and call the idle one healthy. Nothing here is recorded or shifted: Prometheus stores what it scraped.

With RERANK_DOCTOR_FLEET_LOG=FILE, one JSON line per run with the numbers the assertions read.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import fleet_backfill as fb
import pytest
import requests

from diagnose.cli import main
from diagnose.fleet.client import PrometheusClient
from diagnose.fleet.run import diagnose_fleet
from diagnose.fleet.window import MIN_WINDOW_S, Window
from diagnose.lab.server import LabServer
from diagnose.stress import IntRange, LoadConfig, run_load

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parent.parent
SELECTOR = '{namespace="rerank"}'
LOADED, IDLE = "rr-loaded", "rr-idle"
# Scrapes every 2 s: fleet mode's range step is 5 s at the least (diagnose/fleet/queries.py MIN_STEP_S), so
# every step finds a fresh sample; the exporter's 4 s windows put ~6 CPU and socket readings in the window.
SCRAPE_S = 2.0
EXPORTER_WINDOW_S = 4.0
# Fleet mode refuses a window under 30 s (diagnose/fleet/window.py MIN_WINDOW_S: counters need the scrapes).
WINDOW_S = MIN_WINDOW_S + 2.0
# Load before the window opens (the queue builds; the exporter's first loaded window is published and
# scraped) and after it closes (the scrape Prometheus takes at the window's end still sees load).
LEAD_IN_S = 8.0
LEAD_OUT_S = 8.0
READY_LIMIT_S = 120.0
# The evidence logged per replica (RERANK_DOCTOR_FLEET_LOG), the numbers the margins below come from.
LOGGED = ("calls_delta", "queue_mean_s", "inference_mean_s", "waiting_max", "host_cpu_mean_pct",
          "worker_cpu_mean_pct", "engine_core_cpu_mean_pct", "api_server_cpu_mean_pct")  # fmt: skip


def _log(row: dict[str, Any]) -> None:
    path = os.environ.get("RERANK_DOCTOR_FLEET_LOG")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps(row) + "\n")


@contextmanager
def exporter_beside(server: LabServer, log: Path) -> Iterator[str]:
    """`rerank-doctor export` for one lab server (run from this checkout), stopped with SIGTERM as a
    container stop would; yields its host:port."""
    port = fb.free_port()
    cmd = [sys.executable, "-m", "diagnose", "export", "--url", server.url, "--port", str(port), "--no-gpu",
           "--window", f"{EXPORTER_WINDOW_S:g}s", "--interval", "1s"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _scrape_config(job: str, targets: dict[str, str]) -> dict[str, object]:
    """One job; each target carries its replica's `pod` label (and the namespace the selector reads)."""
    return {
        "job_name": job,
        "static_configs": [
            {"targets": [address], "labels": {"namespace": "rerank", "pod": pod}}
            for pod, address in targets.items()
        ],
    }


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    return list(answer["data"]["result"])


def _wait_until(what: str, ready: Callable[[], bool], limit_s: float = READY_LIMIT_S) -> None:
    deadline = time.monotonic() + limit_s
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {limit_s:.0f} s", pytrace=False)
        time.sleep(1.0)


def _pods_with(url: str, expr: str) -> set[str]:
    return {r["metric"].get("pod", "") for r in _query(url, expr)}


@pytest.fixture
def fleet_of_two(
    start_labs: Callable[[int], list[LabServer]], tmp_path: Path
) -> Iterator[tuple[str, LabServer]]:
    """Two lab servers, an exporter beside each, and Prometheus scraping all four; yields Prometheus' URL
    and the server to load, once Prometheus holds exporter readings of both replicas."""
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed (apt-get install prometheus)", pytrace=False)
    loaded, idle = start_labs(2)
    with ExitStack() as stack:
        exporters = {
            pod: stack.enter_context(exporter_beside(server, tmp_path / f"export-{pod}.log"))
            for pod, server in ((LOADED, loaded), (IDLE, idle))
        }
        vllm = {LOADED: f"127.0.0.1:{loaded.port}", IDLE: f"127.0.0.1:{idle.port}"}
        url = stack.enter_context(
            fb.prometheus_over(
                tmp_path / "data",
                scrape_interval_s=SCRAPE_S,
                scrape_configs=[_scrape_config("vllm", vllm), _scrape_config("rerank-doctor", exporters)],
            )
        )
        _wait_until(
            "every target up",
            lambda: len([r for r in _query(url, f"up{SELECTOR}") if r["value"][1] == "1"]) == 4,
        )
        # The exporter publishes after its first window; both replicas' per-process CPU must be stored.
        _wait_until(
            "exporter readings of both replicas",
            lambda: _pods_with(url, f"rerank_doctor_process_cpu_percent{SELECTOR}") == {LOADED, IDLE},
        )
        yield url, loaded


def test_the_replica_under_load_is_flagged_and_the_idle_one_is_healthy(
    fleet_of_two: tuple[str, LabServer], capsys: pytest.CaptureFixture[str]
) -> None:
    url, loaded = fleet_of_two
    # Past capacity on any machine: closed loop, 16 callers × 20 docs × 50 words (test_scenarios_lab.py).
    load = LoadConfig(
        url=loaded.url,
        concurrency=16,
        docs=IntRange(20, 20),
        words=IntRange(50, 50),
        duration_s=LEAD_IN_S + WINDOW_S + LEAD_OUT_S,
        max_requests=5000,  # a bound on count as well as time; ~40 s at the lab's ~30 calls/s is ~1,200
    )
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(report=run_load(load)), daemon=True)
    thread.start()
    time.sleep(LEAD_IN_S)
    start = time.time()
    time.sleep(WINDOW_S)
    end = time.time()
    thread.join(LEAD_OUT_S + load.drain_s + 15.0)
    assert not thread.is_alive() and "report" in result, "the load run did not finish"

    argv = ["check", "--prometheus", url, "--selector", SELECTOR, "--start", f"{start:.3f}",
            "--end", f"{end:.3f}", "--json"]  # fmt: skip
    status = main(argv)
    out, err = capsys.readouterr()
    assert out, err  # a one-line error instead of the JSON
    doc = json.loads(out)
    replicas = {r["replica"]: r for r in doc["replicas"]}
    report = diagnose_fleet(PrometheusClient(url), Window(start, end), selector=SELECTOR)
    evidence = {r.replica: r.report.evidence for r in report.replicas}
    busy, rest = evidence[LOADED], evidence[IDLE]
    _log(
        {
            "verdicts": {name: r["verdict"] for name, r in replicas.items()},
            "order": [r["replica"] for r in doc["replicas"]],
            "pairs_per_s": {name: r["pairs_per_s"] for name, r in replicas.items()},
            **{f"{name}.{key}": ev.get(key) for name, ev in evidence.items() for key in LOGGED},
        }
    )

    # Both replicas found, each with its vLLM and its exporter matched by the pod label alone.
    assert set(replicas) == {LOADED, IDLE}
    assert all(r["sources"]["vllm"] and r["sources"]["exporter"] for r in replicas.values())
    # The loaded replica is the flagged one, first; the fleet says so, and so does the exit status.
    assert doc["replicas"][0]["replica"] == LOADED
    assert replicas[LOADED]["verdict"]["label"] != "healthy", replicas[LOADED]["findings"]
    assert replicas[LOADED]["verdict"]["severity"] in {"warning", "critical"}
    assert replicas[IDLE]["verdict"]["label"] == "healthy", replicas[IDLE]["findings"]
    assert doc["verdict"]["label"] == replicas[LOADED]["verdict"]["label"] and status == 1
    # The deciding evidence, read back from Prometheus: the loaded replica's requests queued longer than
    # the model took for them, with requests waiting; the idle one served nothing and queued nothing.
    # Measured (RERANK_DOCTOR_FLEET_LOG), 2 cores: three runs alone gave cpu/cpu-model each time, queue
    # 2.20, 2.62 and 2.27 s for 0.14-0.17 s of inference (15x; the line here is 1x), 168-200 calls in the
    # window, 277-285 waiting at most; one run beside another session's vLLM (three servers on 2 cores):
    # queue 1.92 s for 0.43 s (4.5x), 65 calls, 271 waiting. The idle replica: 0 calls, 0 waiting, each run.
    assert isinstance(busy["queue_mean_s"], float) and isinstance(busy["inference_mean_s"], float)
    assert busy["queue_mean_s"] > busy["inference_mean_s"]
    assert isinstance(busy["waiting_max"], float) and busy["waiting_max"] > 0
    assert rest["calls_delta"] == 0 and rest["waiting_max"] == 0
