"""PromQL that works on every vLLM the doctor knows: old and new names, `vllm:x` and `vllm_x`.

The names come from `diagnose.metrics.names.CONCEPTS` (newest first), so the dashboards and alert rules
follow the same table the CLI reads. Two kinds of drift are handled differently:

- Spelling (`vllm:x` as /metrics serves it, `vllm_x` as Prometheus 2.x stores it when it scrapes
  prometheus_client >= 0.23 without our relabel rule): one regex on `__name__`. A server exposes one
  spelling at a time, so the regex never matches the same series twice.
- Renames across versions (`kv_cache_usage_perc` after `gpu_cache_usage_perc`, ...): some versions
  exposed BOTH (0.9.2-0.11 kept the deprecated names), so a regex would count them twice. Each name
  gets its own expression and they are joined with `or`, newest first: `or` keeps the right-hand side
  only for label sets the left-hand side lacks, i.e. the old name only where the new one is absent.
"""

from __future__ import annotations

from collections.abc import Callable

from diagnose.metrics.names import CONCEPTS, spellings

# Handlers that are not the user's traffic (health checks, scrapes, model listing): the same set the
# CLI excludes (diagnose.derive.evidence.ADMIN_HANDLERS), as a PromQL regex.
ADMIN_HANDLERS_RE = "/metrics|/health|/ping|/v1/models|/version|/load|/is_sleeping|/server_info|none"


def selector(name: str, suffix: str = "", matchers: str = "") -> str:
    """`{__name__=~"vllm:x_bucket|vllm_x_bucket", matchers}` (a plain name for non-vLLM metrics)."""
    names = [s + suffix for s in spellings(name)]
    extra = f", {matchers}" if matchers else ""
    if len(names) == 1:
        return f"{names[0]}{{{matchers}}}" if matchers else names[0]
    return f'{{__name__=~"{"|".join(names)}"{extra}}}'


def names_of(concept: str) -> tuple[str, ...]:
    return CONCEPTS[concept].names


def each_name(concept: str, build: Callable[[str], str], suffix: str = "", matchers: str = "") -> str:
    """`build(selector)` for every name of the concept, newest first, joined with `or`."""
    parts = [build(selector(name, suffix, matchers)) for name in names_of(concept)]
    if len(parts) == 1:
        return parts[0]
    return " or ".join(f"({p})" for p in parts)


def quantile(concept: str, q: float, window: str, by: str = "model_name") -> str:
    """histogram_quantile over the bucket rate of a histogram concept, grouped by `by` (plus le)."""
    group = f"le, {by}" if by else "le"
    return each_name(
        concept,
        lambda s: f"histogram_quantile({q:g}, sum by ({group}) (rate({s}[{window}])))",
        suffix="_bucket",
    )


def rate_sum(concept: str, window: str, by: str = "", matchers: str = "") -> str:
    """sum [by (...)] (rate(counter[window])) over every name of a counter concept."""
    group = f" by ({by})" if by else ""
    return each_name(concept, lambda s: f"sum{group} (rate({s}[{window}]))", matchers=matchers)


def gauge(concept: str, agg: str = "max", by: str = "model_name", matchers: str = "") -> str:
    group = f" by ({by})" if by else ""
    return each_name(concept, lambda s: f"{agg}{group} ({s})", matchers=matchers)


def all_names() -> set[str]:
    """Every family name (both spellings) the expressions above can touch; for tests."""
    out: set[str] = set()
    for concept in CONCEPTS.values():
        for name in concept.names:
            out.update(spellings(name))
    return out
