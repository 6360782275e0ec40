"""The one --url grammar and the one loopback check (diagnose/urls.py), and every command reading them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diagnose.cli import main
from diagnose.collect.run import is_this_host, url_port
from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.stress.config import parse_target
from diagnose.stress.local_server import Behaviour, LocalServer
from diagnose.urls import base_url, is_loopback_host, parse_server_url


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("localhost:8000", "http://localhost:8000"),
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("[::1]:8000", "http://[::1]:8000"),
        ("http://[::1]:8000/v1/rerank", "http://[::1]:8000"),
        ("HTTP://LocalHost:8000/", "http://localhost:8000"),
        ("https://h/prefix/v1/rerank", "https://h/prefix"),
        ("http://h:8000/metrics", "http://h:8000"),
        ("  http://user:pw@127.0.0.1:8000/v1  ", "http://127.0.0.1:8000"),
    ],
)
def test_urls_as_people_paste_them_normalise_to_one_base(given: str, base: str) -> None:
    assert base_url(given) == base


def test_an_endpoint_path_is_split_off_and_remembered() -> None:
    parsed = parse_server_url("localhost:8000/v2/rerank")
    assert (parsed.base, parsed.path, parsed.effective_port) == ("http://localhost:8000", "/v2/rerank", 8000)
    assert parse_server_url("https://h").effective_port == 443


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("", "empty"),
        ("ftp://h:8000", "not http(s)"),
        ("http://h:99999", "bad port"),
        ("http://h:eighty", "bad port"),
        ("localhost:", "no port"),
        ("::1:8000", "IPv6 address without brackets"),
        ("http://", "no host"),
        ("http://h :8000", "space"),
    ],
)
def test_a_bad_url_is_one_usage_line_that_names_the_fix(given: str, says: str) -> None:
    with pytest.raises(DoctorError) as err:
        parse_server_url(given)
    assert says in err.value.message
    assert err.value.status == ExitStatus.USAGE
    assert "\n" not in err.value.one_line() and "--url http://127.0.0.1:8000" in err.value.fix


def test_a_bad_url_with_a_password_is_shown_without_it() -> None:
    with pytest.raises(DoctorError) as err:
        parse_server_url("ftp://admin:hunter2@h:8000")
    assert "hunter2" not in err.value.one_line()


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST", "a.localhost", "::ffff:127.0.0.1"],
)
def test_loopback_hosts_are_loopback(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host", ["10.0.0.5", "192.168.1.1", "example.com", "0.0.0.0", "::", "localhost.evil.com"]
)
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback_host(host)


def test_collect_and_stress_read_the_same_grammar() -> None:
    # The bug of issue 9: collect took `localhost:8000`, stress refused it.
    target = parse_target("localhost:8000", None)
    assert (target.base_url, target.endpoint) == ("http://localhost:8000", "/v1/rerank")
    assert is_this_host("localhost:8000") and url_port("localhost:8000") == 8000
    assert not is_this_host("http://10.1.2.3:8000")


@pytest.mark.parametrize("command", ["collect", "check", "watch", "export", "stress"])
def test_every_command_refuses_a_bad_url_with_exit_2(command: str, tmp_path: Path, capsys) -> None:
    args = [command, "--url", "ftp://h:8000"]
    if command == "collect":
        args += ["--out", str(tmp_path / "b"), "--duration", "1s"]
    status = main(args)
    assert status == ExitStatus.USAGE
    assert "not http(s)" in capsys.readouterr().err


def test_check_with_stress_accepts_host_port_without_a_scheme(captures_dir: Path, capsys) -> None:
    # `check --url localhost:PORT --stress N` failed before: the load generator refused the bare form.
    folder = captures_dir / "s2_healthy_c8_d10_w100"
    start, end = (folder / "metrics_start.txt").read_text(), (folder / "metrics_end.txt").read_text()
    with LocalServer(Behaviour(metrics=[start, start, end], delay_s=0.005)) as server:
        port = server.url.rsplit(":", 1)[1]
        args = ["check", "--url", f"localhost:{port}", "--duration", "1s", "--stress", "10"]
        status = main(
            [*args, "--docs", "2", "--words", "5", "--json", "--no-gpu", "--quiet", "--fail-on", "critical"]
        )
        calls = server.seen.calls
    data = json.loads(capsys.readouterr().out)
    assert status in (ExitStatus.OK, ExitStatus.FINDINGS)
    assert calls > 5  # the load really went there
    assert data["evidence"]["client_mean_s"] is not None


def test_check_never_shows_a_password_given_in_the_url(capsys) -> None:
    status = main(["check", "--url", "http://admin:hunter2@127.0.0.1:9", "--duration", "1s", "--no-gpu"])
    err = capsys.readouterr().err
    assert status == ExitStatus.UNREACHABLE
    assert "http://127.0.0.1:9" in err and "hunter2" not in err
