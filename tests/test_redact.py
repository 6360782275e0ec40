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
