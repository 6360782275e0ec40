"""The made-up words of all synthetic traffic (stress bodies, bypass pairs).

They are built from the syllables the lab's tokenizer was trained on (diagnose/lab/build_model.py keeps
a copy, since it runs as a script inside the lab's venv; tests/test_words.py pins the two equal), so a
word costs ~1.5 tokens there, close to the ~1.3 of real English on Qwen's tokenizer. Words the tokenizer
never saw split into single characters (6.6 tokens a word was measured), and "50 words" would then mean
330 tokens: every load shape would be off by 4-5x.
"""

from __future__ import annotations

import random

SYLLABLES = (
    "ka", "lo", "mi", "ren", "tas", "vo", "qu", "ber", "sin", "dal", "po", "ne", "rak", "ti", "mo",
    "sha", "ul", "gra", "fe", "zo", "lin", "ho", "cre", "ma", "dor", "ip", "san", "wel", "tru", "ex",
)  # fmt: skip


def pseudo_word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4)))


def pseudo_text(words: int, rng: random.Random) -> str:
    """`words` made-up words joined by spaces; the same for the same rng state."""
    return " ".join(pseudo_word(rng) for _ in range(words))


def vocabulary(size: int = 6000, seed: int = 7) -> list[str]:
    """`size` distinct made-up words, sorted; the same for the same seed."""
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < size:
        words.add(pseudo_word(rng))
    return sorted(words)
