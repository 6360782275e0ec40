"""Request bodies shaped like real rerank traffic: one query plus N documents of M words.

Bodies are built once, before the clock starts, and serialized to bytes, so the generator spends no
time in `json.dumps` while it is supposed to be sending on schedule. The pool holds `distinct_bodies`
different bodies and cycles through them: with too few, repeated (query, document) pairs hit vLLM's
prefix cache and flatter the server. Text is random pseudo-words from a fixed vocabulary (seeded), so
token counts are realistic (~1-2 tokens per word) and no two documents share a prefix by accident.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.stress.config import SCORE_ENDPOINTS, IntRange
from diagnose.words import vocabulary

# The Qwen3-Reranker prompt format (as in vLLM's examples/pooling/score qwen3 reranker example):
# the query side carries the system prompt and instruction, each document side the assistant suffix.
QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"

# Above this the pool would not fit comfortably in memory next to a local vLLM; ask for fewer bodies.
MAX_POOL_BYTES = 512 * 1024 * 1024
_BYTES_PER_WORD = 8  # a pseudo-word is 4-9 letters plus a space, plus JSON quoting per document


def qwen3_query(query: str, instruction: str | None = None) -> str:
    return f"{QWEN3_PREFIX}<Instruct>: {instruction or QWEN3_DEFAULT_INSTRUCTION}\n<Query>: {query}\n"


def qwen3_document(document: str) -> str:
    return f"<Document>: {document}{QWEN3_SUFFIX}"


def payload(endpoint: str, model: str, query: str, documents: list[str], top_n: int | None = None) -> dict:
    """The JSON body vLLM expects: rerank {model, query, documents, top_n?}; score {model, text_1, text_2}."""
    if endpoint in SCORE_ENDPOINTS:
        return {"model": model, "text_1": query, "text_2": documents}
    body: dict = {"model": model, "query": query, "documents": documents}
    if top_n is not None:
        body["top_n"] = top_n
    return body


@dataclass(frozen=True, slots=True)
class Body:
    index: int  # position in the pool
    data: bytes  # the serialized JSON, sent as is
    docs: int  # documents in this call = engine requests it becomes in vLLM
    doc_words: int  # words over all its documents (before any template)
    query_words: int


@dataclass(frozen=True, slots=True)
class BodySpec:
    docs: IntRange
    words: IntRange
    query_words: int = 12
    distinct: int = 1024
    qwen3_template: bool = False
    instruction: str | None = None
    top_n: int | None = None
    seed: int = 0

    def estimated_bytes(self) -> int:
        mean_docs = (self.docs.low + self.docs.high) / 2
        mean_words = (self.words.low + self.words.high) / 2
        return int(self.distinct * (mean_docs * (mean_words * _BYTES_PER_WORD + 16) + 200))


def build_bodies(spec: BodySpec, endpoint: str, model: str) -> list[Body]:
    """`spec.distinct` different bodies, drawn with `random.Random(spec.seed)` (same seed, same bodies)."""
    if spec.estimated_bytes() > MAX_POOL_BYTES:
        raise DoctorError(
            f"{spec.distinct} distinct bodies of {spec.docs} docs x {spec.words} words would take about "
            f"{spec.estimated_bytes() // 2**20} MiB",
            "lower --distinct-bodies (bodies are cycled) or --docs/--words",
            ExitStatus.USAGE,
        )
    vocab = vocabulary()
    rng = random.Random(spec.seed)
    bodies: list[Body] = []
    for index in range(spec.distinct):
        query = " ".join(rng.choices(vocab, k=spec.query_words))
        n_docs = rng.randint(spec.docs.low, spec.docs.high)
        documents: list[str] = []
        doc_words = 0
        for _ in range(n_docs):
            n_words = rng.randint(spec.words.low, spec.words.high)
            doc_words += n_words
            documents.append(" ".join(rng.choices(vocab, k=n_words)))
        if spec.qwen3_template:
            query = qwen3_query(query, spec.instruction)
            documents = [qwen3_document(d) for d in documents]
        body = payload(endpoint, model, query, documents, spec.top_n)
        data = json.dumps(body, separators=(",", ":")).encode()
        bodies.append(
            Body(index=index, data=data, docs=n_docs, doc_words=doc_words, query_words=spec.query_words)
        )
    return bodies
