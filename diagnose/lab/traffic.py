"""A small, bounded rerank driver for the lab and its tests (the real load generator is diagnose/stress).

It sends `calls` POST /v1/rerank requests, each with one query and `docs_per_call` documents of
`words_per_doc` made-up words, from `concurrency` threads, and says what happened. The text is
deterministic (seeded), so two runs send the same tokens. It only talks to this machine: a URL whose
host is not 127.0.0.1, ::1 or localhost is refused, because this is load, and load goes to our own lab.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.words import pseudo_text

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def rerank_payload(
    model: str, call_index: int, docs_per_call: int, words_per_doc: int, seed: int = 0
) -> dict[str, object]:
    """The body of call number `call_index`: a function of its arguments only (deterministic)."""
    rng = random.Random(seed * 1_000_003 + call_index)
    return {
        "model": model,
        "query": pseudo_text(8, rng),
        "documents": [pseudo_text(words_per_doc, rng) for _ in range(docs_per_call)],
    }


def require_local(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in LOCAL_HOSTS:
        raise DoctorError(
            f"refusing to send lab traffic to {host or url!r}",
            "lab traffic only goes to 127.0.0.1 or localhost; use `rerank-doctor stress` for other servers",
            ExitStatus.USAGE,
        )


@dataclass
class TrafficSummary:
    calls: int
    docs_per_call: int
    words_per_doc: int
    concurrency: int
    calls_ok: int = 0
    # HTTP status (as text) or exception class name -> count, for every call that did not return 200.
    failures: dict[str, int] = field(default_factory=dict)
    # Prompt tokens vLLM reported in the responses' `usage` (None when no call succeeded).
    prompt_tokens: int | None = None
    wall_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)

    @property
    def docs_ok(self) -> int:
        return self.calls_ok * self.docs_per_call

    @property
    def calls_per_s(self) -> float | None:
        return self.calls_ok / self.wall_s if self.wall_s > 0 else None

    def latency_quantile_s(self, q: float) -> float | None:
        if not self.latencies_s:
            return None
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    @property
    def latency_mean_s(self) -> float | None:
        return sum(self.latencies_s) / len(self.latencies_s) if self.latencies_s else None

    def one_line(self) -> str:
        p50, p95 = self.latency_quantile_s(0.5), self.latency_quantile_s(0.95)
        rate = self.calls_per_s
        parts = [
            f"{self.calls_ok}/{self.calls} calls ok ({self.docs_per_call} docs x {self.words_per_doc} words, "
            f"concurrency {self.concurrency})",
            f"{self.wall_s:.1f} s",
            f"{rate:.1f} calls/s" if rate is not None else "no calls done",
        ]
        if p50 is not None and p95 is not None:
            parts.append(f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
        if self.failures:
            parts.append("failures " + ", ".join(f"{k}: {v}" for k, v in sorted(self.failures.items())))
        return "; ".join(parts)


def send_rerank_calls(
    url: str,
    model: str,
    calls: int,
    docs_per_call: int,
    words_per_doc: int,
    concurrency: int = 4,
    timeout_s: float = 60.0,
    headers: dict[str, str] | None = None,
    seed: int = 0,
) -> TrafficSummary:
    """Sends exactly `calls` rerank calls to `url`/v1/rerank and waits for all of them."""
    import requests

    require_local(url)
    if calls < 0 or docs_per_call < 1 or words_per_doc < 1 or concurrency < 1:
        raise ValueError("calls >= 0, docs_per_call >= 1, words_per_doc >= 1 and concurrency >= 1")
    endpoint = url.rstrip("/") + "/v1/rerank"
    summary = TrafficSummary(calls, docs_per_call, words_per_doc, concurrency)
    failures: Counter[str] = Counter()
    tokens: list[int] = []
    lock = threading.Lock()
    local = threading.local()

    def one(i: int) -> None:
        # One keep-alive session per thread, as a well-behaved client would use.
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        body = rerank_payload(model, i, docs_per_call, words_per_doc, seed)
        t0 = time.perf_counter()
        try:
            resp = session.post(endpoint, json=body, timeout=timeout_s, headers=headers)
        except requests.RequestException as err:
            with lock:
                failures[type(err).__name__] += 1
            return
        elapsed_s = time.perf_counter() - t0
        with lock:
            if resp.status_code == 200:
                summary.calls_ok += 1
                summary.latencies_s.append(elapsed_s)
                usage = resp.json().get("usage") or {}
                if isinstance(usage.get("prompt_tokens"), int):
                    tokens.append(usage["prompt_tokens"])
            else:
                failures[str(resp.status_code)] += 1

    t_start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="lab-traffic") as pool:
        list(pool.map(one, range(calls)))
    summary.wall_s = time.perf_counter() - t_start
    summary.failures = dict(failures)
    summary.prompt_tokens = sum(tokens) if tokens else None
    return summary
