"""The load generator against small aiohttp servers on 127.0.0.1 (diagnose.stress.local_server, not vLLM).

Each test starts its own server in a thread, sends a few seconds of load at most, and checks one outcome.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from pathlib import Path

import pytest

from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.stress import IntRange, LoadConfig, run_load
from diagnose.stress.local_server import Behaviour, LocalServer

SMALL = {"docs": IntRange(3, 3), "words": IntRange(5, 5), "distinct_bodies": 32}
VLLM_400 = json.dumps(
    {
        "error": {
            "message": "This model's maximum context length is 2048 tokens. However, you requested "
            "2301 tokens in the input for this pair. Please reduce the length of the input.",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }
).encode()


def _config(url: str, **kw: object) -> LoadConfig:
    base: dict = {"url": url, "duration_s": 2.0, "timeout_s": 5.0, **SMALL}
    base.update(kw)
    return LoadConfig(**base)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_open_loop_p99_shows_a_one_second_server_stall() -> None:
    behaviour = Behaviour(delay_s=0.005, stall_at_call=100, stall_s=1.0)
    with LocalServer(behaviour) as srv:
        report = run_load(_config(srv.url, rate_per_s=100, arrival="constant", duration_s=3.0))
    assert report.calls_failed == 0 and report.calls_ok == report.calls_sent >= 280
    # ~100 calls arrive during the stall and wait up to 1 s each: well over 1 % of the calls.
    assert report.latency.p99_s is not None and report.latency.p99_s > 0.8
    assert report.latency.max_s is not None and report.latency.max_s < 1.5
    assert report.latency.long_tail
    lag = report.schedule_lag
    assert lag is not None and lag.p50_s is not None and lag.p50_s < 0.01  # the generator kept its schedule
    assert report.offered_rate_per_s == pytest.approx(100, rel=0.05)


def test_closed_loop_hides_the_stall_in_its_p99_and_says_so() -> None:
    behaviour = Behaviour(delay_s=0.005, stall_at_call=200, stall_s=1.0)
    with LocalServer(behaviour) as srv:
        report = run_load(_config(srv.url, concurrency=2, duration_s=3.0))
    # Only the 2 calls caught in the stall are slow: the service-time p99 does not see it ...
    assert report.service_time.p99_s is not None and report.service_time.p99_s < 0.2
    assert report.service_time.max_s is not None and report.service_time.max_s > 0.9
    # ... and the report says what that hides: the sends the workers did not make meanwhile.
    omission = report.omission
    assert omission is not None and omission.delayed_sends >= 100 and omission.slow_calls >= 1
    assert omission.corrected.p99_s is not None and omission.corrected.p99_s > 0.5
    assert any("coordinated omission" in note for note in report.notes)
    doc = report.to_dict()
    assert doc["latency_measured_from"] == "actual send time" and doc["target_rate_per_s"] is None
    assert doc["omission"]["delayed_sends"] == omission.delayed_sends


def test_vllm_400_is_a_4xx_with_the_servers_message() -> None:
    with LocalServer(Behaviour(status=400, error_body=VLLM_400)) as srv:
        report = run_load(_config(srv.url, rate_per_s=20, max_requests=5))
    assert report.calls_sent == 5 and report.calls_ok == 0
    assert report.errors_by_kind() == {"4xx": 5}
    (group,) = report.errors
    assert group.status == 400 and group.message.startswith(
        "This model's maximum context length is 2048 tokens"
    )
    assert any("check call before the run answered 400" in n for n in report.notes)


def test_500_is_a_5xx_with_its_body() -> None:
    body = b'{"error": {"message": "EngineCore encountered an issue", "code": 500}}'
    with LocalServer(Behaviour(status=500, error_body=body)) as srv:
        report = run_load(_config(srv.url, concurrency=1, max_requests=4))
    assert report.errors_by_kind() == {"5xx": 4}
    assert report.errors[0].message == "EngineCore encountered an issue"


def test_slow_answers_past_the_timeout_are_timeouts() -> None:
    with LocalServer(Behaviour(delay_s=3.0)) as srv:
        report = run_load(_config(srv.url, rate_per_s=10, max_requests=3, timeout_s=0.3))
    assert report.errors_by_kind() == {"timeout": 3}
    assert report.elapsed_s < 2.5  # bounded by the per-call timeout, not the server's 3 s


def test_dropped_connections_are_connection_errors() -> None:
    # The server goes away mid-run: the calls after it are refused, and say so.
    srv = LocalServer(Behaviour(delay_s=0.01))
    srv.__enter__()
    result = {}

    def stop_soon() -> None:
        srv.__exit__(None, None, None)

    timer = threading.Timer(0.8, stop_soon)
    timer.start()
    try:
        result["report"] = run_load(_config(srv.url, rate_per_s=20, duration_s=2.0, timeout_s=1.0))
    finally:
        timer.join()
    report = result["report"]
    kinds = report.errors_by_kind()
    assert report.calls_ok >= 5 and kinds.get("connection", 0) >= 10
    assert any(g.kind == "connection" and "cannot connect" in g.message for g in report.errors)


def test_unreachable_url_is_a_one_line_unreachable_error() -> None:
    with pytest.raises(DoctorError) as err:
        run_load(_config(f"http://127.0.0.1:{_free_port()}", rate_per_s=5))
    assert err.value.status == ExitStatus.UNREACHABLE
    assert "cannot reach" in err.value.message and "\n" not in err.value.one_line()


def test_wrong_endpoint_404_stops_before_any_load() -> None:
    with LocalServer(Behaviour(endpoints=("/score",))) as srv:
        with pytest.raises(DoctorError) as err:
            run_load(_config(srv.url, rate_per_s=5, endpoint="/v1/rerank"))
        assert srv.seen.calls == 0
    assert err.value.status == ExitStatus.UNREACHABLE and "404" in err.value.message
    assert "--endpoint" in err.value.fix


def test_missing_key_401_names_the_flag_and_wrong_key_is_never_echoed() -> None:
    with LocalServer(Behaviour(api_key="right-key")) as srv:
        with pytest.raises(DoctorError) as missing:
            run_load(_config(srv.url, rate_per_s=5))
        with pytest.raises(DoctorError) as wrong:
            run_load(_config(srv.url, rate_per_s=5, api_key="wrong-key-123"))
    assert "401" in missing.value.message and "--api-key" in missing.value.fix
    assert "wrong-key-123" not in wrong.value.one_line()


def test_api_key_is_sent_but_never_in_the_report(tmp_path: Path) -> None:
    secret = "sk-very-secret-4711"
    with LocalServer(Behaviour(api_key=secret)) as srv:
        report = run_load(_config(srv.url, rate_per_s=20, max_requests=5, api_key=secret))
        assert srv.seen.authorization == {f"Bearer {secret}"}
    assert report.calls_ok == 5
    text = json.dumps(report.to_dict())
    assert secret not in text and report.to_dict()["target"]["auth"] == "bearer"


def test_max_requests_and_duration_bound_the_run() -> None:
    with LocalServer(Behaviour()) as srv:
        capped = run_load(_config(srv.url, concurrency=4, max_requests=37, duration_s=30.0))
        timed = run_load(_config(srv.url, rate_per_s=50, duration_s=1.0))
    assert capped.calls_sent == 37 and capped.stopped_by == "max_requests"
    assert timed.stopped_by == "duration" and 0.9 < timed.elapsed_s < 2.0


def test_connections_are_reused_unless_asked_to_churn() -> None:
    with LocalServer(Behaviour()) as reuse_srv:
        run_load(_config(reuse_srv.url, concurrency=2, max_requests=40))
    with LocalServer(Behaviour()) as churn_srv:
        run_load(_config(churn_srv.url, concurrency=2, max_requests=40, new_connection_per_request=True))
    assert len(reuse_srv.seen.peers) <= 3  # the check call's connection plus the 2 workers'
    assert len(churn_srv.seen.peers) >= 40


def test_distinct_bodies_pool_is_cycled_as_configured() -> None:
    with LocalServer(Behaviour(keep_bodies=True)) as srv:
        report = run_load(_config(srv.url, concurrency=1, max_requests=30, distinct_bodies=10))
    load_bodies = srv.seen.bodies[1:]  # the first is the check call before the run
    assert len(load_bodies) == 30 and len(set(load_bodies)) == 10
    assert report.bodies["distinct"] == 10 and report.bodies["sent_per_distinct_body"] == 3.0


def test_server_view_comes_from_metrics_scraped_before_and_after(captures_dir: Path) -> None:
    pytest.importorskip("diagnose.derive.window")
    scenario = captures_dir / "s2_healthy_c8_d10_w100"
    dumps = [(scenario / name).read_text() for name in ("metrics_start.txt", "metrics_end.txt")]
    with LocalServer(Behaviour(metrics=dumps)) as srv:
        report = run_load(_config(srv.url, rate_per_s=20, max_requests=5))
    view = report.server
    assert view is not None and report.server_problem is None
    # The recording's own window: 4,407 calls of 10 documents = 44,070 engine requests.
    assert view.engine_requests == 44070 and view.http_requests is not None
    assert view.e2e_mean_s is not None and 0 < view.e2e_mean_s < 0.3
    # Every request of that healthy window queued for less than vLLM's first bucket (0.3 s): the p95 is
    # "at most 0.3 s", not the 0.285 s an interpolation would invent.
    assert view.queue_p95_s is None and view.queue_p95_at_most_s == 0.3
    # The recording ran with repeated bodies: the prefix cache answered most prompt tokens.
    assert view.prefix_cache_hit_ratio is not None and 0.5 < view.prefix_cache_hit_ratio <= 1.0


def test_no_metrics_endpoint_gives_a_reason_not_a_view() -> None:
    with LocalServer(Behaviour()) as srv:
        report = run_load(_config(srv.url, rate_per_s=20, max_requests=3))
    assert report.server is None and report.server_problem == "GET /metrics answered 404"


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="needs the main thread")
def test_ctrl_c_stops_the_run_and_still_reports() -> None:
    # Each call lasts 1 s (the model lookup and the check call before the run too: the load starts ~2 s
    # in), so at the interrupt (6 s in) the calls of the load's first seconds are done and those of its
    # last second are in flight. With 0.2 s calls a CI run once had none in flight: Poisson arrivals at
    # 20/s leave a 0.2 s gap e^-4 = 2 % of the time; a 1 s gap, e^-20.
    with LocalServer(Behaviour(delay_s=1.0)) as srv:
        timer = threading.Timer(6.0, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        report = run_load(_config(srv.url, rate_per_s=20, duration_s=20.0))
        timer.join()
    assert report.stopped_by == "interrupt" and report.interrupted
    assert report.calls_ok >= 5 and report.calls_unfinished >= 1
    assert report.elapsed_s < 10.0  # ~4 s: stopped at once, not after its 20 s
    assert any("still in flight" in n for n in report.notes)


def test_each_run_sends_fresh_bodies_unless_a_seed_is_given() -> None:
    # Same bodies run after run filled vLLM's prefix cache and turned a cpu CRITICAL into "healthy".
    def bodies(**kw: object) -> tuple[set[bytes], object]:
        with LocalServer(Behaviour(keep_bodies=True)) as srv:
            report = run_load(_config(srv.url, concurrency=1, max_requests=4, **kw))
        return set(srv.seen.bodies[1:]), report.settings["seed"]

    first, seed_a = bodies()
    second, seed_b = bodies()
    assert isinstance(seed_a, int) and seed_a != seed_b  # the report states the seed it drew
    assert not first & second
    again, seed_c = bodies(seed=seed_a)
    assert seed_c == seed_a and again == first  # --seed repeats a run's bodies exactly


def test_the_drain_after_sending_is_bounded_and_says_what_it_cut() -> None:
    # From the first load call on, the server stalls 5 s; sending stops after 0.5 s; the drain waits 0.3 s,
    # then cancels what is left (call 1 is the check call before the run, answered at once).
    with LocalServer(Behaviour(stall_at_call=2, stall_s=5.0)) as srv:
        report = run_load(_config(srv.url, rate_per_s=10, duration_s=0.5, timeout_s=60.0, drain_s=0.3))
    assert report.calls_sent > 0 and report.calls_unfinished == report.calls_sent
    assert any("--drain" in note and "cancelled" in note for note in report.notes)
    assert {g.message for g in report.errors} == {"still in flight 0.3 s after sending stopped"}


def test_the_live_line_shows_the_drain_and_its_bound() -> None:
    from diagnose.stress.progress import drain_line
    from diagnose.stress.recorder import Recorder

    recorder = Recorder()
    for _ in range(3):
        recorder.start(0.0, 0.0, 1)
    line = drain_line(recorder, 1.0, LoadConfig(rate_per_s=1, drain_s=5.0))
    assert "waiting for 3 calls in flight" in line and "at most 4.0 s more" in line


@pytest.mark.parametrize("loop", ["open", "closed"])
def test_a_stop_set_from_another_thread_ends_the_sending_before_its_duration(loop: str) -> None:
    # What `check --stress` does when its window closes: the load was planned longer than the window,
    # since the window opens only once the server has answered its setup calls.
    shape = {"rate_per_s": 50} if loop == "open" else {"concurrency": 2}
    stop = threading.Event()
    timer = threading.Timer(1.0, stop.set)
    with LocalServer(Behaviour(delay_s=0.005)) as srv:
        timer.start()
        report = run_load(_config(srv.url, duration_s=60.0, **shape), stop=stop)
    assert report.stopped_by == "window"
    assert report.calls_ok > 0
    assert report.send_window_s < 30.0  # stopped by the event, far from the 60 s it was planned for
