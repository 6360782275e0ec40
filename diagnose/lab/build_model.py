"""Builds the lab's tiny reranker: a random-weight `Qwen3ForSequenceClassification` and a BPE tokenizer.

Run by the LAB venv's python (it needs torch, transformers and tokenizers, which rerank-doctor itself does
not depend on), never imported by the main package:

    <lab>/venv/bin/python build_model.py --out <lab>/model
    <lab>/venv/bin/python build_model.py --out <lab>/model-generate --generative

No model hub is reachable from the places the lab runs, so everything is made here, deterministically
(fixed seeds, generated text). The scores it gives are meaningless; what it exercises is real: vLLM's
engine, scheduler, KV cache, HTTP server and metrics. Kept small so it builds in seconds on 2 cores.

`--generative` builds the same shape as a `Qwen3ForCausalLM` (served with vLLM's default runner): the
scenario tests use it to show what scoring through /v1/completions looks like from /metrics
(generation_tokens_total grows), which no pooling model can do.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

# Bump when the model or tokenizer recipe changes, so an old build is redone rather than reused.
RECIPE_VERSION = 1
MARKER = "lab-model.json"

HIDDEN_SIZE = 256
NUM_LAYERS = 4
NUM_HEADS = 4
NUM_KV_HEADS = 2
INTERMEDIATE_SIZE = 512
VOCAB_SIZE = 4096
# Comfortably above the lab server's --max-model-len 2048, so the flag is what limits a request.
MAX_POSITIONS = 8192
SEED = 1234

SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>"]
SYLLABLES = [
    "ka", "lo", "mi", "ren", "tas", "vo", "qu", "ber", "sin", "dal", "po", "ne", "rak", "ti", "mo",
    "sha", "ul", "gra", "fe", "zo", "lin", "ho", "cre", "ma", "dor", "ip", "san", "wel", "tru", "ex",
]  # fmt: skip


def pseudo_words(n: int, seed: int) -> list[str]:
    """Deterministic made-up words (the lab's traffic generator uses the same syllables)."""
    rng = random.Random(seed)
    return ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(n)]


def training_text(lines: int, words_per_line: int) -> list[str]:
    words = pseudo_words(lines * words_per_line, SEED)
    return [" ".join(words[i : i + words_per_line]) for i in range(0, len(words), words_per_line)]


def build_tokenizer(out: Path) -> int:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_text(2000, 40), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|pad|>",
        model_max_length=MAX_POSITIONS,
    )
    fast.save_pretrained(str(out))
    return int(tok.get_vocab_size())


def build_model(
    out: Path, vocab_size: int, pad_token_id: int, eos_token_id: int, generative: bool = False
) -> None:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3ForSequenceClassification

    torch.manual_seed(SEED)
    config = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=INTERMEDIATE_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_KV_HEADS,
        head_dim=HIDDEN_SIZE // NUM_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        num_labels=1,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        bos_token_id=eos_token_id,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    if generative:
        config.architectures = ["Qwen3ForCausalLM"]
        model: torch.nn.Module = Qwen3ForCausalLM(config).eval()
    else:
        config.architectures = ["Qwen3ForSequenceClassification"]
        model = Qwen3ForSequenceClassification(config).eval()
    model.save_pretrained(str(out), safe_serialization=True)


def is_built(out: Path, generative: bool = False) -> bool:
    try:
        marker = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return (
        marker.get("recipe_version") == RECIPE_VERSION
        and bool(marker.get("generative", False)) == generative
        and (out / "config.json").is_file()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the lab's tiny random-weight reranker.")
    parser.add_argument("--out", required=True, type=Path, help="model directory to write")
    parser.add_argument("--force", action="store_true", help="rebuild even if a build is there")
    parser.add_argument(
        "--generative", action="store_true", help="a Qwen3ForCausalLM of the same shape (not a reranker)"
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    if is_built(out, args.generative) and not args.force:
        print(f"model already built at {out}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    # The marker goes last: a build interrupted half-way has none and is redone next time.
    (out / MARKER).unlink(missing_ok=True)
    vocab_size = build_tokenizer(out)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    build_model(out, vocab_size, tokenizer.pad_token_id, tokenizer.eos_token_id, args.generative)
    marker = {"recipe_version": RECIPE_VERSION, "vocab_size": vocab_size, "seed": SEED}
    if args.generative:
        marker["generative"] = True
    (out / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    kind = "generative model" if args.generative else "model"
    print(f"built {kind} at {out} (vocab {vocab_size}, hidden {HIDDEN_SIZE}, {NUM_LAYERS} layers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
