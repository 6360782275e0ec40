"""Step 3, `cache-thrash`: the KV cache is too small for the work, so the engine cannot batch.

Established on the CPU lab (docs/cache-thrash.md has the runs and the commands): with
`--num-gpu-blocks-override 20` (2,560 tokens of KV) and ~1,380-token pairs, every engine step carried
exactly ONE request (tokens per step 1,378 = tokens per pair, against 2,034 of a 2,048 budget with 1 GiB
of KV), up to 14 requests waited for "capacity", and KV usage still read 0 at every scrape. Prefix-cache
lookups stayed at 1.0 × prompt tokens and there were no preemptions. So the signature a reranker really
shows is structural: the KV cache holds only a few of the prompts it is sent
(`kv_cache_size_tokens / prompt_tokens_per_pair`), and requests wait for capacity while steps are
not full. On the 2-core lab the model's compute was the limit either way (2.07 vs 2.06 pairs/s), so
there the finding explains the batching, not the throughput; on a GPU, where a step of one request
leaves the device idle, it costs throughput directly.
Also known (DESIGN §2):
- `kv_cache_usage_perc` is a weak signal for rerankers: a pooling request frees its blocks within the
  step, so usage can read 0 under pressure.
- Under KV starvation (`--num-gpu-blocks-override 128`, ~1,850-word documents) prefix-cache queries grew
  at 2.0 × prompt tokens (1.0 in every other run): requests were scheduled, found no blocks, and were
  looked up again.
- `num_requests_waiting_by_reason{reason="capacity"}` also rises when the per-step token budget
  (--max-num-batched-tokens) binds, with KV nearly empty: on its own it is NOT a KV signal.
- Preemptions mean the scheduler took blocks back from running requests.
Strong signals: a KV cache that fits fewer than `kv_fits_pairs_warning` pairs with capacity waits (lab),
re-lookups (H200, once), preemptions, capacity waits with KV usage high. Corroborating: steps carrying
about as many requests as the KV cache fits, queue ≫ inference, a long tail (p95 ≥ 3 × mean).
Confidence is "medium" when the lab-established signal is among the strong ones, "low" otherwise.
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.config import Config
from diagnose.derive.sections.latency import Latency
from diagnose.derive.sections.scheduler import Scheduler
from diagnose.derive.sections.shape import Shape
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.base import Rule, current_flag, pick, ratio_pct, secs, times
from diagnose.thresholds import Thresholds


def kv_fits_pairs(ev: Evidence) -> float | None:
    """How many average pairs the whole KV cache holds at once (None when either side is unknown)."""
    if ev.config.kv_cache_size_tokens and ev.shape.prompt_tokens_per_pair:
        return ev.config.kv_cache_size_tokens / ev.shape.prompt_tokens_per_pair
    return None


def requests_per_step(ev: Evidence) -> float | None:
    """Engine requests per step: tokens per step over tokens per pair (pooling requests finish in-step)."""
    if ev.shape.tokens_per_step_mean and ev.shape.prompt_tokens_per_pair:
        return ev.shape.tokens_per_step_mean / ev.shape.prompt_tokens_per_pair
    return None


def capacity_waits(ev: Evidence) -> bool:
    return ev.scheduler.waiting_capacity_max is not None and ev.scheduler.waiting_capacity_max > 0


class CacheThrashRule(Rule):
    id = "cache-thrash"
    step = 3
    label = "cache-thrash"
    needs = (
        (
            Scheduler.prefix_queries_per_prompt_token,
            Scheduler.waiting_capacity_max,
            Scheduler.preemptions_delta,
            Config.kv_cache_size_tokens,
        ),
    )

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        strong: list[str] = []
        corroborating: list[str] = []
        qpt = ev.scheduler.prefix_queries_per_prompt_token
        if qpt is not None and qpt >= t["queries_per_prompt_token_warning"]:
            strong.append(
                f"prefix-cache lookups grew at {qpt:.2f} × prompt tokens (1.0 normally): requests were "
                "scheduled, found no free blocks, and were looked up again"
            )
        fits = kv_fits_pairs(ev)
        lab_signal = False
        if fits is not None and fits < t["kv_fits_pairs_warning"] and capacity_waits(ev):
            lab_signal = True
            strong.append(
                f"the {ev.config.kv_cache_size_tokens}-token KV cache holds only {fits:.1f} pairs of "
                f"{ev.shape.prompt_tokens_per_pair:.0f} tokens, and up to "
                f"{ev.scheduler.waiting_capacity_max:.0f} requests "
                "waited for capacity"
            )
            per_step = requests_per_step(ev)
            if per_step is not None and per_step <= max(1.0, fits) * 1.05:
                corroborating.append(
                    f"engine steps carried {per_step:.1f} requests each: no more than the KV cache fits"
                )
        if ev.scheduler.preemptions_delta:
            strong.append(
                f"{ev.scheduler.preemptions_delta:.0f} preemptions: running requests lost their KV blocks"
            )
        kv_high = (
            ev.scheduler.kv_usage_max_ratio is not None
            and ev.scheduler.kv_usage_max_ratio >= t["kv_usage_high_ratio"]
        )
        capacity = capacity_waits(ev)
        if capacity and kv_high:
            strong.append(
                f"up to {ev.scheduler.waiting_capacity_max:.0f} requests waited for capacity with KV "
                f"usage at "
                f"{ratio_pct(ev.scheduler.kv_usage_max_ratio)}"
            )
        if ev.latency.queue_mean_s is not None and ev.latency.inference_mean_s:
            over = ev.latency.queue_mean_s / ev.latency.inference_mean_s
            if over >= t["queue_over_inference"]:
                corroborating.append(
                    f"queue {secs(ev.latency.queue_mean_s)} is {times(over)} inference "
                    f"{secs(ev.latency.inference_mean_s)}"
                )
        # The client's view first (a stress run's exact percentiles, latency from the intended send time),
        # then the server's HTTP histogram, then vLLM's e2e (bucket interpolations, coarser).
        tail_p95: float | None
        tail_mean: float | None
        if ev.client.client_mean_s:
            tail_p95, tail_mean = ev.client.client_p95_s, ev.client.client_mean_s
        elif ev.latency.http_mean_s:
            tail_p95, tail_mean = ev.latency.http_p95_s, ev.latency.http_mean_s
        else:
            tail_p95, tail_mean = ev.latency.e2e_p95_s, ev.latency.e2e_mean_s
        if tail_p95 is not None and tail_mean and tail_p95 / tail_mean >= t["tail_p95_over_mean"]:
            corroborating.append(f"long tail: p95 {secs(tail_p95)} is {times(tail_p95 / tail_mean)} the mean")

        numbers = pick(
            ev,
            Scheduler.prefix_queries_per_prompt_token,
            Scheduler.preemptions_delta,
            Scheduler.waiting_capacity_max,
            Scheduler.kv_usage_max_ratio,
            Latency.queue_mean_s,
            Latency.inference_mean_s,
            Latency.http_p95_s,
            Latency.http_mean_s,
            Config.kv_cache_size_tokens,
            Shape.prompt_tokens_per_pair,
            Shape.tokens_per_step_mean,
            Config.flag_max_num_batched_tokens,
        )
        numbers["kv_fits_pairs"] = fits
        if not strong:
            if capacity and not kv_high:
                # Not a fault of the KV cache: the per-step token budget binds
                # (seen on the CPU lab with 0.07 % of the KV cache in use).
                budget = current_flag(ev, "--max-num-batched-tokens")
                return self.finding(
                    severity=Severity.INFO,
                    title="Requests waited for the per-step token budget, not for KV cache",
                    detail=f"Up to {ev.scheduler.waiting_capacity_max:.0f} requests waited for "
                    f"capacity while KV usage "
                    f"peaked at {ratio_pct(ev.scheduler.kv_usage_max_ratio)}: the step's token budget "
                    f"(--max-num-batched-tokens {budget or '?'}) was full. That is batching working, "
                    "not cache thrash.",
                    numbers=numbers,
                    confidence="medium",
                )
            return None
        severity = Severity.CRITICAL if len(strong) + len(corroborating) >= 2 else Severity.WARNING
        gmu = ev.config.flag_gpu_memory_utilization or ev.config.gpu_memory_utilization
        suggestions = [
            Suggestion(
                "--gpu-memory-utilization",
                "raise",
                current_flag(ev, "--gpu-memory-utilization"),
                f"{min(0.95, gmu + 0.05):.2f}" if gmu else "0.92",
                "more of the GPU for KV blocks, so requests stop waiting for and re-looking-up blocks",
            ),
            Suggestion(
                "--max-num-seqs",
                "lower",
                current_flag(ev, "--max-num-seqs"),
                str(max(1, ev.config.flag_max_num_seqs // 2)) if ev.config.flag_max_num_seqs else None,
                "fewer requests in flight compete for the same blocks",
            ),
        ]
        if "--num-gpu-blocks-override" in ev.config.flags or "--kv-cache-memory-bytes" in ev.config.flags:
            flag = (
                "--num-gpu-blocks-override"
                if "--num-gpu-blocks-override" in ev.config.flags
                else "--kv-cache-memory-bytes"
            )
            suggestions.insert(
                0,
                Suggestion(
                    flag,
                    "remove",
                    ev.config.flags[flag],
                    None,
                    "the KV cache is capped by hand below what fits; pays off where one-request steps leave "
                    "the device idle (a GPU), not where the model's compute binds anyway (the CPU lab: "
                    "p95 1.08×, throughput 0.96× after removing it)",
                ),
            )
        return self.finding(
            severity=severity,
            title="KV cache too small for the traffic: the engine cannot batch",
            detail="; ".join(strong + corroborating).capitalize() + ". KV usage itself is a weak signal for "
            "rerankers (blocks are freed within the step, so it can read 0 under starvation).",
            numbers=numbers,
            suggestions=suggestions,
            confidence="medium" if lab_signal else "low",
            provisional=not lab_signal,
            # The KV cache holds fewer pairs than a step would batch: it is at its limit by construction.
            utilization=1.0,
        )


RULE = CacheThrashRule()
