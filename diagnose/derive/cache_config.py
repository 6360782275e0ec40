"""The server's configuration as numbers, each with where it came from. Pure.

`vllm:cache_config_info` carries `CacheConfig.metrics_info()`: every field `str()`'d, so an unset field reads
"None" (vLLM 0.34 leaves `gpu_memory_utilization` unset by default: the extensible KV cache sizes itself from
measured memory). The label readers here turn "None", "", "nan" and non-numbers into None: unknown, never 0
and never a number made up from the text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_UNSET = frozenset({"", "none", "null", "nan", "-nan", "inf", "-inf", "+inf"})


def label_float(text: str | None) -> float | None:
    """A numeric label value ("0.92", "133.6015625"); None for "None", "", NaN, infinities, non-numbers."""
    if text is None or text.strip().lower() in _UNSET:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def label_int(text: str | None) -> int | None:
    """An integer label value ("16", "68404", "4096.0"); None when unset or not a whole number."""
    value = label_float(text)
    if value is None or not value.is_integer():
        return None
    return int(value)


def label_bool(text: str | None) -> bool | None:
    """True/False from "True"/"False" as str(bool) writes them; None for "None" or anything else."""
    if text is None:
        return None
    return {"true": True, "false": False}.get(text.strip().lower())


@dataclass(frozen=True, slots=True)
class MaxModelLen:
    """max_model_len in tokens and its source; `why` says why it is unknown when `tokens` is None."""

    tokens: int | None
    source: str | None  # "/v1/models", "command line", or "cache_config_info: ..." (how it was derived)
    why: str | None = None


SOURCE_MODELS = "/v1/models"
SOURCE_FLAGS = "command line"
SOURCE_CAPACITY = "cache_config_info: kv_cache_size_tokens ÷ kv_cache_max_concurrency"
SOURCE_BLOCKS = "cache_config_info: num_gpu_blocks × block_size ÷ kv_cache_max_concurrency (a block multiple)"


def max_model_len(
    models_max_model_len: int | None,
    flags: dict[str, str],
    cache_config: dict[str, str] | None,
) -> MaxModelLen:
    """max_model_len from /v1/models (exact), else `--max-model-len`, else derived from cache_config_info.

    vLLM (v1/core/kv_cache_utils.py, 0.26 to 0.34) stores `kv_cache_max_concurrency` = the KV cache's blocks
    ÷ the blocks one max_model_len request needs, and `kv_cache_size_tokens` = int(concurrency ×
    max_model_len). So kv_cache_size_tokens ÷ concurrency is max_model_len less under one token (the int()),
    rounded up here. num_gpu_blocks × block_size ÷ concurrency is max_model_len rounded UP to a whole block
    (and is wrong for hybrid models, whose requests take blocks in several groups): the last resort.
    """
    if models_max_model_len:
        return MaxModelLen(models_max_model_len, SOURCE_MODELS)
    from_flag = label_int(flags.get("--max-model-len"))
    if from_flag:
        return MaxModelLen(from_flag, SOURCE_FLAGS)
    labels = cache_config or {}
    concurrency = label_float(labels.get("kv_cache_max_concurrency"))
    size_tokens = label_int(labels.get("kv_cache_size_tokens"))
    if concurrency and concurrency > 0 and size_tokens:
        # The int() in vLLM drops under one token; 1e-6 keeps float noise from adding one.
        return MaxModelLen(math.ceil(size_tokens / concurrency - 1e-6), SOURCE_CAPACITY)
    blocks, block_size = label_int(labels.get("num_gpu_blocks")), label_int(labels.get("block_size"))
    if concurrency and concurrency > 0 and blocks and block_size:
        return MaxModelLen(math.ceil(blocks * block_size / concurrency - 1e-6), SOURCE_BLOCKS)
    missing = (
        "no vllm:cache_config_info"
        if cache_config is None
        else "cache_config_info has no kv_cache_max_concurrency"
    )
    return MaxModelLen(
        None,
        None,
        f"neither /v1/models nor the command line gave max_model_len, and {missing} (vLLM before 0.26)",
    )


@dataclass(frozen=True, slots=True)
class GpuMemoryUtilization:
    """--gpu-memory-utilization as the server runs it: a fraction of GPU memory, or unset."""

    fraction: float | None  # None: unset (0.34+: the extensible KV cache sizes itself) or unknown
    source: str  # "command line", "cache_config_info", "unset", or "unknown"
    extensible_kv_cache: bool | None = None  # cache_config_info enable_extensible_kv_cache (0.34+)


def gpu_memory_utilization(
    flags: dict[str, str], cache_config: dict[str, str] | None
) -> GpuMemoryUtilization:
    """What memory advice may compare against: a number only where the server really has one."""
    labels = cache_config or {}
    extensible = label_bool(labels.get("enable_extensible_kv_cache"))
    from_flag = label_float(flags.get("--gpu-memory-utilization"))
    if from_flag is not None:
        return GpuMemoryUtilization(from_flag, "command line", extensible)
    from_labels = label_float(labels.get("gpu_memory_utilization"))
    if from_labels is not None:
        return GpuMemoryUtilization(from_labels, "cache_config_info", extensible)
    if "gpu_memory_utilization" in labels:
        # The label exists and says "None": vLLM 0.34 left it unset on purpose; not a number to advise on.
        return GpuMemoryUtilization(None, "unset", extensible)
    return GpuMemoryUtilization(None, "unknown", extensible)
