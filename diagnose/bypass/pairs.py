"""The (query, document) pairs the bypass scores on both paths, and how they are cut into batches.

Pairs come from a JSON file the user writes, or are made up deterministically (`--synthetic N`). A
batch is up to `batch_size` consecutive pairs; the direct run scores one batch per model call and the
served run sends one HTTP call per batch (per query run of it, on a rerank endpoint), so both sides
see the same batch size.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.words import pseudo_text

PAIRS_SHAPE = (
    'a JSON list of {"query": "...", "document": "..."} or {"query": "...", "documents": ["...", ...]}'
)

# Synthetic traffic: one query with this many documents, as a reranker usually sees it; the default
# --batch-size is the same, so by default a batch is exactly one rerank call.
SYNTHETIC_DOCS_PER_QUERY = 20
SYNTHETIC_QUERY_WORDS = 8
SYNTHETIC_DOC_WORDS = 60
# Above this the bypass stops being a quick check; ask for fewer.
MAX_PAIRS = 100_000


@dataclass(frozen=True, slots=True)
class Pair:
    query: str
    document: str


def _bad(path: Path, what: str) -> DoctorError:
    return DoctorError(f"{path}: {what}", f"--pairs takes {PAIRS_SHAPE}", ExitStatus.BAD_INPUT)


def parse_pairs(data: object, path: Path) -> list[Pair]:
    """The pairs in an already-decoded JSON document; DoctorError (one line, the expected shape) if wrong."""
    if not isinstance(data, list):
        raise _bad(path, f"expected a JSON list, got a JSON {type(data).__name__}")
    pairs: list[Pair] = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("query"), str):
            raise _bad(path, f'item {i} is not an object with a string "query"')
        query = item["query"]
        if "document" in item and isinstance(item["document"], str):
            pairs.append(Pair(query, item["document"]))
        elif "documents" in item and isinstance(item["documents"], list):
            docs = item["documents"]
            if not docs or not all(isinstance(d, str) for d in docs):
                raise _bad(path, f'item {i} has "documents" that is not a non-empty list of strings')
            pairs.extend(Pair(query, d) for d in docs)
        else:
            raise _bad(path, f'item {i} has neither a string "document" nor a list "documents"')
    if not pairs:
        raise _bad(path, "no pairs in it")
    if len(pairs) > MAX_PAIRS:
        raise _bad(path, f"{len(pairs)} pairs is more than the {MAX_PAIRS} a bypass check scores")
    return pairs


def load_pairs(path: Path | str) -> list[Pair]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DoctorError(
            f"no pairs file at {path}", "pass an existing --pairs FILE", ExitStatus.BAD_INPUT
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise _bad(path, f"cannot be read as UTF-8 text ({err})") from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise _bad(path, f"not JSON ({err})") from None
    except RecursionError:  # `[[[[...` nested past Python's limit: bad input, not a bug
        raise _bad(path, "nested too deeply to be a list of pairs") from None
    return parse_pairs(data, path)


def synthetic_pairs(n: int, seed: int = 0) -> list[Pair]:
    """`n` pseudo-word pairs: a new query every SYNTHETIC_DOCS_PER_QUERY documents; same n, same pairs.

    The words come from the lab's syllables (diagnose/words.py), which its tokenizer was trained
    on, so they split into a few tokens each as real words do.
    """
    if not 1 <= n <= MAX_PAIRS:
        raise DoctorError(
            f"--synthetic {n} is out of range",
            f"use 1 to {MAX_PAIRS} pairs (e.g. --synthetic 200)",
            ExitStatus.USAGE,
        )
    rng = random.Random(seed)
    pairs: list[Pair] = []
    query = ""
    for i in range(n):
        if i % SYNTHETIC_DOCS_PER_QUERY == 0:
            query = pseudo_text(SYNTHETIC_QUERY_WORDS, rng)
        pairs.append(Pair(query, pseudo_text(SYNTHETIC_DOC_WORDS, rng)))
    return pairs


def batches_of(pairs: Sequence[Pair], batch_size: int) -> list[list[Pair]]:
    if batch_size < 1:
        raise DoctorError(
            f"--batch-size {batch_size} is below 1", "use e.g. --batch-size 20", ExitStatus.USAGE
        )
    return [list(pairs[i : i + batch_size]) for i in range(0, len(pairs), batch_size)]


def query_runs(batch: Sequence[Pair]) -> list[tuple[str, list[str]]]:
    """Consecutive pairs that share a query, as (query, documents): one rerank call each."""
    runs: list[tuple[str, list[str]]] = []
    for pair in batch:
        if runs and runs[-1][0] == pair.query:
            runs[-1][1].append(pair.document)
        else:
            runs.append((pair.query, [pair.document]))
    return runs
