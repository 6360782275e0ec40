"""Flags more than one command takes, declared once: the load's shape and seed, the lab directory.

`demo`, `check --stress` and `stress` send the same load by default (diagnose/defaults.py, which
LoadConfig uses too), and `demo` and `lab` name the same lab directory in the same words.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diagnose.defaults import DEFAULT_DOCS_PER_CALL, DEFAULT_WORDS_PER_DOC

LAB_DIR_DEFAULT = (
    "$RERANK_DOCTOR_LAB_DIR, else ~/.cache/rerank-doctor/lab"  # diagnose.lab.venv.default_lab_dir
)

SEED_HELP = (
    "seed for the request bodies (and Poisson arrivals); default: a new one each run, so a run never "
    "reuses the bodies an earlier run left in vLLM's prefix cache. The report states it: pass it back "
    "to repeat a run"
)


def add_load_shape_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, what: str = ""
) -> None:
    """--docs, --words (whole numbers; `stress` takes ranges) and --seed, with the one set of defaults."""
    prefix = f"{what}: " if what else ""
    parser.add_argument(
        "--docs",
        type=int,
        default=DEFAULT_DOCS_PER_CALL,
        help=f"{prefix}documents per call (default %(default)s)",
    )
    parser.add_argument(
        "--words",
        type=int,
        default=DEFAULT_WORDS_PER_DOC,
        help=f"{prefix}words per document (default %(default)s)",
    )
    add_seed_argument(parser)


def add_seed_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--seed", type=int, default=None, help=SEED_HELP)


def add_lab_dir_argument(
    parser: argparse.ArgumentParser, what: str = "the lab's venv, model, logs and state"
) -> None:
    parser.add_argument(
        "--lab-dir",
        type=Path,
        default=None,
        help=f"where {what} live (default {LAB_DIR_DEFAULT})",
    )
