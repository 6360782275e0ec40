"""Secrets never reach a bundle or a report: each form a vLLM command line can carry one in."""

from __future__ import annotations

import pytest

from diagnose.redact import redact_command_line


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        ("vllm serve m --api-key sk-123 --port 8000", "vllm serve m --api-key *** --port 8000"),
        ("vllm serve m --api-key=sk-123 --port 8000", "vllm serve m --api-key=*** --port 8000"),
        ("vllm serve m --hf-token hf_abc", "vllm serve m --hf-token ***"),
        ("vllm serve m --hf-token=hf_abc", "vllm serve m --hf-token=***"),
        ('vllm serve m --api-key "two words"', 'vllm serve m --api-key "***"'),
        ("HF_TOKEN=hf_abc vllm serve m", "HF_TOKEN=*** vllm serve m"),
        (
            "env VLLM_API_KEY=sk-1 OPENAI_API_KEY=sk-2 vllm serve m",
            "env VLLM_API_KEY=*** OPENAI_API_KEY=*** vllm serve m",
        ),
        ("HUGGING_FACE_HUB_TOKEN=x python -m vllm", "HUGGING_FACE_HUB_TOKEN=*** python -m vllm"),
        ("curl -H 'Authorization: Bearer sk-123' http://x", "curl -H 'Authorization: Bearer ***' http://x"),
        ("curl -H authorization:Basic dXNlcjpwYXNz http://x", "curl -H authorization:Basic *** http://x"),
        ("proxy --header Bearer abc.def", "proxy --header Bearer ***"),
        ("--model https://user:pa55@hub.example/m", "--model https://user:***@hub.example/m"),
        ("--model https://ghp_token@hub.example/m", "--model https://***@hub.example/m"),
        ("--url http://h/m?token=abc&rev=main", "--url http://h/m?token=***&rev=main"),
        ("--url http://h/m?rev=main&api_key=abc", "--url http://h/m?rev=main&api_key=***"),
        (
            """--kv-transfer-config '{"api_key": "sk-9", "port": 1}'""",
            """--kv-transfer-config '{"api_key": "***", "port": 1}'""",
        ),
    ],
)
def test_secret_in_a_command_string_is_replaced(cmd: str, expected: str) -> None:
    assert redact_command_line(cmd) == expected


@pytest.mark.parametrize(
    "cmd",
    [
        "vllm serve m --max-num-batched-tokens 8192 --tokenizer tok --max-model-len 2048",
        "python -m vllm.entrypoints.openai.api_server --model /m --port 8000 --ssl-keyfile /k.pem",
        "MAX_TOKENS=5 vllm serve m",
        "VLLM::EngineCore",
    ],
)
def test_command_without_secrets_is_unchanged(cmd: str) -> None:
    assert redact_command_line(cmd) == cmd


def test_hf_token_without_value_keeps_the_next_flag() -> None:
    # vLLM's --hf-token may be given bare (use the stored login); the next flag is not a secret.
    assert redact_command_line("vllm serve m --hf-token --port 8000") == "vllm serve m --hf-token --port 8000"
    assert redact_command_line(["vllm", "serve", "m", "--hf-token", "--port", "8000"]) == (
        "vllm serve m --hf-token --port 8000"
    )


def test_argv_list_masks_the_argument_after_a_secret_flag_whatever_it_holds() -> None:
    argv = ["python3", "-m", "vllm.entrypoints.openai.api_server", "--api-key", "a b;c", "--port", "8000"]
    assert (
        redact_command_line(argv) == "python3 -m vllm.entrypoints.openai.api_server --api-key *** --port 8000"
    )


def test_argv_list_masks_inline_values_headers_and_urls() -> None:
    argv = ["vllm", "serve", "--api-key=sk-1", "-H", "Authorization: Bearer sk-2", "http://u:p@h/x?token=t"]
    out = redact_command_line(argv)
    assert out == "vllm serve --api-key=*** -H Authorization: Bearer *** http://u:***@h/x?token=***"
    for secret in ("sk-1", "sk-2", ":p@", "=t"):
        assert secret not in out


def test_every_secret_is_gone_from_a_long_real_looking_command() -> None:
    cmd = (
        "HF_TOKEN=hf_SECRET1 /venv/bin/python3 -m vllm.entrypoints.openai.api_server --model /m "
        "--api-key SECRET2 --hf-token=SECRET3 --port 8000"
    )
    out = redact_command_line(cmd)
    assert "SECRET" not in out
    assert out.count("***") == 3


# --- the one redactor on every form and every output path (issue 12) ---------------------------------

from diagnose.redact import redact_headers, redact_text, redact_url  # noqa: E402


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        ("vllm serve m --api-key k1 k2 k3 --port 8000", "vllm serve m --api-key *** *** *** --port 8000"),
        ("vllm serve m --api-key 'a b' k2", "vllm serve m --api-key '***' ***"),
        ("vllm serve m --api_key k1 k2", "vllm serve m --api_key *** ***"),
    ],
)
def test_every_key_after_one_api_key_is_replaced(cmd: str, expected: str) -> None:
    assert redact_command_line(cmd) == expected


def test_every_key_after_one_api_key_is_replaced_in_argv_form() -> None:
    argv = ["vllm", "serve", "m", "--api-key", "k1", "k2", "--port", "8000"]
    assert redact_command_line(argv) == "vllm serve m --api-key *** *** --port 8000"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("curl -H 'X-Api-Key: abc123' http://h", "abc123"),
        ("x-goog-api-key:zz9", "zz9"),
        ("token: tk-77 was refused", "tk-77"),
        ("api_key=sk-5 in the config", "sk-5"),
        ("password = hunter2", "hunter2"),
        ("X-Auth-Token: t-1", "t-1"),
        ("GET http://admin:pw9@h:8000/metrics?access_token=q1 failed", "pw9"),
        ("GET http://admin:pw9@h:8000/metrics?access_token=q1 failed", "q1"),
    ],
)
def test_free_text_loses_header_and_key_value_secrets(text: str, secret: str) -> None:
    assert secret not in redact_text(text)


def test_free_text_keeps_what_only_looks_like_a_secret() -> None:
    text = "max_tokens=5 --max-num-batched-tokens 8192 tokenizer: qwen http://h:8000/metrics"
    assert redact_text(text) == text


def test_url_keeps_the_user_and_host_and_loses_password_and_tokens() -> None:
    assert redact_url("http://admin:pw@h:8000/x?token=t&a=1") == "http://admin:***@h:8000/x?token=***&a=1"


def test_headers_named_as_secrets_are_masked() -> None:
    out = redact_headers(
        {"Authorization": "Bearer x", "X-Api-Key": "k", "X-Auth-Token": "t", "Accept": "text/plain"}
    )
    assert out == {"Authorization": "***", "X-Api-Key": "***", "X-Auth-Token": "***", "Accept": "text/plain"}


def test_bundle_files_hold_no_secret_from_url_flags_or_process_command_lines(tmp_path) -> None:
    from diagnose.bundle import BundleWriter, read_bundle
    from diagnose.readings import MetricsDump, ProcessSample, ServerInfo

    flags = "vllm serve m --api-key k-LEAK1 k-LEAK2 --hf-token hf_LEAK3 --port 8000"
    with BundleWriter(tmp_path / "b", url="http://u:pw-LEAK4@127.0.0.1:8000/?token=t-LEAK5") as writer:
        writer.add_dump(MetricsDump(1.0, "vllm:num_requests_running 0\n"))
        writer.add_processes([ProcessSample(1.0, 7, 1, "python3", 10.0, 100.0, flags)])
        writer.set_server(ServerInfo(url="http://u:pw-LEAK4@127.0.0.1:8000", flags=flags))
    for path in (tmp_path / "b").iterdir():
        assert "LEAK" not in path.read_text(), path.name
    bundle = read_bundle(tmp_path / "b")
    assert "--api-key *** ***" in (bundle.server.flags or "")


def test_the_exporter_url_label_carries_no_credentials() -> None:
    from diagnose.collect.vllm import base_url
    from diagnose.exporter.collector import families
    from diagnose.exporter.state import ExporterState

    url = base_url("http://admin:pw-LEAK@127.0.0.1:8000/metrics?token=t-LEAK")
    assert url == "http://127.0.0.1:8000"
    text = repr([m.samples for m in families(ExporterState().view(), now=0.0, url=url)])
    assert "LEAK" not in text and "127.0.0.1:8000" in text


def test_vllm_source_keeps_no_url_credentials_in_what_it_shows() -> None:
    from http_servers import Route, serve

    from diagnose.collect.vllm import VllmSource

    with serve({"/metrics": Route(status=401, body=b"{}")}) as url:
        source = VllmSource(url.replace("http://", "http://admin:pw-LEAK@") + "/metrics?token=t-LEAK")
        issue = source.scrape()
    assert "LEAK" not in source.url
    assert "LEAK" not in repr(issue)
