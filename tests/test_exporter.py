"""The exporter: a custom collector over the latest diagnosis, a background loop, a non-blocking scrape.

Inputs are the real vLLM 0.26 H200 captures (tests/conftest.py `captures_dir`) run through the real
pipeline (read_bundle -> build_evidence -> run_rules), plus small inline states for the stale cases.
"""

from __future__ import annotations

import argparse
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from diagnose.bundle import read_bundle
from diagnose.collect.sockets import TCP_STATES
from diagnose.derive.evidence import build_evidence
from diagnose.exporter.collector import ReportCollector
from diagnose.exporter.loop import CollectionLoop
from diagnose.exporter.server import build_registry, serve
from diagnose.exporter.snapshot import Snapshot, build_snapshot
from diagnose.exporter.state import ExporterState
from diagnose.readings import Bundle, CollectorIssue
from diagnose.report import LABELS
from diagnose.rules.engine import run_rules

CPU_BOUND = "s5_cpu_bound_tiny_c32_d500_w3"  # the API server at ~100 % of a core (DESIGN §2)


def snapshot_of(captures_dir: Path, scenario: str, end_t: float = 1000.0) -> Snapshot:
    bundle = read_bundle(captures_dir / scenario)
    report = run_rules(build_evidence(bundle), source=scenario)
    return build_snapshot(
        bundle,
        report,
        window_end_t_unix=end_t,
        collection_s=2.0,
        tcp_states=TCP_STATES.values(),
    )


def scrape(state: ExporterState, now: float, stale_after_s: float = 60.0) -> dict[tuple[str, tuple], float]:
    """Exposition text as prometheus_client serves it, parsed back: (sample name, labels) -> value."""
    registry = build_registry(
        ReportCollector(state, url="http://x:8000", stale_after_s=stale_after_s, clock=lambda: now),
        self_metrics=False,
    )
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def series(samples: dict, name: str) -> dict[tuple, float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def test_cpu_bound_capture_exports_its_verdict_findings_and_per_role_cpu(captures_dir: Path) -> None:
    snap = snapshot_of(captures_dir, CPU_BOUND)
    state = ExporterState()
    state.publish(snap)
    samples = scrape(state, now=1005.0)

    assert all(name.startswith("rerank_doctor_") for name, _ in samples)
    bottleneck = series(samples, "rerank_doctor_bottleneck")
    assert {dict(k)["label"] for k in bottleneck} == set(LABELS)
    assert (
        [dict(k)["label"] for k, v in bottleneck.items() if v == 1.0]
        == [snap.report.verdict.label]
        == ["cpu"]
    )
    findings = series(samples, "rerank_doctor_finding")
    assert {dict(k)["rule_id"] for k in findings} == {f.rule_id for f in snap.report.findings}
    assert ("cpu-api-server", "critical") in {(dict(k)["rule_id"], dict(k)["severity"]) for k in findings}
    cpu = {dict(k)["role"]: v for k, v in series(samples, "rerank_doctor_process_cpu_percent").items()}
    assert 95 < cpu["api_server"] < 130  # the capture's API server sat at ~100 % of one core
    # One API server: the role's total is that one process (fleet mode reads the share from it).
    together = {dict(k)["role"]: v for k, v in series(samples, "rerank_doctor_role_cpu_percent").items()}
    assert together["api_server"] == pytest.approx(cpu["api_server"])
    assert series(samples, "rerank_doctor_gpu_utilization_ratio")  # the H200 had NVML samples
    assert all(0 <= v <= 1 for v in series(samples, "rerank_doctor_gpu_utilization_ratio").values())
    assert samples[("rerank_doctor_stale", ())] == 0.0
    assert samples[("rerank_doctor_collection_age_seconds", ())] == pytest.approx(5.0)
    assert samples[("rerank_doctor_last_success_timestamp_seconds", ())] == 1000.0


def test_the_vllm_command_line_is_served_in_the_info_series_with_secrets_redacted(captures_dir: Path) -> None:
    """Fleet mode reads the current flags from rerank_doctor_info: a key that reached the snapshot
    unredacted (it should not) is still masked on the way out."""
    from dataclasses import replace

    snap = snapshot_of(captures_dir, CPU_BOUND)
    state = ExporterState()
    state.publish(replace(snap, flags="vllm serve m --max-model-len 8192 --api-key sk-exporter-0451"))
    info = series(scrape(state, now=1001.0), "rerank_doctor_info")
    (labels,) = info
    flags = dict(labels)["flags"]
    assert "--max-model-len 8192" in flags and "sk-exporter-0451" not in flags and "--api-key ***" in flags


def test_only_core_percent_metrics_use_the_percent_suffix(captures_dir: Path) -> None:
    state = ExporterState()
    state.publish(snapshot_of(captures_dir, CPU_BOUND))
    names = {name for name, _ in scrape(state, now=1001.0)}
    assert {n for n in names if n.endswith("_percent")} == {
        "rerank_doctor_process_cpu_percent",
        "rerank_doctor_process_cpu_max_percent",
        "rerank_doctor_role_cpu_percent",
    }
    assert "rerank_doctor_gpu_memory_used_bytes" in names and "rerank_doctor_gpu_power_watts" in names


def test_failed_window_keeps_serving_the_last_good_values_marked_stale(captures_dir: Path) -> None:
    state = ExporterState()
    state.publish(snapshot_of(captures_dir, CPU_BOUND, end_t=1000.0))
    state.fail("http://x:8000/metrics timed out", {"vllm": False, "gpu": True, "host": True, "sockets": True})
    samples = scrape(state, now=1030.0)
    assert samples[("rerank_doctor_stale", ())] == 1.0
    assert samples[("rerank_doctor_collector_up", (("collector", "vllm"),))] == 0.0
    assert samples[("rerank_doctor_collection_age_seconds", ())] == pytest.approx(30.0)
    assert [v for v in series(samples, "rerank_doctor_bottleneck").values() if v == 1.0] == [1.0]
    assert samples[("rerank_doctor_collections_total", (("outcome", "failed"),))] == 1.0


def test_old_snapshot_is_stale_after_the_limit_even_when_no_window_failed(captures_dir: Path) -> None:
    state = ExporterState()
    state.publish(snapshot_of(captures_dir, CPU_BOUND, end_t=1000.0))
    assert scrape(state, now=1059.0, stale_after_s=60.0)[("rerank_doctor_stale", ())] == 0.0
    assert scrape(state, now=1061.0, stale_after_s=60.0)[("rerank_doctor_stale", ())] == 1.0


def test_before_the_first_window_nothing_is_guessed() -> None:
    samples = scrape(ExporterState(), now=5.0)
    assert samples[("rerank_doctor_stale", ())] == 1.0
    assert not series(samples, "rerank_doctor_bottleneck")
    assert not series(samples, "rerank_doctor_process_cpu_percent")
    assert set(series(samples, "rerank_doctor_collector_up").values()) == {0.0}


def test_socket_census_reports_unseen_states_as_known_zero(captures_dir: Path) -> None:
    from diagnose.readings import SocketCensus

    bundle = read_bundle(captures_dir / CPU_BOUND)
    bundle.sockets = [SocketCensus(t_unix=1.0, port=8000, port_states={"ESTABLISHED": 3}, host_states={})]
    report = run_rules(build_evidence(bundle))
    state = ExporterState()
    state.publish(
        build_snapshot(
            bundle,
            report,
            window_end_t_unix=2.0,
            collection_s=1.0,
            tcp_states=TCP_STATES.values(),
        )
    )
    port = {
        dict(k)["state"]: v for k, v in series(scrape(state, now=3.0), "rerank_doctor_port_sockets").items()
    }
    assert port["ESTABLISHED"] == 3.0 and port["TIME_WAIT"] == 0.0


# --- the loop, with its collaborators replaced -----------------------------------------------------------


def test_loop_publishes_a_report_for_a_window_with_metrics(captures_dir: Path) -> None:
    bundle = read_bundle(captures_dir / CPU_BOUND)
    state = ExporterState()
    loop = CollectionLoop(
        "http://x:8000",
        state,
        build_sources=lambda url, **_: (object(), []),
        collect_window=lambda sources, **_: bundle,
    )
    assert loop.run_once() is True
    assert state.view().snapshot is not None
    assert state.view().snapshot.report.verdict.label == "cpu"


def test_loop_marks_a_window_without_metrics_failed_with_the_collectors_reason() -> None:
    empty = Bundle(issues=[CollectorIssue(1.0, "vllm", "connection refused by http://x:8000", "start vLLM")])
    state = ExporterState()
    loop = CollectionLoop(
        "http://x:8000",
        state,
        build_sources=lambda url, **_: (object(), []),
        collect_window=lambda s, **_: empty,
    )
    assert loop.run_once() is False
    assert state.view().last_error == "connection refused by http://x:8000"
    assert state.view().windows_failed == 1


def test_loop_survives_an_exception_in_collection() -> None:
    def boom(sources: object, **_: object) -> Bundle:
        raise RuntimeError("disk on fire")

    state = ExporterState()
    loop = CollectionLoop(
        "http://x:8000", state, build_sources=lambda url, **_: (object(), []), collect_window=boom
    )
    assert loop.run_once() is False
    assert "disk on fire" in (state.view().last_error or "")


# --- a slow vLLM never blocks a scrape: real HTTP on 127.0.0.1 ---------------------------------------------


class _Hanging(http.server.BaseHTTPRequestHandler):
    release = threading.Event()

    def do_GET(self) -> None:
        self.release.wait(20)  # a vLLM that accepts the connection and never answers
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hanging_vllm() -> Iterator[str]:
    _Hanging.release.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hanging)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _Hanging.release.set()
    server.shutdown()


def test_scrape_answers_at_once_while_the_collection_hangs_on_vllm(hanging_vllm: str) -> None:
    state = ExporterState()
    loop = CollectionLoop(hanging_vllm, state, window_s=1.0, timeout_s=15.0, use_gpu=False, retry_s=0.1)
    collector = ReportCollector(state, url=hanging_vllm, stale_after_s=3.0)
    server, _ = serve(build_registry(collector), bind="127.0.0.1", port=0)
    try:
        loop.start()
        time.sleep(0.3)  # the loop is now inside a request that will not return for 15 s
        started = time.monotonic()
        reply = requests.get(f"http://127.0.0.1:{server.server_address[1]}/metrics", timeout=5)
        took_s = time.monotonic() - started
    finally:
        loop.stop(timeout_s=0.1)
        server.shutdown()
    assert reply.status_code == 200
    assert took_s < 2.0, f"the scrape waited {took_s:.1f} s on the collection"
    assert "rerank_doctor_stale 1.0" in reply.text


def test_export_binds_loopback_unless_told(tmp_path: Path) -> None:
    from diagnose.commands import export

    parser = argparse.ArgumentParser()
    export.add_arguments(parser)
    assert parser.parse_args(["--url", "http://127.0.0.1:8000"]).bind == "127.0.0.1"
    server, _ = serve(build_registry(ReportCollector(ExporterState())), bind="127.0.0.1", port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()


def test_export_is_a_registered_subcommand() -> None:
    from diagnose.commands import SUBCOMMANDS

    assert ("export", "export") in SUBCOMMANDS


def test_loop_keeps_its_sources_and_starts_the_next_window_from_the_known_vllm_pid(
    captures_dir: Path,
) -> None:
    from diagnose.collect.sampler import Sources

    bundle = read_bundle(captures_dir / CPU_BOUND)
    bundle.server.pids = [4242, 4243]
    seen: list[Sources] = []

    def build(url: str, **_: object) -> tuple[Sources, list[CollectorIssue]]:
        return Sources(vllm=object(), host=object(), sockets=object(), port=8000), []

    def collect(sources: Sources, **_: object) -> Bundle:
        seen.append(sources)
        return bundle

    loop = CollectionLoop(
        "http://127.0.0.1:8000", ExporterState(), build_sources=build, collect_window=collect
    )
    assert loop.run_once() and loop.run_once()
    first, second = seen
    assert first.pid is None and second.pid == 4242  # found by port once, then by pid
    assert second.host is first.host and second.vllm is first.vllm and second.sockets is first.sockets


def test_server_info_is_asked_again_only_every_n_windows_unless_it_failed() -> None:
    from diagnose.exporter.loop import _CachedServerInfo
    from diagnose.readings import ServerInfo

    class Source:
        calls = 0
        healthy = True

        def server_info(self) -> tuple[ServerInfo, list[CollectorIssue]]:
            self.calls += 1
            return ServerInfo(url="http://x", healthy=self.healthy, version="0.32.0"), []

    source = Source()
    cached = _CachedServerInfo(source, every=3)
    first, _ = cached.server_info()
    first.pids.append(1)  # collect_window writes into what it gets: the cache must not see it
    assert [cached.server_info()[0].pids for _ in range(2)] == [[], []]
    assert source.calls == 1
    cached.server_info()
    assert source.calls == 2  # every 3rd window asks again
    source.healthy = False
    cached.server_info()
    cached.server_info()
    assert source.calls == 2  # still the cached answer until the 3rd window
    assert cached.server_info()[0].healthy is False
    cached.server_info()
    assert source.calls == 4  # an unhealthy answer is not cached: asked again at the next window


def test_a_hundred_scrapers_connecting_at_once_are_all_queued_by_the_kernel() -> None:
    # prometheus_client's server listens with a backlog of 5: while it is busy, the 6th connect's SYN is
    # dropped and the client retries after ~1 s. Ours queues them all: with the server not accepting at
    # all, every one of 100 connects still completes its handshake at once.
    import socket
    import struct

    from diagnose.exporter.server import make_exporter_server

    server = make_exporter_server(build_registry(ReportCollector(ExporterState())), bind="127.0.0.1", port=0)
    clients = []
    try:
        for _ in range(100):
            client = socket.socket()
            # Closed with a reset, not a FIN: 100 TIME_WAIT sockets left behind would sit on ports that
            # other tests' listeners may be given (test_sockets counts the TIME_WAIT on its own port).
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.settimeout(3.0)  # a dropped SYN is retried after 1 s, then 3 s: a full queue fails here
            client.connect(server.server_address[:2])
            clients.append(client)
    finally:
        for client in clients:
            client.close()
        server.server_close()
    assert len(clients) == 100


def test_a_metrics_endpoint_answering_json_is_vllm_down_not_a_healthy_window() -> None:
    from http_servers import Route, serve

    routes: dict[str, Route | list[Route]] = {
        "/health": Route(body=b""),
        "/version": Route(body=b'{"version":"0.32.0"}', content_type="application/json"),
        "/v1/models": Route(body=b'{"data":[{"id":"m"}]}', content_type="application/json"),
        "/metrics": Route(body=b'{"object":"list","data":[]}', content_type="application/json"),
    }
    state = ExporterState()
    with serve(routes) as url:
        loop = CollectionLoop(url, state, window_s=0.3, interval_s=0.1, use_gpu=False, timeout_s=2.0)
        assert loop.run_once() is False
    view = state.view()
    assert view.collector_up.get("vllm") is False
    assert "json" in (view.last_error or "").lower()
