"""Step 3, `cache-thrash` — PROVISIONAL: the KV cache is too small for the work, and requests cycle.

PROVISIONAL: built from one H200 capture and CPU-lab observations (DESIGN §2), not yet established on the
lab; the lead will pin the real signature. Until then findings carry confidence "low".
What is known:
- `kv_cache_usage_perc` is a weak signal for rerankers: a pooling request frees its blocks within the
  step, so usage can read 0 under pressure.
- Under KV starvation (`--num-gpu-blocks-override 128`, ~1,850-word documents) prefix-cache queries grew
  at 2.0 × prompt tokens (1.0 in every other run): requests were scheduled, found no blocks, and were
  looked up again.
- `num_requests_waiting_by_reason{reason="capacity"}` also rises when the per-step token budget
  (--max-num-batched-tokens) binds, with KV nearly empty: on its own it is NOT a KV signal.
- Preemptions mean the scheduler took blocks back from running requests.
Strong signals: re-lookups, preemptions, capacity waits with KV usage high. Corroborating: queue ≫
inference, a long tail (p95 ≥ 3 × mean).
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.base import Needs, current_flag, pick, ratio_pct, secs, times
from diagnose.thresholds import Thresholds


class CacheThrashRule:
    id = "cache-thrash"
    step = 3
    label = "cache-thrash"
    needs: Needs = (("prefix_queries_per_prompt_token", "waiting_capacity_max", "preemptions_delta"),)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        strong: list[str] = []
        corroborating: list[str] = []
        qpt = ev.prefix_queries_per_prompt_token
        if qpt is not None and qpt >= t["queries_per_prompt_token_warning"]:
            strong.append(
                f"prefix-cache lookups grew at {qpt:.2f} × prompt tokens (1.0 normally): requests were "
                "scheduled, found no free blocks, and were looked up again"
            )
        if ev.preemptions_delta:
            strong.append(f"{ev.preemptions_delta:.0f} preemptions: running requests lost their KV blocks")
        kv_high = ev.kv_usage_max_ratio is not None and ev.kv_usage_max_ratio >= t["kv_usage_high_ratio"]
        capacity = ev.waiting_capacity_max is not None and ev.waiting_capacity_max > 0
        if capacity and kv_high:
            strong.append(
                f"up to {ev.waiting_capacity_max:.0f} requests waited for capacity with KV usage at "
                f"{ratio_pct(ev.kv_usage_max_ratio)}"
            )
        if ev.queue_mean_s is not None and ev.inference_mean_s:
            over = ev.queue_mean_s / ev.inference_mean_s
            if over >= t["queue_over_inference"]:
                corroborating.append(
                    f"queue {secs(ev.queue_mean_s)} is {times(over)} inference {secs(ev.inference_mean_s)}"
                )
        tail_p95, tail_mean = (
            (ev.http_p95_s, ev.http_mean_s) if ev.http_mean_s else (ev.e2e_p95_s, ev.e2e_mean_s)
        )
        if tail_p95 is not None and tail_mean and tail_p95 / tail_mean >= t["tail_p95_over_mean"]:
            corroborating.append(f"long tail: p95 {secs(tail_p95)} is {times(tail_p95 / tail_mean)} the mean")

        numbers = pick(
            ev,
            "prefix_queries_per_prompt_token",
            "preemptions_delta",
            "waiting_capacity_max",
            "kv_usage_max_ratio",
            "queue_mean_s",
            "inference_mean_s",
            "http_p95_s",
            "http_mean_s",
            "kv_cache_size_tokens",
            "flag_max_num_batched_tokens",
        )
        if not strong:
            if capacity and not kv_high:
                # Not a fault of the KV cache: the per-step token budget binds
                # (seen on the CPU lab with 0.07 % of the KV cache in use).
                budget = current_flag(ev, "--max-num-batched-tokens")
                return Finding(
                    rule_id=self.id,
                    label=self.label,
                    step=self.step,
                    severity=Severity.INFO,
                    title="Requests waited for the per-step token budget, not for KV cache",
                    detail=f"Up to {ev.waiting_capacity_max:.0f} requests waited for capacity while KV usage "
                    f"peaked at {ratio_pct(ev.kv_usage_max_ratio)}: the step's token budget "
                    f"(--max-num-batched-tokens {budget or '?'}) was full. That is batching working, "
                    "not cache thrash.",
                    numbers=numbers,
                    confidence="low",
                    provisional=True,
                )
            return None
        severity = Severity.CRITICAL if len(strong) + len(corroborating) >= 2 else Severity.WARNING
        gmu = ev.flag_gpu_memory_utilization or ev.gpu_memory_utilization
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
                str(max(1, ev.flag_max_num_seqs // 2)) if ev.flag_max_num_seqs else None,
                "fewer requests in flight compete for the same blocks",
            ),
        ]
        if "--num-gpu-blocks-override" in ev.flags or "--kv-cache-memory-bytes" in ev.flags:
            flag = (
                "--num-gpu-blocks-override"
                if "--num-gpu-blocks-override" in ev.flags
                else "--kv-cache-memory-bytes"
            )
            suggestions.insert(
                0,
                Suggestion(
                    flag, "remove", ev.flags[flag], None, "the KV cache is capped by hand below what fits"
                ),
            )
        return Finding(
            rule_id=self.id,
            label=self.label,
            step=self.step,
            severity=severity,
            title="Possible KV-cache thrash (provisional signature)",
            detail="; ".join(strong + corroborating).capitalize() + ". KV usage itself is a weak signal for "
            "rerankers (blocks are freed within the step). This rule's signature is provisional.",
            numbers=numbers,
            suggestions=suggestions,
            confidence="low",
            provisional=True,
        )


RULE = CacheThrashRule()
