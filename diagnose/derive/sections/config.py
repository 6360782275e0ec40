"""Configuration: vllm:cache_config_info labels, /v1/models, and the command line (the flags the rules
propose changes to, and their current values)."""

from __future__ import annotations

from dataclasses import dataclass, field

from diagnose.derive.flags import parse_flags
from diagnose.derive.section import Section, build, group, num
from diagnose.metrics import names
from diagnose.metrics.exposition import ParsedDump

CACHE_FIELDS = (
    "block_size",
    "enable_prefix_caching",
    "num_gpu_blocks",
    "kv_cache_size_tokens",
    "gpu_memory_utilization",
)
FLAG_FIELDS = (
    "flag_api_server_count",
    "flag_data_parallel_size",
    "flag_max_num_seqs",
    "flag_max_num_batched_tokens",
    "flag_max_model_len",
    "flag_gpu_memory_utilization",
    "flag_enable_prefix_caching",
    "flag_disable_log_stats",
)
_INT_FLAGS = {
    "--api-server-count": "flag_api_server_count",
    "--data-parallel-size": "flag_data_parallel_size",
    "--max-num-seqs": "flag_max_num_seqs",
    "--max-num-batched-tokens": "flag_max_num_batched_tokens",
    "--max-model-len": "flag_max_model_len",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Config(Section):
    max_model_len: int | None = num("GET /v1/models data[].max_model_len, else --max-model-len")
    block_size: int | None = num("vllm:cache_config_info{block_size}")
    enable_prefix_caching: bool | None = num("vllm:cache_config_info{enable_prefix_caching}")
    num_gpu_blocks: int | None = num("vllm:cache_config_info{num_gpu_blocks}")
    kv_cache_size_tokens: int | None = num("cache_config_info{kv_cache_size_tokens}, or blocks × block size")
    gpu_memory_utilization: float | None = num("vllm:cache_config_info{gpu_memory_utilization}")
    flags_known: bool = False  # the command line was available
    flags: dict[str, str] = field(default_factory=dict)  # "--flag" -> value ("true" for a bare switch)
    flag_api_server_count: int | None = num(
        "--api-server-count (1 when the flags are known and do not set it)"
    )
    flag_data_parallel_size: int | None = num("--data-parallel-size (1 when known and unset)")
    flag_max_num_seqs: int | None = num("--max-num-seqs")
    flag_max_num_batched_tokens: int | None = num("--max-num-batched-tokens")
    flag_max_model_len: int | None = num("--max-model-len")
    flag_gpu_memory_utilization: float | None = num("--gpu-memory-utilization")
    flag_enable_prefix_caching: bool | None = num("--[no-]enable-prefix-caching (only when given)")
    flag_disable_log_stats: bool | None = num("--disable-log-stats given")


def _bool(text: str | None) -> bool | None:
    if text is None:
        return None
    return {"true": True, "false": False}.get(text.strip().lower())


def _int(text: str | None) -> int | None:
    try:
        return int(float(text)) if text not in (None, "", "None") else None  # type: ignore[arg-type]
    except (ValueError, OverflowError):
        return None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "", "None") else None  # type: ignore[arg-type]
    except ValueError:
        return None


def derive_config(
    last: ParsedDump | None, command_line: str | None, models_max_model_len: int | None, no_metrics: str
) -> Config:
    """`last` is the window's last /metrics dump (None when there is none: `no_metrics` says why);
    `models_max_model_len` is what GET /v1/models said."""
    why: dict[str, str] = {}
    values: dict[str, object] = {}
    labels = names.info_labels(last, "cache_config") if last is not None else None
    if labels is None:
        group(why, CACHE_FIELDS, no_metrics if last is None else "no vllm:cache_config_info in /metrics")
    else:
        block_size, blocks = _int(labels.get("block_size")), _int(labels.get("num_gpu_blocks"))
        tokens = _int(labels.get("kv_cache_size_tokens"))
        if tokens is None and blocks and block_size:
            tokens = blocks * block_size
        values.update(
            block_size=block_size,
            enable_prefix_caching=_bool(labels.get("enable_prefix_caching")),
            num_gpu_blocks=blocks,
            gpu_memory_utilization=_float(labels.get("gpu_memory_utilization")),
            kv_cache_size_tokens=tokens,
        )

    if not command_line:
        group(
            why, FLAG_FIELDS, "the vLLM command line is unknown (run on the serving host, or add flags.txt)"
        )
    else:
        flags = parse_flags(command_line)
        values.update(flags_known=True, flags=flags)
        for flag, name in _INT_FLAGS.items():
            values[name] = _int(flags.get(flag))
        # Defaults that do not depend on the hardware: one API server, one data-parallel rank.
        if values["flag_api_server_count"] is None:
            values["flag_api_server_count"] = 1
        if values["flag_data_parallel_size"] is None:
            values["flag_data_parallel_size"] = 1
        values["flag_gpu_memory_utilization"] = _float(flags.get("--gpu-memory-utilization"))
        if "--no-enable-prefix-caching" in flags:
            values["flag_enable_prefix_caching"] = False
        elif "--enable-prefix-caching" in flags:
            values["flag_enable_prefix_caching"] = _bool(flags["--enable-prefix-caching"]) is not False
        values["flag_disable_log_stats"] = "--disable-log-stats" in flags
        group(why, FLAG_FIELDS, "not set on the command line (vLLM's default for this hardware applies)")

    max_model_len = models_max_model_len or values.get("flag_max_model_len")
    values["max_model_len"] = max_model_len
    if max_model_len is None:
        why["max_model_len"] = "neither /v1/models nor the command line gave max_model_len"
    return build(Config, values, why)
