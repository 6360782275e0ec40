"""Request shape (step 2): tokens per pair, their spread, generated tokens, tokens per engine step."""

from __future__ import annotations

import math
from dataclasses import dataclass

from diagnose.derive import window
from diagnose.derive.section import Section, build, group, num
from diagnose.derive.sections.latency import summarize
from diagnose.metrics.exposition import ParsedDump
from diagnose.metrics.names import Histogram


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape(Section):
    prompt_tokens_delta: float | None = num("vllm:prompt_tokens_total delta")
    prompt_tokens_per_s: float | None = num("vllm:prompt_tokens_total delta / window")
    prompt_tokens_per_pair: float | None = num("prompt tokens delta / vllm:request_prompt_tokens count delta")
    prompt_tokens_p99: float | None = num("vllm:request_prompt_tokens, bucket delta, p99")
    prompt_tokens_max_le: float | None = num("upper bound of the highest non-empty finite bucket (same)")
    generation_tokens_delta: float | None = num("vllm:generation_tokens_total delta (~0 for a reranker)")
    tokens_per_step_mean: float | None = num("vllm:iteration_tokens_total histogram, sum/count")
    engine_steps_per_s: float | None = num("vllm:iteration_tokens_total count / window")


def max_finite_le(h: Histogram | None) -> float | None:
    """The upper bound of the highest bucket that gained observations; None if that is +Inf."""
    if h is None or h.count <= 0:
        return None
    previous = 0.0
    highest: float | None = None
    for le, cumulative in h.buckets:
        if cumulative > previous:
            highest = le
        previous = cumulative
    return highest if highest is not None and math.isfinite(highest) else None


def derive_shape(first: ParsedDump, last: ParsedDump, window_s: float | None) -> Shape:
    why: dict[str, str] = {}
    prompt_tokens = window.delta(first, last, "prompt_tokens")
    prompt_h = window.hist(first, last, "request_prompt_tokens")
    p99 = summarize(prompt_h, 0.99)
    if p99.at_most is not None:
        why["prompt_tokens_p99"] = (
            f"inside the histogram's first bucket (≤ {p99.at_most:g}): too fine to resolve; see the mean"
        )
    if prompt_h is not None and prompt_h.count <= 0:
        group(
            why,
            ["prompt_tokens_per_pair", "prompt_tokens_p99", "prompt_tokens_max_le"],
            "no request in the window",
        )
    values: dict[str, object] = {
        "prompt_tokens_delta": prompt_tokens,
        "prompt_tokens_per_s": window.rate(prompt_tokens, window_s),
        "prompt_tokens_per_pair": window.ratio(prompt_tokens, prompt_h.count if prompt_h else None),
        "prompt_tokens_p99": p99.quantile,
        "prompt_tokens_max_le": max_finite_le(prompt_h),
        "generation_tokens_delta": window.delta(first, last, "generation_tokens"),
    }
    steps = window.hist(first, last, "iteration_tokens")
    if steps is not None and steps.count > 0:
        values["tokens_per_step_mean"] = summarize(steps).mean
        values["engine_steps_per_s"] = window.rate(steps.count, window_s)
    return build(Shape, values, why)
