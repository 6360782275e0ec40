"""The served path: the same pairs POSTed to a running vLLM's /v1/rerank (or /score), batch by batch.

One call in flight at a time, over one keep-alive session, so a batch's latency is the server's answer
time for exactly that batch — comparable to one direct model call on the same pairs. A batch whose pairs
have different queries becomes one rerank call per query run (rerank takes one query), or one N->N
/score call (`text_1` and `text_2` lists of the same length).

The HTTP session is injected (`session=None` -> a requests.Session), so tests can pass a fake.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from diagnose.bypass.pairs import Pair, query_runs
from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.stress.bodies import payload
from diagnose.stress.config import SCORE_ENDPOINTS, Target

CONTROL_TIMEOUT_S = 10.0


@dataclass(slots=True)
class ServedScores:
    model: str
    scores: list[float]  # one per pair, in the pairs' order
    batch_s: list[float]  # one per batch
    batch_pairs: list[int]
    http_calls: int


def _unreachable(target: Target, err: Exception) -> DoctorError:
    return DoctorError(
        f"cannot reach {target.base_url} ({type(err).__name__})",
        "start the server, or point --url at it (e.g. --url http://127.0.0.1:8000)",
        ExitStatus.UNREACHABLE,
    )


def _server_message(resp: Any) -> str:
    try:
        body = resp.json()
    except ValueError:
        return (resp.text or "").strip().splitlines()[0][:200] if resp.text else ""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"]).splitlines()[0][:200]
        for key in ("message", "detail"):
            if body.get(key):
                return str(body[key]).splitlines()[0][:200]
    return ""


def _http_error(target: Target, what: str, resp: Any) -> DoctorError:
    status = resp.status_code
    message = _server_message(resp)
    said = f": {message}" if message else ""
    if status in (401, 403):
        return DoctorError(
            f"{what} was refused ({status}){said}",
            "pass the server's key with --api-key",
            ExitStatus.UNREACHABLE,
        )
    if status == 404:
        return DoctorError(
            f"{what} answered 404{said}",
            "the server does not serve that endpoint: try --endpoint /score or /v1/rerank, and check --url",
            ExitStatus.UNREACHABLE,
        )
    return DoctorError(
        f"{what} answered {status}{said}",
        "check that the server runs this model with --runner pooling and that the pairs fit its "
        "--max-model-len",
        ExitStatus.UNREACHABLE,
    )


def discover_model(target: Target, session: Any, headers: dict[str, str]) -> str:
    """The first id of GET /v1/models: the name the server serves the model under."""
    import requests

    what = f"GET {target.base_url}/v1/models"
    try:
        resp = session.get(f"{target.base_url}/v1/models", headers=headers, timeout=CONTROL_TIMEOUT_S)
    except requests.RequestException as err:
        raise _unreachable(target, err) from None
    if resp.status_code != 200:
        raise _http_error(target, what, resp)
    try:
        data = resp.json().get("data") or []
        return str(data[0]["id"])
    except (ValueError, AttributeError, IndexError, KeyError, TypeError):
        raise DoctorError(
            f"{what} did not list a model",
            "pass the served model name with --served-model",
            ExitStatus.UNREACHABLE,
        ) from None


def _bodies(endpoint: str, model: str, batch: Sequence[Pair]) -> list[tuple[dict[str, Any], int]]:
    """(JSON body, pairs in it) for the calls one batch becomes."""
    runs = query_runs(batch)
    if len(runs) > 1 and endpoint in SCORE_ENDPOINTS:
        body = {"model": model, "text_1": [p.query for p in batch], "text_2": [p.document for p in batch]}
        return [(body, len(batch))]
    return [(payload(endpoint, model, query, docs), len(docs)) for query, docs in runs]


def parse_scores(endpoint: str, body: Any, expected: int) -> list[float]:
    """Scores in document order, from rerank's `results[].relevance_score` or score's `data[].score`."""
    key, items_key = ("score", "data") if endpoint in SCORE_ENDPOINTS else ("relevance_score", "results")
    items = body.get(items_key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ValueError(f"no {items_key!r} list in the answer")
    scores: list[float | None] = [None] * expected
    for item in items:
        index = item.get("index")
        if not isinstance(index, int) or not 0 <= index < expected:
            raise ValueError(f"an item has index {index!r}, outside 0..{expected - 1}")
        scores[index] = float(item[key])
    missing = [i for i, s in enumerate(scores) if s is None]
    if missing:
        raise ValueError(f"{len(missing)} of {expected} documents have no score (top_n set by the server?)")
    return [s for s in scores if s is not None]


def score_served(
    target: Target,
    batches: Sequence[Sequence[Pair]],
    model: str | None = None,
    api_key: str | None = None,
    timeout_s: float = 60.0,
    warmup_batches: Sequence[Sequence[Pair]] = (),
    session: Any = None,
) -> ServedScores:
    """POSTs each batch (warm-up first, not timed) and returns the scores and per-batch seconds."""
    import requests

    session = session if session is not None else requests.Session()
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    model = model or discover_model(target, session, headers)
    url = f"{target.base_url}{target.endpoint}"
    what = f"POST {url}"

    def post_batch(batch: Sequence[Pair]) -> tuple[list[float], float, int]:
        scores: list[float] = []
        calls = 0
        t0 = time.perf_counter()
        for body, n in _bodies(target.endpoint, model, batch):
            try:
                resp = session.post(url, json=body, headers=headers, timeout=timeout_s)
            except requests.RequestException as err:
                raise _unreachable(target, err) from None
            calls += 1
            if resp.status_code != 200:
                raise _http_error(target, what, resp)
            try:
                scores.extend(parse_scores(target.endpoint, resp.json(), n))
            except ValueError as err:
                raise DoctorError(
                    f"{what} gave an answer rerank-doctor cannot read: {err}",
                    "point --url at a vLLM server and --endpoint at /v1/rerank or /score",
                    ExitStatus.UNREACHABLE,
                ) from None
        return scores, time.perf_counter() - t0, calls

    for batch in warmup_batches:
        post_batch(batch)
    all_scores: list[float] = []
    batch_s: list[float] = []
    http_calls = 0
    for batch in batches:
        scores, seconds, calls = post_batch(batch)
        all_scores.extend(scores)
        batch_s.append(seconds)
        http_calls += calls
    return ServedScores(model, all_scores, batch_s, [len(b) for b in batches], http_calls)
