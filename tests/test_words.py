"""Synthetic text is made of the words the lab tokenizer learned, so word counts mean token counts."""

from __future__ import annotations

import ast
import random
from pathlib import Path

from diagnose.words import SYLLABLES, pseudo_text, vocabulary

BUILD_MODEL = Path(__file__).resolve().parent.parent / "diagnose" / "lab" / "build_model.py"


def test_the_lab_tokenizer_is_trained_on_the_same_syllables() -> None:
    # build_model.py runs as a script in the lab venv and keeps its own copy; the two must not drift.
    tree = ast.parse(BUILD_MODEL.read_text())
    copies = [
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "SYLLABLES"
    ]
    assert copies and tuple(copies[0]) == SYLLABLES


def test_text_is_deterministic_and_made_of_syllables() -> None:
    a, b = pseudo_text(50, random.Random(3)), pseudo_text(50, random.Random(3))
    assert a == b and len(a.split()) == 50
    word = a.split()[0]
    while word:  # every word is a run of known syllables
        match = next(s for s in SYLLABLES if word.startswith(s))
        word = word[len(match) :]


def test_vocabulary_is_distinct_sorted_and_seeded() -> None:
    words = vocabulary(500, seed=1)
    assert len(set(words)) == 500 and words == sorted(words) and words == vocabulary(500, seed=1)
    assert words != vocabulary(500, seed=2)
