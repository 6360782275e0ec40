"""The vLLM collector against real local servers that fail in the ways real ones do."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from http_servers import Route, closed_port_url, serve, silent_listener

from diagnose.collect.vllm import VllmSource, base_url
from diagnose.readings import CollectorIssue, MetricsDump

LAB_032 = Path(__file__).parent / "fixtures" / "vllm-0.32-cpu-lab"


def real_exposition(captures_dir: Path) -> bytes:
    return (captures_dir / "s2_healthy_c8_d10_w100" / "metrics_end.txt").read_bytes()


@pytest.mark.parametrize(
    "given, base",
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://h:8000/", "http://h:8000"),
        ("http://h:8000/v1", "http://h:8000"),
        ("http://h:8000/metrics", "http://h:8000"),
        ("https://h/prefix/v1/rerank", "https://h/prefix"),
    ],
)
def test_base_url_accepts_what_people_paste(given: str, base: str) -> None:
    assert base_url(given) == base


def test_scrape_returns_the_text_as_received(captures_dir: Path) -> None:
    body = real_exposition(captures_dir)
    with serve({"/metrics": Route(body=body)}) as url:
        dump = VllmSource(url).scrape()
    assert isinstance(dump, MetricsDump)
    assert dump.text.encode() == body
    assert abs(dump.t_unix - time.time()) < 5


def test_gzip_encoded_metrics_are_decoded(captures_dir: Path) -> None:
    # prometheus_client (as vLLM serves it) gzips /metrics when the client accepts gzip, as requests does.
    import gzip

    from http_servers import serve_gzip

    body = real_exposition(captures_dir)
    with serve_gzip("/metrics", gzip.compress(body)) as url:
        dump = VllmSource(url).scrape()
    assert isinstance(dump, MetricsDump) and dump.text.encode() == body


def test_connection_refused_is_one_line_with_the_fix() -> None:
    issue = VllmSource(closed_port_url(), timeout_s=2).scrape()
    assert isinstance(issue, CollectorIssue)
    assert "connection refused" in issue.reason and "is vLLM running" in issue.fix


def test_server_that_never_answers_is_bounded_by_the_timeout() -> None:
    with silent_listener() as url:
        start = time.monotonic()
        issue = VllmSource(url, timeout_s=1.0).scrape()
        took = time.monotonic() - start
    assert isinstance(issue, CollectorIssue)
    assert "sent no answer within 1 s" in issue.reason
    assert took < 5  # bounded: a hung server cannot hang the collection


def test_slow_drip_is_cut_at_the_total_deadline() -> None:
    with serve({"/metrics": Route(body=b"x" * 10000, drip_s=0.01)}) as url:
        start = time.monotonic()
        issue = VllmSource(url, timeout_s=1.0).scrape()
        took = time.monotonic() - start
    assert isinstance(issue, CollectorIssue) and "still sending" in issue.reason
    assert took < 5


def test_401_from_api_key_names_the_flag() -> None:
    with serve({"/metrics": Route(status=401, body=b'{"error":"Unauthorized"}')}) as url:
        issue = VllmSource(url).scrape()
    assert isinstance(issue, CollectorIssue)
    assert "--api-key" in issue.reason and "--api-key KEY" in issue.fix


def test_api_key_is_sent_as_bearer_and_never_in_the_issue() -> None:
    headers: list[dict[str, str]] = []
    with serve({"/metrics": Route(status=401)}, seen_headers=headers) as url:
        issue = VllmSource(url, api_key="sk-secret-123").scrape()
    assert headers[0]["Authorization"] == "Bearer sk-secret-123"
    assert "sk-secret-123" not in repr(issue)


def test_html_instead_of_metrics_is_named() -> None:
    with serve(
        {"/metrics": Route(body=b"<!doctype html><html>login</html>", content_type="text/html")}
    ) as url:
        issue = VllmSource(url).scrape()
    assert isinstance(issue, CollectorIssue) and "returned HTML" in issue.reason


def test_404_points_at_the_server_root() -> None:
    with serve({}) as url:
        issue = VllmSource(url + "/v1").scrape()
    assert isinstance(issue, CollectorIssue) and "404" in issue.reason and "root" in issue.fix


def test_oversized_answer_is_refused_without_reading_it_all() -> None:
    with serve({"/metrics": Route(body=b"a 1\n" * 300_000)}) as url:
        issue = VllmSource(url, max_bytes=1024 * 1024).scrape()
    assert isinstance(issue, CollectorIssue) and "more than 1 MiB" in issue.reason


def test_fifty_megabytes_within_the_cap_are_kept() -> None:
    body = b"# TYPE vllm:x counter\n" + b"vllm:x_total 1\n" * (50 * 1024 * 1024 // 15)
    with serve({"/metrics": Route(body=body)}) as url:
        dump = VllmSource(url, timeout_s=30).scrape()
    assert isinstance(dump, MetricsDump) and len(dump.text) == len(body)


def test_non_utf8_bytes_are_replaced_not_fatal() -> None:
    with serve({"/metrics": Route(body=b"vllm:num_requests_waiting 2\n\xff\xfe\n")}) as url:
        dump = VllmSource(url).scrape()
    assert isinstance(dump, MetricsDump) and dump.text.startswith("vllm:num_requests_waiting 2")


def test_disable_log_stats_is_said_once_not_guessed() -> None:
    source = VllmSource("http://127.0.0.1:1")
    plain = MetricsDump(1.0, "# TYPE http_requests_total counter\nhttp_requests_total 3\n")
    issue = source.has_engine_metrics(plain)
    assert issue is not None and "--disable-log-stats" in issue.reason
    assert source.has_engine_metrics(plain) is None  # once


def test_prometheus_spelling_counts_as_engine_metrics() -> None:
    assert (
        VllmSource("http://127.0.0.1:1").has_engine_metrics(MetricsDump(1.0, "vllm_num_requests_waiting 0\n"))
        is None
    )


def test_server_info_reads_health_version_and_max_model_len() -> None:
    routes = {
        "/health": Route(body=b""),
        "/version": Route(body=b'{"version":"0.32.0"}', content_type="application/json"),
        "/v1/models": Route(
            body=b'{"object":"list","data":[{"id":"lab-reranker","max_model_len":2048}]}',
            content_type="application/json",
        ),
    }
    with serve(routes) as url:
        info, issues = VllmSource(url).server_info()
    assert (info.healthy, info.version, info.model_id, info.max_model_len) == (
        True,
        "0.32.0",
        "lab-reranker",
        2048,
    )
    assert issues == []


def test_server_info_of_an_unreachable_server_is_one_issue() -> None:
    info, issues = VllmSource(closed_port_url(), timeout_s=1).server_info()
    assert info.healthy is None and len(issues) == 1
