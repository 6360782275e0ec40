"""max_model_len with its source, cache_config_info labels that say "None", and version-aware advice.

Real inputs: the lab's vLLM 0.32 recording (--max-model-len 2048), the H200 0.26 captures (8192), the 0.7-era
fixture (no capacity labels yet).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from diagnose.bundle import split_dumps
from diagnose.derive.cache_config import (
    SOURCE_BLOCKS,
    SOURCE_CAPACITY,
    SOURCE_FLAGS,
    SOURCE_MODELS,
    gpu_memory_utilization,
    label_bool,
    label_float,
    label_int,
    max_model_len,
)
from diagnose.derive.versions import RENDERER_WORKERS_FLAG, parse_version, renderer_advice
from diagnose.metrics import names
from diagnose.metrics.exposition import parse_text

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _cache_config(path: Path) -> dict[str, str]:
    last = split_dumps(path.read_text(errors="replace"))[-1]
    labels = names.info_labels(parse_text(last.text, last.t_unix), "cache_config")
    assert labels is not None
    return labels


@pytest.mark.parametrize("text", ["None", "", "nan", "NaN", "inf", "-inf", "auto", "[]", None])
def test_unset_or_non_numeric_label_values_are_unknown_not_numbers(text: str | None) -> None:
    assert label_float(text) is None
    assert label_int(text) is None


def test_numeric_label_values_are_read() -> None:
    assert label_float("0.92") == 0.92
    assert label_float("133.6015625") == 133.6015625
    assert label_int("68404") == 68404
    assert label_int("4096.0") == 4096
    assert label_int("1.5") is None  # not a whole number: no count made up by truncating
    assert (label_bool("True"), label_bool("False"), label_bool("None")) == (True, False, None)


def test_max_model_len_prefers_v1_models_then_the_command_line() -> None:
    labels = _cache_config(FIXTURES / "vllm-0.32-cpu-lab" / "metrics.prom")
    assert max_model_len(4096, {"--max-model-len": "1024"}, labels).source == SOURCE_MODELS
    from_flags = max_model_len(None, {"--max-model-len": "1024"}, labels)
    assert (from_flags.tokens, from_flags.source) == (1024, SOURCE_FLAGS)


def test_max_model_len_derived_from_the_lab_032_cache_config_matches_its_flag() -> None:
    labels = _cache_config(FIXTURES / "vllm-0.32-cpu-lab" / "metrics.prom")
    derived = max_model_len(None, {}, labels)
    assert (derived.tokens, derived.source) == (2048, SOURCE_CAPACITY)  # flags.txt: --max-model-len 2048
    by_blocks = max_model_len(None, {}, {k: v for k, v in labels.items() if k != "kv_cache_size_tokens"})
    assert (by_blocks.tokens, by_blocks.source) == (2048, SOURCE_BLOCKS)  # 2048 is a multiple of 128


def test_max_model_len_derived_from_the_h200_026_captures_matches_their_flag(captures_dir: Path) -> None:
    for scenario in ("s2_healthy_c8_d10_w100", "s5_cpu_bound_tiny_c32_d500_w3"):
        labels = _cache_config(captures_dir / scenario / "metrics_end.txt")
        derived = max_model_len(None, {}, labels)
        assert (derived.tokens, derived.source) == (8192, SOURCE_CAPACITY), scenario  # --max-model-len 8192


def test_the_block_derivation_rounds_up_to_a_whole_block() -> None:
    # 1000 tokens at block size 16 need 63 blocks; a 6300-block cache holds 100 such requests.
    labels = {"num_gpu_blocks": "6300", "block_size": "16", "kv_cache_max_concurrency": "100.0"}
    assert max_model_len(None, {}, labels).tokens == 1008  # 63 x 16: an upper bound, said by its source
    labels["kv_cache_size_tokens"] = "100000"  # int(100.0 x 1000)
    assert max_model_len(None, {}, labels).tokens == 1000


def test_max_model_len_is_unknown_with_a_reason_before_capacity_labels() -> None:
    labels = _cache_config(FIXTURES / "vllm-0.7-era" / "metrics.prom")
    unknown = max_model_len(None, {}, labels)
    assert unknown.tokens is None and unknown.source is None
    assert unknown.why is not None and "kv_cache_max_concurrency" in unknown.why
    assert "no vllm:cache_config_info" in (max_model_len(None, {}, None).why or "")
    none_labels = {"kv_cache_max_concurrency": "None", "kv_cache_size_tokens": "None"}
    assert max_model_len(None, {}, none_labels).tokens is None


def test_gpu_memory_utilization_unset_on_034_is_not_a_number() -> None:
    unset = gpu_memory_utilization(
        {}, {"gpu_memory_utilization": "None", "enable_extensible_kv_cache": "True"}
    )
    assert (unset.fraction, unset.source, unset.extensible_kv_cache) == (None, "unset", True)
    lab = gpu_memory_utilization({}, _cache_config(FIXTURES / "vllm-0.32-cpu-lab" / "metrics.prom"))
    assert (lab.fraction, lab.source) == (0.92, "cache_config_info")
    flag = gpu_memory_utilization({"--gpu-memory-utilization": "0.85"}, {"gpu_memory_utilization": "None"})
    assert (flag.fraction, flag.source) == (0.85, "command line")
    assert gpu_memory_utilization({}, None).source == "unknown"


@pytest.mark.parametrize(
    ("text", "release"),
    [
        ("0.34.0", "0.34.0"),
        ("v0.26.0", "0.26.0"),
        ("0.32.0+cpu", "0.32.0"),
        ("0.27.0rc1.dev5+g1234", "0.27.0"),
    ],
)
def test_versions_parse_and_compare_by_release(text: str, release: str) -> None:
    parsed = parse_version(text)
    assert parsed is not None and str(parsed.release) == release and parsed.text == text


def test_a_version_that_is_not_one_is_unknown() -> None:
    assert parse_version(None) is None
    assert parse_version("") is None
    assert parse_version("unknown") is None
    assert parse_version("None") is None


def test_version_ordering_is_numeric_not_textual() -> None:
    old, new = parse_version("0.9.2"), parse_version("0.27.0")
    assert old is not None and new is not None and old.release < new.release


@pytest.mark.parametrize("text", ["0.20.0", "0.26.0", "0.26.1"])
def test_versions_020_to_026_are_told_to_upgrade_and_set_the_renderer_workers(text: str) -> None:
    advice = renderer_advice(parse_version(text), {}, proposed_workers=4)
    assert advice is not None
    assert (advice.upgrade_to, advice.flag, advice.current, advice.proposed) == (
        "0.27",
        RENDERER_WORKERS_FLAG,
        1,
        4,
    )
    assert "#43444" in advice.why and "#49153" in advice.why and text in advice.why


@pytest.mark.parametrize("text", ["0.27.0", "0.34.0", "0.32.0+cpu"])
def test_versions_from_027_are_told_only_the_flag(text: str) -> None:
    advice = renderer_advice(parse_version(text), {}, proposed_workers=4)
    assert advice is not None and advice.upgrade_to is None and (advice.current, advice.proposed) == (1, 4)
    assert renderer_advice(parse_version(text), {RENDERER_WORKERS_FLAG: "4"}, proposed_workers=4) is None
    partial = renderer_advice(parse_version(text), {RENDERER_WORKERS_FLAG: "2"}, proposed_workers=4)
    assert partial is not None and partial.current == 2


def test_no_renderer_advice_before_020_or_without_a_version() -> None:
    assert renderer_advice(parse_version("0.19.1"), {}, proposed_workers=4) is None
    assert renderer_advice(None, {}, proposed_workers=4) is None


def test_the_server_version_comes_from_server_info_and_says_where() -> None:
    from diagnose.derive.versions import server_version
    from diagnose.readings import ServerInfo

    live = server_version(ServerInfo(url="http://127.0.0.1:8000", version="0.34.0"))
    assert live is not None and live.source == "/version" and str(live.release) == "0.34.0"
    saved = server_version(ServerInfo(version="0.26.0"))
    assert saved is not None and saved.source == "server.json"
    assert server_version(ServerInfo()) is None
    assert server_version(ServerInfo(version="None")) is None  # collect writes str(None) when /version fails
