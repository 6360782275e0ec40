"""`run_bypass`: step 4 of the method — the same pairs on the model directly and through the server.

Order matters: the cheap checks (URL, model directory, bundle) run before anything loads, and the served
run goes first, so an unreachable server fails in a second instead of after a model load.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from diagnose.bypass.compare import DEFAULT_TOLERANCE, apply, compare_scores, expected_activation
from diagnose.bypass.direct import DEFAULT_WORKER_TIMEOUT_S, check_model_dir, run_worker, worker_python
from diagnose.bypass.pairs import Pair, batches_of, synthetic_pairs
from diagnose.bypass.report import (
    BypassReport,
    DirectRun,
    Overhead,
    ServedRun,
    StressServed,
    Timing,
    score_finding,
)
from diagnose.bypass.served import score_served
from diagnose.bypass.stress_bundle import read_stress
from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.report import Finding
from diagnose.stress.config import parse_target

ENGINES = ("transformers", "vllm")
DEVICES = ("cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
# Warm-up pairs come from another seed than --synthetic's, so the measured pairs meet a cold prefix cache.
WARMUP_SEED = 987_654
# Batches scored (and not timed) before the measured ones, on both paths. One was not enough on the H200:
# with a single warm-up batch, the first measured batches of 20 still took ~0.7-1 s against a 50 ms
# median (CUDA/cuBLAS lazy set-up for new shapes), which made p95 meaningless.
WARMUP_BATCHES = 3
SAMPLES = 5


def _samples(
    pairs: Sequence[Pair], direct_values: Sequence[float], direct_scores: Sequence[float] | None,
    served: Sequence[float] | None, values_are: str,
) -> list[dict[str, Any]]:  # fmt: skip
    out = []
    for i, pair in enumerate(pairs[:SAMPLES]):
        row: dict[str, Any] = {"query": pair.query[:60], "document": pair.document[:60]}
        row["direct_logit" if values_are == "logits" else "direct_vllm_score"] = direct_values[i]
        if direct_scores is not None and values_are == "logits":
            row["direct_score"] = direct_scores[i]
        row["served_score"] = served[i] if served is not None else None
        out.append(row)
    return out


def run_bypass(
    model_dir: Path | str,
    pairs: Sequence[Pair],
    *,
    url: str | None = None,
    endpoint: str | None = None,
    served_model: str | None = None,
    api_key: str | None = None,
    yes_really: bool = False,
    bundle: Path | str | None = None,
    batch_size: int = 20,
    device: str = "cpu",
    dtype: str = "auto",
    engine: str = "transformers",
    python: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    timeout_s: float = 60.0,
    worker_timeout_s: float = DEFAULT_WORKER_TIMEOUT_S,
    threads: int | None = None,
    lab_dir: Path | None = None,
    session: Any = None,
    progress: Callable[[str], None] | None = None,
) -> BypassReport:
    """Scores `pairs` directly and (with `url`) through the server; compares speed and scores.

    Raises DoctorError (one line with a fix) for a far-away or unreachable URL, a missing model
    directory, a missing stress.json, or a direct run that cannot load the model.
    """
    say = progress or (lambda _msg: None)
    if engine not in ENGINES or device not in DEVICES or dtype not in DTYPES:
        raise DoctorError(
            f"unknown engine/device/dtype {engine}/{device}/{dtype}",
            f"use --engine {'|'.join(ENGINES)}, --device {'|'.join(DEVICES)}, --dtype {'|'.join(DTYPES)}",
            ExitStatus.USAGE,
        )
    if not pairs:
        raise DoctorError("no pairs to score", "pass --pairs FILE or --synthetic N", ExitStatus.BAD_INPUT)
    if not tolerance > 0:
        raise DoctorError(
            f"--tolerance {tolerance} is not above 0", "use e.g. --tolerance 0.02", ExitStatus.USAGE
        )
    model_dir = Path(model_dir).expanduser()
    target = parse_target(url, endpoint, yes_really) if url else None
    config = check_model_dir(model_dir, engine)
    stress: StressServed | None = read_stress(bundle) if bundle else None
    interpreter = worker_python(python, engine, lab_dir)
    batches = batches_of(pairs, batch_size)
    warmup = [
        synthetic_pairs(min(batch_size, len(pairs)), seed=WARMUP_SEED + i) for i in range(WARMUP_BATCHES)
    ]

    served_run: ServedRun | None = None
    served_scores: list[float] | None = None
    if target is not None:
        say(f"scoring {len(pairs)} pairs through {target.base_url}{target.endpoint}")
        got = score_served(
            target, batches, model=served_model, api_key=api_key, timeout_s=timeout_s,
            warmup_batches=warmup, session=session,
        )  # fmt: skip
        served_scores = got.scores
        served_run = ServedRun(
            base_url=target.base_url,
            endpoint=target.endpoint,
            model=got.model,
            http_calls=got.http_calls,
            timing=Timing.of(got.batch_s, got.batch_pairs),
            batch_s=got.batch_s,
        )

    say(f"scoring {len(pairs)} pairs directly ({engine}, {device}) with {interpreter}")
    result = run_worker(
        interpreter,
        model_dir,
        batches,
        warmup,
        device,
        dtype,
        engine,
        timeout_s=worker_timeout_s,
        threads=threads,
    )
    batch_pairs = [len(b) for b in batches]
    direct = DirectRun(
        engine=engine,
        device=result.device,
        device_name=result.device_name,
        dtype=result.dtype,
        python=result.python,
        versions=result.versions,
        load_s=result.load_s,
        timing=Timing.of(result.batch_s, batch_pairs),
        forward_timing=Timing.of(result.forward_s, batch_pairs) if result.forward_s else None,
        torch_threads=result.torch_threads if result.device == "cpu" else None,
        batch_s=result.batch_s,
    )

    notes: list[str] = []
    facts = {**config, **result.config}
    act = expected_activation(facts)
    activation = act.name if result.values_are == "logits" else None
    direct_scores = None
    if activation is not None:
        direct_scores = apply(activation, result.values)
    elif result.values_are == "scores":
        direct_scores = list(result.values)

    agreement = None
    findings: list[Finding] = []
    if served_scores is not None:
        if result.values_are == "logits" and activation is None:
            notes.append(f"scores not compared: {act.why}")
        else:
            agreement = compare_scores(
                result.values,
                served_scores,
                activation=activation or "identity",
                tolerance=tolerance,
                direct_are_scores=result.values_are == "scores",
            )
            finding = score_finding(agreement, str(model_dir))
            if finding is not None:
                findings.append(finding)

    overhead: list[Overhead] = []
    direct_pps = direct.timing.pairs_per_s
    if direct_pps:
        if served_run is not None and served_run.timing.pairs_per_s:
            overhead.append(Overhead.of("url", served_run.timing.pairs_per_s, direct_pps))
        if stress is not None:
            overhead.append(Overhead.of("stress", stress.pairs_per_s, direct_pps))
            notes.append(
                f"the stress run's pairs/s was measured under its own load ({stress.mode or '?'} loop, "
                f"~{stress.docs_per_call_mean or 0:.0f} docs per call), the direct one batch by batch "
                f"(batch size {batch_size}): the overhead from stress.json compares throughput, not one call"
            )
    for o in overhead:
        if o.per_pair_ms < 0:
            notes.append(
                f"the server ({o.source}) scored pairs faster than the direct path: vLLM's kernels and "
                "batching beat a plain transformers forward here, so there is no serving overhead to find"
            )
    if engine == "vllm":
        notes.append("direct path = vLLM's offline engine: the overhead is the HTTP/API-server part only")
    if target is not None:
        notes.append(
            "one batch in flight at a time on both paths; served time includes HTTP, JSON and tokenization, "
            "direct time includes tokenization"
        )

    return BypassReport(
        model_dir=str(model_dir),
        pairs=len(pairs),
        batch_size=batch_size,
        direct=direct,
        served=served_run,
        stress=stress,
        activation=activation,
        activation_why=act.why
        if result.values_are == "logits"
        else "vLLM's offline scores are already activated",
        scores=agreement,
        overhead=overhead,
        findings=findings,
        samples=_samples(pairs, result.values, direct_scores, served_scores, result.values_are),
        notes=notes,
    )


def pairs_from(path: str | None, synthetic: int | None, seed: int = 0) -> list[Pair]:
    from diagnose.bypass.pairs import load_pairs

    if path is not None:
        return load_pairs(path)
    if synthetic is not None:
        return synthetic_pairs(synthetic, seed)
    raise DoctorError("no pairs given", "pass --pairs FILE or --synthetic N", ExitStatus.USAGE)
