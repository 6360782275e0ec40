"""Like-with-like: the activation vLLM applies to a classifier's logit, and whether served scores agree.

Pure functions over lists of floats; no I/O.

What vLLM serves as the score of a `num_labels == 1` sequence classifier is NOT the raw logit: its
pooler applies an activation chosen from the model config (vLLM 0.32
`model_executor/layers/pooler/activations.py`, `get_act_fn`, aligned with transformers'
ForSequenceClassificationLoss):
- `problem_type == "regression"` -> identity (the raw logit);
- `problem_type == "single_label_classification"`, or no problem_type -> `PoolerClassify`, which is
  sigmoid for fewer than 2 labels (softmax otherwise);
- `problem_type == "multi_label_classification"` -> sigmoid;
- a sentence-transformers cross-encoder's `activation_fn` / `sbert_ce_default_activation_function`:
  `Identity` -> identity; `Sigmoid` / `Softmax` -> `PoolerClassify` (sigmoid for one label).
transformers' `AutoModelForSequenceClassification` returns the raw logit, so the direct score is
`activation(logit)` before the two are compared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# Absolute tolerance on the score's own scale (0-1 after a sigmoid). Why 0.02: bf16 keeps ~3 significant
# digits, so a bf16 logit of size <= 4 is off by <= ~0.016 and a sigmoid (slope <= 0.25) moves the score
# by <= ~0.004; different attention kernels (vLLM's FlashAttention vs transformers' SDPA) and
# accumulation order add as much again. Measured on an H200 (torch 2.11, transformers 5.17): a random
# Qwen3-Reranker-0.6B-shaped model (28 layers), 200 pairs, bf16 vs fp32 through transformers: max
# difference 0.0065 on the sigmoid score, correlation 0.9999. A broken server (constant 0.5, scores of
# another model, no activation) is off by far more than 0.02.
DEFAULT_TOLERANCE = 0.02
# Below this Pearson correlation the served scores do not rank pairs the way the model does.
MIN_CORRELATION = 0.9
# Served scores that rank pairs like the model (at least this correlation) and scatter around its scores
# with no shift are rounding along two code paths, which grows with depth: a 36-layer 4B-shaped model in
# bf16 on an H200 scattered up to 0.105 (mean 0.024) at correlation 0.989 (tests/fixtures/gpu-h200-bypass).
RANKS_AGREE_CORRELATION = 0.98
# Correlation is judged only when the model's scores spread over at least this many tolerances;
# with a flatter spread, rounding alone can scramble the order.
CORRELATION_NEEDS_SPREAD_TOLERANCES = 4.0


def sigmoid(x: float) -> float:
    # Written in two branches so a large |x| never overflows math.exp.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


ACTIVATIONS = {"sigmoid": sigmoid, "identity": lambda x: x}


@dataclass(frozen=True, slots=True)
class Activation:
    name: str | None  # "sigmoid" | "identity" | None when vLLM would not score this model
    why: str  # one line, from the config


def expected_activation(config: Mapping[str, Any]) -> Activation:
    """The activation vLLM's score/rerank applies to this model's logit (see the module doc)."""
    num_labels = config.get("num_labels")
    if isinstance(num_labels, int) and num_labels != 1:
        return Activation(None, f"num_labels={num_labels}: vLLM scores only num_labels == 1 classifiers")
    problem_type = config.get("problem_type")
    if problem_type == "regression":
        return Activation("identity", "problem_type=regression: vLLM serves the raw logit")
    if problem_type in ("single_label_classification", "multi_label_classification"):
        return Activation("sigmoid", f"problem_type={problem_type} with one label: vLLM applies sigmoid")
    function_name = None
    st = config.get("sentence_transformers")
    if isinstance(st, Mapping) and st.get("activation_fn"):
        function_name = str(st["activation_fn"])
    elif config.get("sbert_ce_default_activation_function"):
        function_name = str(config["sbert_ce_default_activation_function"])
    if function_name is not None:
        short = function_name.rsplit(".", 1)[-1]
        if short == "Identity":
            return Activation("identity", f"activation_fn {short}: vLLM serves the raw logit")
        if short in ("Sigmoid", "Softmax"):
            return Activation("sigmoid", f"activation_fn {short} with one label: vLLM applies sigmoid")
        return Activation(None, f"activation_fn {function_name}: not one rerank-doctor can reproduce")
    return Activation("sigmoid", "num_labels=1 classifier: vLLM applies sigmoid to the logit")


def apply(activation: str, logits: Sequence[float]) -> list[float]:
    fn = ACTIVATIONS[activation]
    return [fn(x) for x in logits]


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson correlation; None with fewer than 2 values or when either side is constant."""
    n = len(xs)
    if n < 2 or n != len(ys):
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / math.sqrt(sxx * syy)


# What `ScoreAgreement.problem` can say, worst first.
CONSTANT = "constant"  # the server gives (nearly) the same score to every pair; the model does not
UNCORRELATED = "uncorrelated"  # the server ranks pairs differently from the model
ACTIVATION = "activation"  # the server's scores are the model's, under another activation
BEYOND_TOLERANCE = "beyond_tolerance"  # same order, but farther apart than bf16/fp32 differences explain


@dataclass(frozen=True, slots=True)
class ScoreAgreement:
    pairs: int
    tolerance: float  # absolute, on the served score's scale
    activation: str  # the activation applied to the direct logits before comparing
    max_abs_diff: float
    mean_abs_diff: float
    mean_signed_diff: float  # served minus direct, averaged: near 0 for rounding scatter, not for a shift
    pearson: float | None
    served_min: float
    served_max: float
    served_spread: float  # max - min of the served scores
    direct_spread: float  # max - min of the direct scores (after the activation)
    agree: bool
    problem: str | None  # one of the constants above; None when they agree
    matches_activation: str | None  # when problem == ACTIVATION: the activation the server seems to apply

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def one_line(self) -> str:
        corr = f"{self.pearson:.4f}" if self.pearson is not None else "n/a"
        return (
            f"{self.pairs} pairs: max |served - direct| {self.max_abs_diff:.3g} "
            f"(tolerance {self.tolerance:g}), "
            f"correlation {corr}, served scores {self.served_min:.4g}..{self.served_max:.4g} "
            f"(spread {self.served_spread:.3g}; model spread {self.direct_spread:.3g})"
        )


def _diffs(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    diffs = [abs(x - y) for x, y in zip(a, b, strict=True)]
    return max(diffs), sum(diffs) / len(diffs)


def compare_scores(
    direct_logits: Sequence[float],
    served: Sequence[float],
    activation: str = "sigmoid",
    tolerance: float = DEFAULT_TOLERANCE,
    direct_are_scores: bool = False,
) -> ScoreAgreement:
    """Served scores vs the model's own, pair by pair (same order, same length, at least one pair).

    `direct_logits` are raw logits, put through `activation` first, unless `direct_are_scores` (vLLM's
    offline `LLM.score` already applied it).
    """
    if not served or len(served) != len(direct_logits):
        raise ValueError(
            f"need the same non-zero number of scores (direct {len(direct_logits)}, served {len(served)})"
        )
    direct = list(direct_logits) if direct_are_scores else apply(activation, direct_logits)
    max_diff, mean_diff = _diffs(direct, served)
    corr = pearson(direct, served)
    served_spread = max(served) - min(served)
    direct_spread = max(direct) - min(direct)
    problem: str | None = None
    matches: str | None = None
    if served_spread < tolerance / 10 and direct_spread >= tolerance:
        problem = CONSTANT
    elif (
        len(served) >= 3
        and direct_spread >= CORRELATION_NEEDS_SPREAD_TOLERANCES * tolerance
        and (corr is None or corr < MIN_CORRELATION)
    ):
        problem = UNCORRELATED
    elif max_diff > tolerance:
        problem = BEYOND_TOLERANCE
        if not direct_are_scores:
            # Same model, other activation (a config that says regression, a server-side override)?
            for name in ACTIVATIONS:
                if name != activation and _diffs(apply(name, direct_logits), served)[0] <= tolerance:
                    problem, matches = ACTIVATION, name
                    break
    return ScoreAgreement(
        pairs=len(served),
        tolerance=tolerance,
        activation="none (vLLM scores)" if direct_are_scores else activation,
        max_abs_diff=max_diff,
        mean_abs_diff=mean_diff,
        mean_signed_diff=sum(y - x for x, y in zip(direct, served, strict=True)) / len(served),
        pearson=corr,
        served_min=min(served),
        served_max=max(served),
        served_spread=served_spread,
        direct_spread=direct_spread,
        agree=problem is None,
        problem=problem,
        matches_activation=matches,
    )
