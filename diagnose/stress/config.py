"""What a load run is asked to do: `LoadConfig`, and the parsers that turn flag text into it.

Everything here is pure and validates eagerly: a bad duration, a zero rate or a far-away target is a
`DoctorError` with a one-line fix before any socket opens.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from diagnose.defaults import DEFAULT_DOCS_PER_CALL, DEFAULT_DRAIN_S, DEFAULT_WORDS_PER_DOC
from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.units import parse_duration_s
from diagnose.urls import parse_server_url

# Endpoint path -> body shape. vLLM serves the rerank shape under three paths (Jina/Cohere-style
# `/v1/rerank` and `/v2/rerank`, bare `/rerank`) and the score shape under two.
RERANK_ENDPOINTS = ("/v1/rerank", "/rerank", "/v2/rerank")
SCORE_ENDPOINTS = ("/score", "/v1/score")
ENDPOINTS = RERANK_ENDPOINTS + SCORE_ENDPOINTS

ARRIVALS = ("poisson", "constant")


def fresh_seed() -> int:
    """A seed no earlier run used (with near certainty): new bodies, so vLLM's prefix cache starts cold."""
    import secrets

    return secrets.randbelow(2**31)


def parse_duration(text: str, what: str = "--duration", allow_zero: bool = False) -> float:
    """'10s', '2m', '500ms', '1.5h' or a bare number of seconds -> seconds (> 0, or >= 0 with allow_zero)."""
    try:
        seconds = parse_duration_s(text)  # one grammar for every duration flag (diagnose/units.py)
    except ValueError:
        raise DoctorError(
            f"{what} {text!r} is not a duration",
            "write it like 30s, 2m, 500ms or 1h",
            ExitStatus.USAGE,
        ) from None
    if not (seconds > 0 or (allow_zero and seconds == 0)):
        raise DoctorError(f"{what} must be longer than zero (got {text!r})", "use e.g. 30s", ExitStatus.USAGE)
    return seconds


@dataclass(frozen=True, slots=True)
class IntRange:
    """A count that is fixed (`20`) or drawn uniformly from an inclusive range (`5-50`)."""

    low: int
    high: int

    @property
    def fixed(self) -> bool:
        return self.low == self.high

    def __str__(self) -> str:
        return str(self.low) if self.fixed else f"{self.low}-{self.high}"


def parse_range(text: str | int, what: str, minimum: int = 1) -> IntRange:
    """'20' -> IntRange(20, 20); '5-50' -> IntRange(5, 50); both ends >= minimum."""
    if isinstance(text, int):
        low = high = text
    else:
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
        if not match:
            raise DoctorError(
                f"{what} {text!r} is not a count or a range",
                f"write {what} 20 or {what} 5-50",
                ExitStatus.USAGE,
            )
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
    if low < minimum or high < low:
        raise DoctorError(
            f"{what} {text!r} is out of range",
            f"use whole numbers >= {minimum}, the low end first (e.g. {what} 5-50)",
            ExitStatus.USAGE,
        )
    return IntRange(low, high)


@dataclass(frozen=True, slots=True)
class Target:
    base_url: str  # scheme://host:port[/prefix], no trailing slash, no credentials
    endpoint: str  # one of ENDPOINTS
    host: str


def parse_target(url: str, endpoint: str | None, yes_really: bool = False) -> Target:
    """Split --url (which may already end in an endpoint path) and refuse far-away hosts.

    The address grammar and the loopback check are diagnose/urls.py's, the same as every other command's.
    """
    parsed = parse_server_url(url)
    known = parsed.path if parsed.path in ENDPOINTS else None
    if known is not None:
        if endpoint is not None and endpoint != known:
            raise DoctorError(
                f"--url ends in {known} but --endpoint is {endpoint}",
                "give the endpoint once, in --endpoint",
                ExitStatus.USAGE,
            )
        endpoint = known
    endpoint = endpoint or "/v1/rerank"
    if endpoint not in ENDPOINTS:
        raise DoctorError(
            f"--endpoint {endpoint} is not one rerank-doctor knows",
            f"use one of {', '.join(ENDPOINTS)}",
            ExitStatus.USAGE,
        )
    if not yes_really and not parsed.is_loopback:
        raise DoctorError(
            f"refusing to send load to {parsed.host}, which is not this machine",
            "point --url at 127.0.0.1/localhost, or pass --yes-really if you own that server and mean it",
            ExitStatus.USAGE,
        )
    # parsed.base carries no credentials: the report must never carry a secret (use --api-key).
    return Target(base_url=parsed.base, endpoint=endpoint, host=parsed.host)


@dataclass(slots=True)
class LoadConfig:
    """One load run. Exactly one of `rate_per_s` (open loop) or `concurrency` (closed loop) is set.

    `api_key` is sent as `Authorization: Bearer` and never copied into the report (repr hides it).
    """

    url: str = "http://127.0.0.1:8000"
    endpoint: str | None = None  # None: /v1/rerank, or the path --url ends in
    model: str | None = None  # None: the first id from GET /v1/models
    api_key: str | None = field(default=None, repr=False)
    # Open loop: arrivals at this rate regardless of responses; latency counts from the intended time.
    rate_per_s: float | None = None
    arrival: str = "poisson"
    ramp_s: float = 0.0  # linear ramp from ramp_from_per_s to rate_per_s over this many seconds
    ramp_from_per_s: float = 0.0
    # Closed loop: this many workers, each sending its next call when the last one answers.
    concurrency: int | None = None
    duration_s: float = 30.0
    max_requests: int | None = None
    timeout_s: float = 30.0  # per call
    docs: IntRange = field(default_factory=lambda: IntRange(DEFAULT_DOCS_PER_CALL, DEFAULT_DOCS_PER_CALL))
    words: IntRange = field(default_factory=lambda: IntRange(DEFAULT_WORDS_PER_DOC, DEFAULT_WORDS_PER_DOC))
    query_words: int = 12
    qwen3_template: bool = False
    instruction: str | None = None  # Qwen3-Reranker instruction; None: its default web-search one
    top_n: int | None = None
    distinct_bodies: int = 1024
    # None: a fresh seed per run (fresh_seed), so no run is flattered by the bodies an earlier one left in
    # the prefix cache; the report states the seed used, and passing it back repeats the run's bodies.
    seed: int | None = None
    drain_s: float = DEFAULT_DRAIN_S
    new_connection_per_request: bool = False
    yes_really: bool = False
    scrape_metrics: bool = True

    def validate(self) -> Target:
        """Check every field; returns the parsed target. Raises DoctorError(one line, fix)."""
        target = parse_target(self.url, self.endpoint, self.yes_really)
        if (self.rate_per_s is None) == (self.concurrency is None):
            raise DoctorError(
                "give exactly one of --rate (open loop) or --concurrency (closed loop)",
                "e.g. --rate 20 for 20 calls/s, or --concurrency 8",
                ExitStatus.USAGE,
            )
        if self.rate_per_s is not None and not (math.isfinite(self.rate_per_s) and self.rate_per_s > 0):
            raise DoctorError(
                f"--rate must be a positive number of calls/s (got {self.rate_per_s:g})",
                "use e.g. --rate 20",
                ExitStatus.USAGE,
            )
        if self.concurrency is not None and self.concurrency < 1:
            raise DoctorError(
                f"--concurrency must be at least 1 (got {self.concurrency})",
                "use e.g. --concurrency 8",
                ExitStatus.USAGE,
            )
        if self.arrival not in ARRIVALS:
            raise DoctorError(
                f"--arrival {self.arrival!r} is unknown", "use poisson or constant", ExitStatus.USAGE
            )
        if self.ramp_s < 0 or not math.isfinite(self.ramp_s):
            raise DoctorError("--ramp must not be negative", "use e.g. --ramp 10s", ExitStatus.USAGE)
        if self.ramp_from_per_s < 0 or not math.isfinite(self.ramp_from_per_s):
            raise DoctorError("--ramp-from must not be negative", "use e.g. --ramp-from 1", ExitStatus.USAGE)
        if not (math.isfinite(self.drain_s) and self.drain_s >= 0):
            raise DoctorError("--drain must not be negative", "use e.g. --drain 5s", ExitStatus.USAGE)
        for name, seconds in (("--duration", self.duration_s), ("--timeout", self.timeout_s)):
            if not (math.isfinite(seconds) and seconds > 0):
                raise DoctorError(f"{name} must be longer than zero", "use e.g. 30s", ExitStatus.USAGE)
        if self.max_requests is not None and self.max_requests < 1:
            raise DoctorError(
                "--max-requests must be at least 1", "use e.g. --max-requests 1000", ExitStatus.USAGE
            )
        if self.distinct_bodies < 1:
            raise DoctorError("--distinct-bodies must be at least 1", "use e.g. 1024", ExitStatus.USAGE)
        if self.query_words < 1:
            raise DoctorError("--query-words must be at least 1", "use e.g. 12", ExitStatus.USAGE)
        if self.top_n is not None and self.top_n < 1:
            raise DoctorError(
                "--top-n must be at least 1", "leave it out to get every document back", ExitStatus.USAGE
            )
        if target.endpoint in SCORE_ENDPOINTS and self.top_n is not None:
            raise DoctorError(
                f"--top-n is a rerank field; {target.endpoint} has none",
                "drop --top-n, or use --endpoint /v1/rerank",
                ExitStatus.USAGE,
            )
        return target

    @property
    def open_loop(self) -> bool:
        return self.rate_per_s is not None

    def with_seed(self) -> LoadConfig:
        """This config with its seed fixed: the given one, or a fresh one for this run."""
        from dataclasses import replace

        return self if self.seed is not None else replace(self, seed=fresh_seed())
