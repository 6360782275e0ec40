"""Step 2, prefix cache: what the hit ratio says about the traffic, and WHY it is what it is.

Facts it rests on (DESIGN §2, the H200 captures):
- vLLM caches full blocks only (16 tokens by default): a pair shorter than a block never hits, and a
  query shorter than a block shares nothing between the documents of one call.
- Freed blocks stay cached until reused (LRU), so a repeated prompt hits only if it comes back before the
  KV cache has turned over: turnover_s = KV cache tokens / prompt tokens per second.
- s2 read 92 %: 64 request bodies cycled, 113-token pairs in a 1.09 M-token cache turning over every ~10 s
  while each body came back every ~0.7 s. s3 read 0 % with the same cycling: its bodies came back every
  ~10 s, and the cache turned over every ~7 s. s5 read 0 %: 6.5-token pairs fill no block.
A high ratio is not a fault but a caveat: the GPU cost of fresh documents is higher than this window shows.
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.config import Config
from diagnose.derive.sections.gpu import Gpu
from diagnose.derive.sections.scheduler import Scheduler
from diagnose.derive.sections.shape import Shape
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.base import Rule, count, pick, ratio_pct, secs
from diagnose.thresholds import Thresholds

DEFAULT_BLOCK_SIZE = 16


def cache_turnover_s(ev: Evidence) -> float | None:
    """Seconds for the prompt traffic to fill the whole KV cache once (how long a block survives, roughly)."""
    if ev.config.kv_cache_size_tokens and ev.shape.prompt_tokens_per_s:
        return ev.config.kv_cache_size_tokens / ev.shape.prompt_tokens_per_s
    return None


def cacheable_share(tokens_per_pair: float, block_size: int) -> float:
    """Share of a pair's tokens that lie in full blocks, the only ones prefix caching keeps."""
    full = int(tokens_per_pair // block_size) * block_size
    return full / tokens_per_pair if tokens_per_pair > 0 else 0.0


class PrefixCacheRule(Rule):
    id = "prefix-cache"
    step = 2
    label = "config"
    kind = "advice"
    needs = ((Scheduler.prefix_hit_ratio, Config.enable_prefix_caching, Config.flag_enable_prefix_caching),)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        block = ev.config.block_size or DEFAULT_BLOCK_SIZE
        if ev.config.enable_prefix_caching is False or ev.config.flag_enable_prefix_caching is False:
            return self.finding(
                severity=Severity.INFO,
                title="Prefix caching is off",
                detail="Documents re-sent with the same query (and any chat template before it) could skip "
                f"their prefill from cache, in full {block}-token blocks. With short queries and no template "
                "there is nothing to gain.",
                numbers=pick(
                    ev, Config.enable_prefix_caching, Shape.prompt_tokens_per_pair, Config.block_size
                ),
                suggestions=[
                    Suggestion(
                        "--enable-prefix-caching",
                        "enable",
                        "off",
                        "on",
                        f"pays off when prompts share a prefix of at least one {block}-token block",
                    )
                ],
            )
        ratio = ev.scheduler.prefix_hit_ratio
        if ratio is None:
            return None
        numbers = pick(
            ev,
            Scheduler.prefix_hit_ratio,
            Scheduler.prefix_hits_delta,
            Scheduler.prefix_queries_delta,
            Shape.prompt_tokens_per_pair,
            Config.block_size,
            Config.kv_cache_size_tokens,
            Shape.prompt_tokens_per_s,
            Gpu.gpu_util_mean_pct,
        )
        turnover = cache_turnover_s(ev)
        numbers["cache_turnover_s"] = turnover
        tokens = ev.shape.prompt_tokens_per_pair
        hits = (
            f" ({count(ev.scheduler.prefix_hits_delta)} of "
            f"{count(ev.scheduler.prefix_queries_delta)} looked-up tokens)"
            if ev.scheduler.prefix_hits_delta is not None
            else ""
        )
        turnover_text = (
            f" The {count(ev.config.kv_cache_size_tokens)}-token KV cache turns over every "
            f"{secs(turnover)} at "
            f"{count(ev.shape.prompt_tokens_per_s)} prompt tokens/s: a prompt hits only if it comes "
            f"back sooner."
            if turnover is not None
            else ""
        )
        if ratio >= t["high_hit_ratio"]:
            repeats = ""
            if tokens:
                share = cacheable_share(tokens, block)
                numbers["cacheable_share"] = share
                if share > 0:
                    repeats = (
                        f" A {tokens:.0f}-token pair fills {int(tokens // block)} full {block}-token blocks "
                        f"({share * 100:.0f} % of it cacheable), so about "
                        f"{min(ratio / share, 1.0) * 100:.0f} % of pairs were exact repeats of a recent one."
                    )
            fresh = f" Fresh documents would cost ~{1 / max(1 - ratio, 1e-3):.0f}× the prefill work per pair."
            return self.finding(
                severity=Severity.INFO,
                title=f"Prefix-cache hit ratio {ratio_pct(ratio)}: the same prompts came back again",
                detail=f"{ratio_pct(ratio)} of prompt tokens were served from the prefix "
                f"cache{hits}.{repeats}"
                f"{turnover_text} Repeated documents — a benchmark cycling a fixed set of bodies, or clients "
                f"re-sending the same documents — make the GPU look idle.{fresh} Not a fault; judge GPU "
                "headroom with fresh documents.",
                numbers=numbers,
            )
        if ratio <= t["low_hit_ratio"]:
            reasons = []
            if tokens is not None and tokens < block:
                reasons.append(
                    f"a pair averages {tokens:.1f} tokens, less than one {block}-token block, and only full "
                    "blocks are cached: nothing can hit"
                )
            else:
                reasons.append(
                    f"the prefix the documents of a call share (the query, and any template before it) is "
                    f"shorter than one {block}-token block, so it is never cached on its own"
                )
                if turnover is not None:
                    reasons.append(
                        f"documents did not come back within the cache's turnover ({secs(turnover)})"
                    )
            return self.finding(
                severity=Severity.INFO,
                title=f"Prefix-cache hit ratio {ratio_pct(ratio)}: prompts do not share full blocks",
                detail=f"{ratio_pct(ratio)} of prompt tokens hit the prefix cache{hits}. Likely why: "
                f"{'; '.join(reasons)}.{turnover_text} Not a fault: every pair pays its full prefill.",
                numbers=numbers,
            )
        return None  # a middling ratio needs no explanation


RULE = PrefixCacheRule()
