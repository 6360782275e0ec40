"""`BypassReport`: the direct path vs the served path, for the same pairs — speed, overhead and scores.

Plain records plus the pure arithmetic that fills them (pairs/s, batch-latency quantiles, overhead
per pair, the score finding). The diagnosis reads `to_dict()` (schema_version 1): a large
`overhead.per_pair_ms` with a fast direct path is the API-server signature of DESIGN §2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from diagnose.bypass.compare import (
    ACTIVATION,
    BEYOND_TOLERANCE,
    CONSTANT,
    RANKS_AGREE_CORRELATION,
    UNCORRELATED,
    ScoreAgreement,
)
from diagnose.render.json import finding_to_dict
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.score_agreement import RULE as SCORES
from diagnose.stress.stats import quantile

SCHEMA_VERSION = 1
RULE_ID = SCORES.id


@dataclass(frozen=True, slots=True)
class Timing:
    """One path's speed over the measured batches (warm-up excluded), one batch in flight at a time."""

    pairs: int
    batches: int
    batch_size: int  # the largest batch (the last one may be smaller)
    busy_s: float  # sum of the batch times
    pairs_per_s: float | None
    ms_per_pair: float | None
    batch_p50_s: float | None
    batch_p95_s: float | None
    batch_max_s: float | None

    @classmethod
    def of(cls, batch_s: Sequence[float], batch_pairs: Sequence[int]) -> Timing:
        busy = float(sum(batch_s))
        pairs = int(sum(batch_pairs))
        ordered = sorted(batch_s)
        return cls(
            pairs=pairs,
            batches=len(batch_s),
            batch_size=max(batch_pairs, default=0),
            busy_s=busy,
            pairs_per_s=pairs / busy if busy > 0 else None,
            ms_per_pair=1000.0 * busy / pairs if pairs else None,
            batch_p50_s=quantile(ordered, 0.50),
            batch_p95_s=quantile(ordered, 0.95),
            batch_max_s=ordered[-1] if ordered else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Overhead:
    """Engine + serving cost per pair: served time per pair minus direct time per pair."""

    source: str  # "url" (measured here, same pairs and batch size) or "stress" (a bundle's stress.json)
    served_pairs_per_s: float
    direct_pairs_per_s: float
    per_pair_ms: float  # 1000/served - 1000/direct; negative when the server is faster (see notes)
    share_of_served: float  # per_pair_ms / served ms per pair (0-1; negative when the server is faster)
    served_over_direct: float  # served time per pair / direct time per pair

    @classmethod
    def of(cls, source: str, served_pairs_per_s: float, direct_pairs_per_s: float) -> Overhead:
        served_ms = 1000.0 / served_pairs_per_s
        direct_ms = 1000.0 / direct_pairs_per_s
        per_pair = served_ms - direct_ms
        return cls(
            source=source,
            served_pairs_per_s=served_pairs_per_s,
            direct_pairs_per_s=direct_pairs_per_s,
            per_pair_ms=per_pair,
            share_of_served=per_pair / served_ms,
            served_over_direct=served_ms / direct_ms,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class DirectRun:
    engine: str  # "transformers" | "vllm"
    device: str
    device_name: str | None
    dtype: str
    python: str
    versions: dict[str, str | None]
    load_s: float | None
    timing: Timing
    forward_timing: Timing | None  # transformers: model forward only (tokenization excluded)
    torch_threads: int | None = None  # transformers on CPU: the intra-op threads torch used
    batch_s: list[float] = field(default_factory=list)  # each measured batch, in order

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "device": self.device,
            "device_name": self.device_name,
            "dtype": self.dtype,
            "python": self.python,
            "versions": dict(self.versions),
            "load_s": self.load_s,
            "timing": self.timing.to_dict(),
            "forward_timing": self.forward_timing.to_dict() if self.forward_timing else None,
            "torch_threads": self.torch_threads,
            "batch_s": list(self.batch_s),
        }


@dataclass(slots=True)
class ServedRun:
    base_url: str
    endpoint: str
    model: str
    http_calls: int
    timing: Timing
    batch_s: list[float] = field(default_factory=list)  # each measured batch, in order

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "endpoint": self.endpoint,
            "model": self.model,
            "http_calls": self.http_calls,
            "timing": self.timing.to_dict(),
            "batch_s": list(self.batch_s),
        }


@dataclass(frozen=True, slots=True)
class StressServed:
    """The served numbers a bundle's stress.json recorded (diagnose/stress/report.py LoadReport)."""

    path: str
    mode: str | None
    pairs_per_s: float
    calls_per_s: float | None
    docs_per_call_mean: float | None
    concurrency: int | None
    rate_per_s: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class BypassReport:
    model_dir: str
    pairs: int
    batch_size: int
    direct: DirectRun
    served: ServedRun | None
    stress: StressServed | None
    activation: str | None  # applied to the direct logits before comparing; None: vLLM scores as they are
    activation_why: str
    scores: ScoreAgreement | None
    overhead: list[Overhead]
    findings: list[Finding]
    samples: list[dict[str, Any]]  # the first few pairs: direct logit/score and served score
    notes: list[str] = field(default_factory=list)

    def overhead_from(self, source: str) -> Overhead | None:
        return next((o for o in self.overhead if o.source == source), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "model_dir": self.model_dir,
            "pairs": self.pairs,
            "batch_size": self.batch_size,
            "direct": self.direct.to_dict(),
            "served": self.served.to_dict() if self.served else None,
            "stress": self.stress.to_dict() if self.stress else None,
            "activation": self.activation,
            "activation_why": self.activation_why,
            "scores": self.scores.to_dict() if self.scores else None,
            "overhead": [o.to_dict() for o in self.overhead],
            "findings": [finding_to_dict(f) for f in self.findings],
            "samples": list(self.samples),
            "notes": list(self.notes),
        }


_WHAT = {
    CONSTANT: "the server gives every pair (nearly) the same score, the model does not",
    UNCORRELATED: "the server ranks the pairs differently from the model",
    ACTIVATION: "the server's scores are the model's under another activation",
}


def score_finding(agreement: ScoreAgreement, model_dir: str) -> Finding | None:
    """The `config` finding for served scores that disagree with the model; None when they agree."""
    if agreement.agree:
        return None
    numbers: dict[str, float | int | str | None] = {
        "pairs": agreement.pairs,
        "score_max_abs_diff": agreement.max_abs_diff,
        "score_mean_abs_diff": agreement.mean_abs_diff,
        "score_correlation": agreement.pearson,
        "served_score_min": agreement.served_min,
        "served_score_max": agreement.served_max,
        "served_score_spread": agreement.served_spread,
        "direct_score_spread": agreement.direct_spread,
        "tolerance": agreement.tolerance,
    }
    what = _WHAT.get(
        agreement.problem or "", "the served scores are farther from the model's than bf16/fp32 explains"
    )
    if agreement.problem == ACTIVATION:
        what += f" ({agreement.matches_activation}, not {agreement.activation})"
    rounding_scatter = (
        agreement.problem == BEYOND_TOLERANCE
        and agreement.pearson is not None
        and agreement.pearson >= RANKS_AGREE_CORRELATION
        and abs(agreement.mean_signed_diff) <= agreement.tolerance
    )
    if agreement.problem in (CONSTANT, UNCORRELATED):
        severity = Severity.CRITICAL
    elif rounding_scatter:
        # Same order, no shift: the ranking a reranker serves is the model's. Worth knowing, not a fault.
        severity = Severity.INFO
        what = (
            f"served scores rank pairs as the model does (correlation {agreement.pearson:.3f}) and scatter "
            "around its scores with no shift: rounding along two code paths (bf16 grows with depth); "
            "compare with --dtype float32 on both sides before suspecting the model"
        )
    else:
        severity = Severity.WARNING
    suggestions = [
        Suggestion(
            flag="--model",
            direction="change",
            current=None,
            proposed=model_dir,
            why="make sure the server loads the same checkpoint (and revision) the bypass scored",
        ),
        Suggestion(
            flag="--hf-overrides",
            direction="change",
            current=None,
            proposed=None,
            why="an override (architectures, classifier_from_token, num_labels) that does not fit the "
            "checkpoint serves a randomly initialised or wrong head",
        ),
    ]
    if agreement.problem == ACTIVATION:
        suggestions = [
            Suggestion(
                flag="config.json problem_type / activation_fn",
                direction="change",
                current=None,
                proposed=None,
                why="vLLM picks the score activation from the config; clients comparing scores across "
                "servers need the same one",
            )
        ]
    return SCORES.finding(
        severity=severity,
        title="served scores disagree with the model",
        detail=f"{what}: {agreement.one_line()}",
        numbers=numbers,
        suggestions=suggestions,
        confidence="high" if agreement.pairs >= 10 else "medium",
    )
