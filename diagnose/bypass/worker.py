"""Scores (query, document) pairs on the model directly, outside any server: the bypass's measuring hand.

Run as a SCRIPT by a Python that has torch and transformers (the current interpreter when it has them,
else the lab venv's), never imported by the main package at import time:

    python worker.py REQUEST.json RESULT.json

It imports only the standard library at the top, torch/transformers (or vLLM) inside functions, and
nothing from `diagnose`, so it runs on any machine with torch + transformers (the H200 box with torch
2.11 and no vLLM included). The request says which model, device, dtype, engine and batches; the result
holds, per pair, the RAW classifier logit (transformers) or vLLM's score (already activated), and the
seconds each batch took. Library chatter goes to stderr; the result goes to its own file, so a warning
printed on stdout can never corrupt it.

Engines:
- "transformers": AutoTokenizer + AutoModelForSequenceClassification from the model directory, the pair
  tokenized as `tokenizer(query, document)` — what vLLM does for a cross-encoder without a score template.
- "vllm": `LLM(model=DIR, runner="pooling").score(queries, documents)` per batch (vLLM's offline path).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any

RESULT_VERSION = 1

# Config fields the main process needs to decide which activation vLLM applies to the logit
# (vllm/model_executor/layers/pooler/activations.py get_act_fn) and whether this is a seq-cls checkpoint.
CONFIG_FIELDS = (
    "architectures",
    "num_labels",
    "problem_type",
    "sentence_transformers",
    "sbert_ce_default_activation_function",
    "classifier_from_token",
    "method",
    "model_type",
    "torch_dtype",
    "dtype",
)


class WorkerError(Exception):
    """A failure the user can act on; `kind` lets the main process choose the exit status."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def config_facts(model_dir: str) -> dict[str, Any]:
    try:
        with open(os.path.join(model_dir, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError) as err:
        raise WorkerError("bad_model", f"cannot read {model_dir}/config.json: {err}") from None
    facts = {key: config.get(key) for key in CONFIG_FIELDS if key in config}
    if "num_labels" not in facts and isinstance(config.get("id2label"), dict):
        # transformers saves id2label, not num_labels; its length is the number of labels.
        facts["num_labels"] = len(config["id2label"])
    return facts


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("torch", "transformers", "vllm"):
        module = sys.modules.get(name)
        out[name] = getattr(module, "__version__", None) if module else None
    return out


def _sync(torch: Any, device: str) -> None:
    # CUDA kernels run asynchronously: without a sync the clock stops before the GPU is done.
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_transformers(request: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    device: str = request["device"]
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise WorkerError("no_device", "--device cuda was asked for but torch sees no CUDA GPU")
    dtype_name = request["dtype"]
    if dtype_name == "auto":
        dtype_name = "bfloat16" if device.startswith("cuda") else "float32"
    dtype = getattr(torch, dtype_name)
    if request.get("threads"):
        # On a small shared CPU (the 2-core lab next to a spin-waiting vLLM Worker) fewer threads can be
        # several times faster: torch's threads otherwise wait on each other for a busy core.
        torch.set_num_threads(int(request["threads"]))
    model_dir = request["model_dir"]

    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=dtype)
    if tokenizer.pad_token is None:
        # Batches need padding; a decoder-only tokenizer may have no pad token. The classifier finds
        # the last real token through config.pad_token_id, so both must agree.
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    # `.to(dtype)` as well: transformers before 4.56 ignores `dtype=` (it was `torch_dtype=` then).
    model = model.to(device=device, dtype=dtype).eval()
    _sync(torch, device)
    load_s = time.perf_counter() - t0

    def score_batch(pairs: list[list[str]]) -> tuple[list[float], float, float]:
        t_start = time.perf_counter()
        enc = tokenizer(
            [p[0] for p in pairs], [p[1] for p in pairs], padding=True, truncation=False, return_tensors="pt"
        )
        enc = {k: v.to(device) for k, v in enc.items()}
        _sync(torch, device)
        t_model = time.perf_counter()
        with torch.inference_mode():
            logits = model(**enc).logits
        _sync(torch, device)
        t_end = time.perf_counter()
        # Column 0: a reranker has one label. More labels are reported, not guessed at (see compare.py).
        values = logits.float()[:, 0].tolist()
        return values, t_end - t_start, t_end - t_model

    for batch in request.get("warmup_batches", []):
        score_batch(batch)
    logits: list[float] = []
    batch_s: list[float] = []
    forward_s: list[float] = []
    for batch in request["batches"]:
        values, total, fwd = score_batch(batch)
        logits.extend(values)
        batch_s.append(total)
        forward_s.append(fwd)
    return {
        "engine": "transformers",
        "values": logits,
        "values_are": "logits",
        "num_labels_seen": int(model.config.num_labels),
        "batch_s": batch_s,
        "forward_s": forward_s,
        "load_s": load_s,
        "dtype": dtype_name,
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        "torch_threads": torch.get_num_threads(),
    }


def run_vllm(request: dict[str, Any]) -> dict[str, Any]:
    try:
        from vllm import LLM
    except ImportError as err:
        raise WorkerError("no_vllm", f"vLLM does not import in {sys.executable}: {err}") from None

    t0 = time.perf_counter()
    kwargs: dict[str, Any] = {"model": request["model_dir"], "runner": "pooling"}
    if request["dtype"] != "auto":
        kwargs["dtype"] = request["dtype"]
    if request.get("max_model_len"):
        kwargs["max_model_len"] = request["max_model_len"]
    llm = LLM(**kwargs)
    load_s = time.perf_counter() - t0

    def score_batch(pairs: list[list[str]]) -> tuple[list[float], float]:
        t_start = time.perf_counter()
        outputs = llm.score([p[0] for p in pairs], [p[1] for p in pairs], use_tqdm=False)
        return [float(o.outputs.score) for o in outputs], time.perf_counter() - t_start

    for batch in request.get("warmup_batches", []):
        score_batch(batch)
    scores: list[float] = []
    batch_s: list[float] = []
    for batch in request["batches"]:
        values, total = score_batch(batch)
        scores.extend(values)
        batch_s.append(total)
    return {
        "engine": "vllm",
        "values": scores,
        "values_are": "scores",  # vLLM's pooler already applied its activation
        "batch_s": batch_s,
        "forward_s": None,
        "load_s": load_s,
        "dtype": request["dtype"],
        "device": request["device"],
        "device_name": None,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: worker.py REQUEST.json RESULT.json", file=sys.stderr)
        return 2
    request_path, result_path = argv[1], argv[2]
    with open(request_path) as f:
        request = json.load(f)
    # Nothing here may reach a model hub: the model is a local directory.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    result: dict[str, Any] = {"result_version": RESULT_VERSION, "python": sys.executable}
    status = 0
    try:
        result["config"] = config_facts(request["model_dir"])
        engine = request.get("engine", "transformers")
        result.update(run_vllm(request) if engine == "vllm" else run_transformers(request))
    except WorkerError as err:
        result["error"] = {"kind": err.kind, "message": err.message}
        status = 3
    except Exception as err:  # the model would not load or run: hand the reason back, not a traceback
        result["error"] = {"kind": "failed", "message": f"{type(err).__name__}: {err}".splitlines()[0][:500]}
        traceback.print_exc(file=sys.stderr)
        status = 3
    result["versions"] = _versions()
    with open(result_path, "w") as f:
        json.dump(result, f)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
