"""A transformers scoring loop over the very pairs `rerank-doctor stress` sends: a real reranker
workload for the GPU (NVML sees it like any other), and the yardstick the bypass compares with.

Run ON the GPU machine:
    python3 tests/gpu/hf_score.py run --model /tmp/m4b --docs 20 --words 300 --seconds 30 --out X.json
    python3 tests/gpu/hf_score.py vllm --url http://127.0.0.1:8000 --model-name NAME --out V.json
    python3 tests/gpu/hf_score.py run ... --compare V.json     # also score V.json's pairs, report agreement
    python3 tests/gpu/hf_score.py pairs --distinct 32 --out P.json  # `rerank-doctor bypass --pairs` file

`run` pre-tokenizes the pairs (query, document) exactly as vLLM's rerank does for a plain seq-cls model
(tokenizer(query, document)), then times only the forward passes, synchronized, in batches of --batch
pairs. `vllm` posts the first --calls bodies to /v1/rerank and keeps the answers, so scores can be
compared on identical pairs (vLLM reports sigmoid(logit) for a one-label classifier).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from diagnose.stress.bodies import BodySpec, build_bodies
from diagnose.stress.config import IntRange


def pairs_of(docs: int, words: int, query_words: int, distinct: int, seed: int, model: str) -> list[dict]:
    spec = BodySpec(
        docs=IntRange(docs, docs),
        words=IntRange(words, words),
        query_words=query_words,
        distinct=distinct,
        seed=seed,
    )
    return [json.loads(b.data) for b in build_bodies(spec, "/v1/rerank", model)]


def cmd_vllm(a: argparse.Namespace) -> int:
    bodies = pairs_of(a.docs, a.words, a.query_words, a.calls, a.seed, a.model_name)
    answers = []
    for body in bodies[: a.calls]:
        req = urllib.request.Request(
            a.url.rstrip("/") + "/v1/rerank",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            answers.append({"body": body, "answer": json.loads(resp.read())})
    Path(a.out).write_text(json.dumps(answers) + "\n")
    print("vllm answers", len(answers))
    return 0


def cmd_pairs(a: argparse.Namespace) -> int:
    """The first --distinct bodies stress client 0 (seed 0) sends, as [{"query", "documents"}]."""
    bodies = pairs_of(a.docs, a.words, a.query_words, a.distinct, a.seed, "m")
    Path(a.out).write_text(
        json.dumps([{"query": b["query"], "documents": b["documents"]} for b in bodies]) + "\n"
    )
    print("pairs", sum(len(b["documents"]) for b in bodies))
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    t_load = time.time()
    tok = AutoTokenizer.from_pretrained(a.model)
    model = (
        AutoModelForSequenceClassification.from_pretrained(a.model, dtype=torch.bfloat16).to("cuda").eval()
    )
    load_s = time.time() - t_load
    bodies = pairs_of(a.docs, a.words, a.query_words, a.distinct, a.seed, "m")
    pairs = [(b["query"], d) for b in bodies for d in b["documents"]]
    t_tok = time.time()
    batches = []
    tokens = 0
    for i in range(0, len(pairs), a.batch):
        chunk = pairs[i : i + a.batch]
        enc = tok([q for q, _ in chunk], [d for _, d in chunk], padding=True, return_tensors="pt")
        tokens += int(enc["attention_mask"].sum())
        batches.append({k: v.to("cuda") for k, v in enc.items()})
    tok_s = time.time() - t_tok
    tokens_per_pair = tokens / len(pairs)
    with torch.inference_mode():
        model(**batches[0])  # warm-up: kernels chosen, memory pooled
        torch.cuda.synchronize()
        done = 0
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < a.seconds:
            b = batches[n % len(batches)]
            model(**b)
            done += int(b["input_ids"].shape[0])
            n += 1
            if n % 8 == 0:
                torch.cuda.synchronize()
        torch.cuda.synchronize()
        el = time.perf_counter() - t0
    res: dict = {
        "what": "transformers forward passes only (pre-tokenized), bf16, cuda, synchronized",
        "model": a.model,
        "batch_pairs": a.batch,
        "pairs": done,
        "elapsed_s": round(el, 3),
        "pairs_per_s": round(done / el, 1),
        "tokens_per_pair": round(tokens_per_pair, 1),
        "tokens_per_s": round(done * tokens_per_pair / el),
        "model_load_s": round(load_s, 1),
        "tokenize_s_for_all_pairs": round(tok_s, 2),
        "tokenized_pairs": len(pairs),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0),
    }
    if a.compare:
        got = json.loads(Path(a.compare).read_text())
        diffs = []
        for item in got:
            body = item["body"]
            enc = tok(
                [body["query"]] * len(body["documents"]), body["documents"], padding=True, return_tensors="pt"
            )
            with torch.inference_mode():
                logits = (
                    model(**{k: v.to("cuda") for k, v in enc.items()}).logits.float().squeeze(-1).tolist()
                )
            vllm_scores = {r["index"]: r["relevance_score"] for r in item["answer"]["results"]}
            for i, logit in enumerate(logits):
                hf = 1.0 / (1.0 + math.exp(-logit))
                diffs.append({"hf_logit": logit, "hf_sigmoid": hf, "vllm": vllm_scores.get(i)})
        abs_d = [abs(d["hf_sigmoid"] - d["vllm"]) for d in diffs if d["vllm"] is not None]
        res["score_agreement"] = {
            "pairs": len(abs_d),
            "max_abs_diff": max(abs_d) if abs_d else None,
            "mean_abs_diff": sum(abs_d) / len(abs_d) if abs_d else None,
            "first": diffs[:5],
        }
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "score_agreement"}))
    if "score_agreement" in res:
        print("score agreement:", {k: v for k, v in res["score_agreement"].items() if k != "first"})
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("run", "vllm", "pairs"):
        p = sub.add_parser(name)
        p.add_argument("--docs", type=int, default=20)
        p.add_argument("--words", type=int, default=300)
        p.add_argument("--query-words", type=int, default=12)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", required=True)
    run = sub.choices["run"]
    run.add_argument("--model", required=True)
    run.add_argument("--seconds", type=float, default=30)
    run.add_argument("--batch", type=int, default=32)
    run.add_argument("--distinct", type=int, default=16)
    run.add_argument("--compare", default=None)
    v = sub.choices["vllm"]
    v.add_argument("--url", default="http://127.0.0.1:8000")
    v.add_argument("--model-name", required=True)
    v.add_argument("--calls", type=int, default=2)
    sub.choices["pairs"].add_argument("--distinct", type=int, default=32)
    a = ap.parse_args(argv)
    return {"run": cmd_run, "vllm": cmd_vllm, "pairs": cmd_pairs}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
