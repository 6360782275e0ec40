"""The numbers the rules judge by: defaults as data, overridable from a TOML file.

One table per rule id, one number per key. A TOML file overrides any subset:

    [cpu-api-server]
    busy_warning_pct = 80

Unknown tables or keys are refused with one line naming the key, so a typo never silently keeps the
default. Units are in the key names, as everywhere else.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from diagnose.errors import DoctorError

DEFAULTS: dict[str, dict[str, float]] = {
    "gpu": {
        # NVML "utilization.gpu" is the share of time a kernel was running, not SM occupancy. Measured on
        # an H200 (tests/fixtures/gpu-h200-4b-*): a GPU-bound 4B-shaped reranker at its 700 W cap read
        # 88.5-90.9 % busy, so the field guide's "> 90 %" would miss it by a point; 85 % with queue time
        # growing is a GPU the engine waits on.
        "busy_warning_pct": 85.0,
        "busy_critical_pct": 95.0,
        # Below this the GPU is not the limit, whatever the latency (DESIGN §1: "< 30 % with a hot CPU").
        "idle_below_pct": 30.0,
        # Queue time counts as growing when requests wait at least this share of their inference time.
        "queue_over_inference_min": 0.5,
    },
    "cpu-api-server": {
        # Percent of ONE core: the API server is one Python process with one event loop.
        "busy_warning_pct": 85.0,
        # HTTP mean over (queue + inference) mean: how much of the latency the frontend adds.
        # Unloaded reranking reads 1-2; the H200 captures read 6 (s2) to 150 (s3).
        "frontend_ratio_warning": 3.0,
        "frontend_ratio_critical": 10.0,
    },
    "cpu-engine-core": {
        "busy_warning_pct": 85.0,
        "busy_critical_pct": 95.0,
        # Requests waiting (gauge max): the engine core is the limit only if work queues behind it.
        "waiting_warning": 10.0,
        "waiting_critical": 100.0,
        # The API servers are "not hot" below this (else cpu-api-server explains the latency first).
        "api_server_hot_pct": 85.0,
    },
    "cpu-host": {
        # Percent of ALL cores (the host row of the process samples).
        "busy_warning_pct": 85.0,
        "busy_critical_pct": 95.0,
    },
    # The model's compute on a CPU build: "requests wait" is the queueing table's definition and "the host
    # is saturated" the cpu-host table's, read from there so each line is defined once.
    "cpu-model": {},
    "readings-disagree": {
        # A GPU busy half the time while vLLM finished nothing is someone else's work (vLLM idles at ~0 %
        # between requests; its start-up profiling is over before the server answers /health).
        "gpu_busy_pct": 50.0,
    },
    "queueing": {
        # Mean time in vLLM's queue (vllm:request_queue_time_seconds): 0.2 s is the P95 queue alert's
        # warning level; a queue at least half the inference time is more than a burst being absorbed.
        "queue_warning_s": 0.2,
        "queue_critical_s": 1.0,
        "queue_over_inference_min": 0.5,
    },
    "io": {
        "busy_warning_pct": 80.0,
        "busy_critical_pct": 95.0,
    },
    "network-connections": {
        # TIME_WAIT sockets on the serving port; Linux keeps each for 60 s and the default ephemeral
        # port range is 28,232 ports, so ~10,000 is a third of the range.
        "time_wait_warning": 1000.0,
        "time_wait_critical": 10000.0,
    },
    "network-latency": {
        # Client-side mean latency over the server's HTTP mean.
        "client_over_server_warning": 1.5,
        "client_over_server_critical": 3.0,
        # Below this absolute gap the difference is not worth chasing.
        "min_gap_s": 0.05,
    },
    "max-model-len": {
        # Proposed value: next power of two above max(p99 x headroom, longest bucket seen).
        "headroom": 1.25,
        # Never propose less: a real reranker prompt (template + query + document) rarely fits below it.
        "min_proposal_tokens": 512.0,
        # --max-model-len this many times the p99 prompt is worth a note (never more: it costs memory
        # and startup checks, not latency).
        "waste_info_ratio": 4.0,
    },
    "generate-endpoint": {
        # Any generated token means a generate endpoint was used; this many per engine request is critical.
        "tokens_per_request_critical": 1.0,
    },
    "request-pattern": {
        "few_docs_per_call": 4.0,
        "tiny_pair_tokens": 16.0,
    },
    "prefix-cache": {
        # Above this the hit ratio is explained (repeats); below `low_hit_ratio` the misses are.
        "high_hit_ratio": 0.5,
        "low_hit_ratio": 0.05,
    },
    "cache-thrash": {
        # Measured on the CPU lab (docs/cache-thrash.md): a KV cache of 2,560 tokens for ~1,380-token
        # pairs (1.9 pairs) ran one request per step with requests waiting for capacity; 1 GiB (190
        # pairs) packed full steps. Below 4 pairs the cache, not the token budget, caps the batch.
        "kv_fits_pairs_warning": 4.0,
        # H200, once (DESIGN §2): prefix-cache queries grew at 2.0 x prompt tokens under KV starvation,
        # 1.0 in every other run -- and 1.0 in the lab's starved runs too.
        "queries_per_prompt_token_warning": 1.5,
        "kv_usage_high_ratio": 0.9,
        "queue_over_inference": 3.0,
        "tail_p95_over_mean": 3.0,
    },
    "failures": {
        # Share of calls (or engine requests) that failed.
        "warning_ratio": 0.001,
        "critical_ratio": 0.05,
    },
}


class Thresholds:
    """Read-only view over the numbers: `thresholds.of("gpu")["busy_warning_pct"]`."""

    def __init__(self, tables: Mapping[str, Mapping[str, float]] | None = None):
        source = tables if tables is not None else DEFAULTS
        self._tables = {rule: MappingProxyType(dict(keys)) for rule, keys in source.items()}

    def of(self, rule_id: str) -> Mapping[str, float]:
        return self._tables.get(rule_id, MappingProxyType({}))

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {rule: dict(keys) for rule, keys in self._tables.items()}


def merge(overrides: Mapping[str, object], origin: str = "thresholds") -> Thresholds:
    """Defaults with `overrides` applied; a DoctorError naming the first unknown or non-numeric key."""
    tables = {rule: dict(keys) for rule, keys in DEFAULTS.items()}
    for rule, keys in overrides.items():
        if rule not in tables:
            raise DoctorError(
                f"unknown rule table [{rule}] in {origin}", f"use one of: {', '.join(sorted(tables))}"
            )
        if not isinstance(keys, Mapping):
            raise DoctorError(
                f"[{rule}] in {origin} must be a table of numbers", f"write `[{rule}]` then `key = 1.0`"
            )
        for key, value in keys.items():
            if key not in tables[rule]:
                raise DoctorError(
                    f"unknown threshold '{rule}.{key}' in {origin}",
                    f"keys of [{rule}] are: {', '.join(sorted(tables[rule]))}",
                )
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise DoctorError(
                    f"threshold '{rule}.{key}' in {origin} must be a number, not {value!r}",
                    f"write `{key} = {tables[rule][key]}`",
                )
            tables[rule][key] = float(value)
    return Thresholds(tables)


def load(path: str | Path | None) -> Thresholds:
    """The defaults, or the defaults overridden by the TOML file at `path`."""
    if path is None:
        return Thresholds()
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DoctorError(
            f"no thresholds file at {file}", "pass an existing TOML file to --thresholds"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DoctorError(
            f"cannot read thresholds file {file}: {err}", "check the path and permissions"
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise DoctorError(
            f"{file} is not valid TOML: {err}", "fix the line named (see DEFAULTS in thresholds.py)"
        ) from None
    return merge(data, origin=str(file))
