"""Writes a random-weight Qwen3ForSequenceClassification with a real Qwen3-Reranker shape (seq-cls form).

Run ON the GPU machine (it needs torch and transformers, which rerank-doctor does not depend on):
    python3 tests/gpu/gen_model.py --shape 4b --tok .gpu-carry/tok --out /tmp/m4b

The shapes are Qwen3-Reranker-0.6B's and -4B's (hidden size, layers, heads, KV heads, head_dim, MLP width,
the real 151,669-row embedding); `num_labels=1` is the form vLLM serves Qwen3-Reranker in. Weights are
torch's random init with a fixed seed, so the scores mean nothing, but the compute, memory and CPU costs
are those of the real shape. The tokenizer is the carried one (tests/gpu/mk_tok.py), not Qwen's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

SHAPES = {
    # Qwen3-Reranker-0.6B (Qwen3-0.6B): 595.8 M parameters in this seq-cls form
    "0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16),
    # Qwen3-Reranker-4B (Qwen3-4B): about 4.0 B parameters in this seq-cls form
    "4b": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--tok", type=Path, required=True, help="tokenizer folder to copy in")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    marker = args.out / "gen_model.json"
    if marker.is_file():
        print("already built:", marker.read_text().strip())
        return 0

    import torch
    from transformers import Qwen3Config, Qwen3ForSequenceClassification

    t0 = time.time()
    kw = dict(
        vocab_size=151669,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
        rms_norm_eps=1e-6,
        hidden_act="silu",
        attention_bias=False,
        tie_word_embeddings=False,
        num_labels=1,
        pad_token_id=1,
        eos_token_id=3,
        bos_token_id=None,
        **SHAPES[args.shape],
    )
    cfg = Qwen3Config(**kw)
    try:  # transformers 5 keeps rope settings in rope_parameters; 4.x in rope_theta
        cfg.rope_parameters = {"rope_type": "default", "rope_theta": 1000000.0}
    except Exception:
        cfg.rope_theta = 1000000.0
    cfg.architectures = ["Qwen3ForSequenceClassification"]
    cfg.torch_dtype = "bfloat16"
    torch.manual_seed(args.seed)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen3ForSequenceClassification(cfg)
    model = model.to(torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(str(args.out), safe_serialization=True)
    for f in args.tok.iterdir():
        shutil.copy(f, args.out)
    del model
    info = {
        "shape": args.shape,
        "parameters": params,
        "seed": args.seed,
        "seconds": round(time.time() - t0, 1),
    }
    marker.write_text(json.dumps(info) + "\n")
    print("built", args.out, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
