"""Configuration: vllm:cache_config_info labels, /v1/models, and the command line (the flags the rules
propose changes to, and their current values)."""

from __future__ import annotations

from dataclasses import dataclass, field

from diagnose.derive import cache_config as facts
from diagnose.derive.flags import parse_flags
from diagnose.derive.section import Section, build, group, num
from diagnose.derive.versions import ServerVersion, parse_version
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
    vllm_version: str | None = num("GET /version (live, or the bundle's server.json)")
    max_model_len: int | None = num("/v1/models, else --max-model-len, else cache_config_info capacity")
    max_model_len_source: str | None = num("where max_model_len came from (diagnose.derive.cache_config)")
    block_size: int | None = num("vllm:cache_config_info{block_size}")
    enable_prefix_caching: bool | None = num("vllm:cache_config_info{enable_prefix_caching}")
    num_gpu_blocks: int | None = num("vllm:cache_config_info{num_gpu_blocks}")
    kv_cache_size_tokens: int | None = num("cache_config_info{kv_cache_size_tokens}, or blocks × block size")
    gpu_memory_utilization: float | None = num(
        "--gpu-memory-utilization, else cache_config_info (unset on 0.34: the KV cache sizes itself)"
    )
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


def derive_config(
    last: ParsedDump | None,
    command_line: str | None,
    models_max_model_len: int | None,
    no_metrics: str,
    version: str | None = None,
) -> Config:
    """`last` is the window's last /metrics dump (None when there is none: `no_metrics` says why);
    `models_max_model_len` is what GET /v1/models said; `version` what GET /version said."""
    why: dict[str, str] = {}
    values: dict[str, object] = {"vllm_version": version}
    if version is None:
        why["vllm_version"] = "the server's /version is unknown (not in the bundle's server.json)"
    labels = names.info_labels(last, "cache_config") if last is not None else None
    if labels is None:
        group(why, CACHE_FIELDS, no_metrics if last is None else "no vllm:cache_config_info in /metrics")
    else:
        block_size = facts.label_int(labels.get("block_size"))
        blocks = facts.label_int(labels.get("num_gpu_blocks"))
        tokens = facts.label_int(labels.get("kv_cache_size_tokens"))
        if tokens is None and blocks and block_size:
            tokens = blocks * block_size
        values.update(
            block_size=block_size,
            enable_prefix_caching=facts.label_bool(labels.get("enable_prefix_caching")),
            num_gpu_blocks=blocks,
            kv_cache_size_tokens=tokens,
        )

    flags: dict[str, str] = {}
    if not command_line:
        group(
            why, FLAG_FIELDS, "the vLLM command line is unknown (run on the serving host, or add flags.txt)"
        )
    else:
        flags = parse_flags(command_line)
        values.update(flags_known=True, flags=flags)
        for flag, name in _INT_FLAGS.items():
            values[name] = facts.label_int(flags.get(flag))
        # Defaults that do not depend on the hardware: one API server, one data-parallel rank.
        if values["flag_api_server_count"] is None:
            values["flag_api_server_count"] = 1
        if values["flag_data_parallel_size"] is None:
            values["flag_data_parallel_size"] = 1
        values["flag_gpu_memory_utilization"] = facts.label_float(flags.get("--gpu-memory-utilization"))
        if "--no-enable-prefix-caching" in flags:
            values["flag_enable_prefix_caching"] = False
        elif "--enable-prefix-caching" in flags:
            values["flag_enable_prefix_caching"] = (
                facts.label_bool(flags["--enable-prefix-caching"]) is not False
            )
        values["flag_disable_log_stats"] = "--disable-log-stats" in flags
        group(why, FLAG_FIELDS, "not set on the command line (vLLM's default for this hardware applies)")

    length = facts.max_model_len(models_max_model_len, flags, labels)
    values.update(max_model_len=length.tokens, max_model_len_source=length.source)
    if length.why:
        group(why, ["max_model_len", "max_model_len_source"], length.why)
    memory = facts.gpu_memory_utilization(flags, labels)
    values["gpu_memory_utilization"] = memory.fraction
    if memory.fraction is None:
        why["gpu_memory_utilization"] = {
            "unset": "unset: vLLM 0.34+ sizes the KV cache from measured memory (cache_config_info 'None')",
        }.get(memory.source, "neither the command line nor cache_config_info gives it")
    return build(Config, values, why)


def server_version(config: Config) -> ServerVersion | None:
    """The server's version as a comparable value (None when unknown or not a version)."""
    return parse_version(config.vllm_version)
