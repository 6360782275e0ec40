"""Fleet mode's bad input: each is one line naming the fix, a documented exit status, no traceback, no secret.

The misbehaving servers are real HTTP servers on 127.0.0.1 (tests/http_servers.py); the bodies are what
Prometheus 2.42 answers in those cases (its API's error JSON), a login proxy's HTML, or nothing at all.
"""

from __future__ import annotations

import json

import pytest
from http_servers import Route, closed_port_url, serve, silent_listener

from diagnose.cli import main
from diagnose.errors import DoctorError
from diagnose.fleet.client import PrometheusClient, parse_headers
from diagnose.fleet.window import window_from_args

WINDOW = ["--start", "1796234000", "--end", "1796234600"]
SECRET = "s3cr3t-token-value"


def _routes(route: Route) -> dict[str, Route]:
    return {"/api/v1/query": route, "/api/v1/query_range": route}


def _error(status: int, error_type: str, error: str) -> Route:
    body = json.dumps({"status": "error", "errorType": error_type, "error": error}).encode()
    return Route(status=status, body=body, content_type="application/json")


def _run(capsys: pytest.CaptureFixture[str], url: str, *extra: str) -> tuple[int, str]:
    status = main(["check", "--prometheus", url, *WINDOW, *extra])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return status, lines[0]


def test_refused_connection_is_exit_3_naming_the_url_flag(capsys: pytest.CaptureFixture[str]) -> None:
    status, line = _run(capsys, closed_port_url())
    assert status == 3 and "cannot connect to Prometheus" in line and "--prometheus" in line


def test_a_hung_prometheus_is_exit_3_within_the_query_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    with silent_listener() as url:
        status, line = _run(capsys, url, "--query-timeout", "1")
    assert status == 3 and "did not answer within 1 s" in line


@pytest.mark.parametrize("code", [401, 403])
def test_refused_credentials_are_exit_3_naming_the_header_flag_and_never_echo_it(
    capsys: pytest.CaptureFixture[str], code: int
) -> None:
    seen: list[dict[str, str]] = []
    with serve(_routes(Route(status=code, body=b"denied")), seen) as url:
        status, line = _run(capsys, url, "--header", f"Authorization: Bearer {SECRET}")
    # The placeholder after Bearer is masked too: every error line goes through the one redactor.
    assert status == 3 and f"HTTP {code}" in line and "--header 'Authorization: Bearer " in line
    assert seen and seen[0]["Authorization"] == f"Bearer {SECRET}"  # it was sent...
    assert SECRET not in line  # ...and never shown


def test_an_html_login_page_is_exit_3_not_a_parse_error(capsys: pytest.CaptureFixture[str]) -> None:
    page = b"<!DOCTYPE html><html><body><form action='/oauth2/sign_in'>Sign in</form></body></html>"
    with serve(_routes(Route(body=page, content_type="text/html; charset=utf-8"))) as url:
        status, line = _run(capsys, url)
    assert status == 3 and "HTML page" in line and "login proxy" in line


def test_too_many_samples_is_exit_3_naming_selector_and_since(capsys: pytest.CaptureFixture[str]) -> None:
    limit = _error(
        422, "execution", "query processing would load too many samples into memory in query execution"
    )
    with serve(_routes(limit)) as url:
        status, line = _run(capsys, url)
    assert status == 3 and "too many samples" in line and "--selector" in line and "--since" in line


def test_a_selector_prometheus_rejects_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    bad = _error(400, "bad_data", '1:37: parse error: unexpected "}" in label matching')
    with serve(_routes(bad)) as url:
        status, line = _run(capsys, url, "--selector", "{namespace=}")
    assert status == 2 and "rejected the query" in line and "--selector" in line


def test_a_selector_without_braces_is_a_usage_error_before_any_query(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, line = _run(capsys, closed_port_url(), "--selector", 'namespace="rerank"')
    assert status == 2 and "in braces" in line


def test_json_that_is_not_the_prometheus_api_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    # vLLM's own 404 when --prometheus points at vLLM instead of Prometheus.
    with serve({}) as url:
        status, line = _run(capsys, url)
    assert status == 3 and "HTTP 404" in line


def test_a_password_in_the_url_is_masked_in_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = closed_port_url().replace("http://", f"http://admin:{SECRET}@")
    status, line = _run(capsys, url)
    assert status == 3 and SECRET not in line and "admin:***@" in line


def test_an_answer_larger_than_the_cap_is_refused_not_read(capsys: pytest.CaptureFixture[str]) -> None:
    big = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}, "pad": "x" * 5000})
    with serve(_routes(Route(body=big.encode(), content_type="application/json"))) as url:
        client = PrometheusClient(url, max_bytes=1000)
        with pytest.raises(DoctorError) as err:
            client.instant("up", 1796234000)
    assert "more than" in err.value.message and err.value.status == 3


def test_since_and_start_together_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check", "--prometheus", closed_port_url(), "--since", "10m", "--start", "1796234000"])
    assert status == 2 and "--since and --start" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["yesterday", "2026-12-02T18:00:00"])
def test_a_time_that_is_not_unix_seconds_or_rfc3339_with_a_zone_is_refused(text: str) -> None:
    with pytest.raises(DoctorError) as err:
        window_from_args(None, text, "1796234600", 1796234600.0)
    assert err.value.status == 2


def test_rfc3339_and_unix_seconds_name_the_same_instant() -> None:
    a = window_from_args(None, "2026-12-02T18:00:00Z", "2026-12-02T18:10:00Z", 0.0)
    b = window_from_args(None, "1796234400", "1796235000", 0.0)
    assert (a.start_unix, a.end_unix) == (b.start_unix, b.end_unix)


@pytest.mark.parametrize("header", ["no colon here", ": value", "Two words: x"])
def test_a_header_that_is_not_name_colon_value_is_a_usage_error(header: str) -> None:
    with pytest.raises(DoctorError) as err:
        parse_headers([header])
    assert err.value.status == 2


def test_headers_keep_their_value_after_the_first_colon() -> None:
    assert parse_headers(["X-Scope-OrgID: tenant-1", "Authorization: Basic a:b"]) == {
        "X-Scope-OrgID": "tenant-1",
        "Authorization": "Basic a:b",
    }


def test_stress_with_prometheus_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, line = _run(capsys, closed_port_url(), "--stress", "10")
    assert status == 2 and "--stress" in line


def test_watch_with_a_fixed_window_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["watch", "--prometheus", closed_port_url(), *WINDOW, "--windows", "1"])
    assert status == 2 and "--since" in capsys.readouterr().err
