"""Builds the byte-level BPE tokenizer carried to the GPU machine (no model hub is reachable there).

Run HERE with a python that has `tokenizers` and `transformers` (the lab venv):
    PYTHONPATH=. /work/lab/venv/bin/python tests/gpu/mk_tok.py .gpu-carry/tok

It is trained on text drawn from the very vocabulary `rerank-doctor stress` sends (diagnose.words), so a
stress document of W words is about W tokens. (The tokenizer behind the tests/fixtures/gpu-h200-*
recordings was built from the stress vocabulary of commit f8b5576, then in diagnose/stress/bodies.py:
run this script against `git archive f8b5576 diagnose` to rebuild it byte for byte, md5 of
tokenizer.json b184dcf23b1152d32f6bd1538275674b.) Qwen's real
tokenizer would give ~1.3 tokens per English word; token counts in the fixtures come from vLLM's own
counters, never from this estimate. The special tokens keep the ids the model config expects
(pad <|endoftext|> = 1, eos <|im_end|> = 3), as in the 0.26 captures' harness/mk_tok.py.
"""

from __future__ import annotations

import random
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from diagnose.words import vocabulary

SPECIALS = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def main(out: str) -> int:
    words = vocabulary()
    rng = random.Random(0)
    corpus = [" ".join(rng.choices(words, k=40)) for _ in range(20000)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=16000,
        min_frequency=2,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<|endoftext|>", eos_token="<|im_end|>"
    )
    fast.model_max_length = 40960
    fast.save_pretrained(out)
    sample = " ".join(rng.choices(words, k=300))
    print("vocab", tok.get_vocab_size(), "pad", fast.pad_token_id, "eos", fast.eos_token_id)
    print("tokens for 300 stress words:", len(fast(sample)["input_ids"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "tok"))
