"""The rules, one per file, one line each in the registry (k8sgpt's analyzer map).

Order is the method's order (triage first) and breaks ties between findings of equal severity.
`healthy` is not listed: the engine adds it when nothing else is a warning or worse.
"""

from __future__ import annotations

from diagnose.rules import (
    cache_thrash,
    cpu_api_server,
    cpu_engine_core,
    cpu_host,
    cpu_model,
    failures,
    generate_endpoint,
    gpu,
    io,
    max_model_len,
    network_connections,
    network_latency,
    prefix_cache,
    queueing,
    readings_disagree,
    request_pattern,
)
from diagnose.rules.base import Rule

RULES: tuple[Rule, ...] = (
    failures.RULE,  # step 1: is it even answering?
    readings_disagree.RULE,  # step 1: GPU busy with no vLLM traffic: readings that contradict
    gpu.RULE,  # step 1: GPU busy and requests queue for it
    cpu_api_server.RULE,  # step 1: the API-server process at a core
    cpu_engine_core.RULE,  # step 1: VLLM::EngineCore at a core with requests waiting
    cpu_model.RULE,  # step 1: the model's compute on a CPU build (VLLM::Worker) with requests waiting
    cpu_host.RULE,  # step 1: the host out of CPU
    network_connections.RULE,  # step 1: TIME_WAIT flood on the serving port
    network_latency.RULE,  # step 1: client latency far above the server's
    io.RULE,  # step 1: disk (not collected yet: skipped)
    queueing.RULE,  # step 1, a symptom: past capacity, requests queue as long as they run
    request_pattern.RULE,  # step 2: documents per call, tokens per pair
    max_model_len.RULE,  # step 2: --max-model-len far above the prompts
    generate_endpoint.RULE,  # step 2: generated tokens on a reranker
    prefix_cache.RULE,  # step 2: prefix-cache hit ratio, explained
    cache_thrash.RULE,  # step 3: PROVISIONAL KV-cache thrash
)

__all__ = ["RULES", "Rule"]
