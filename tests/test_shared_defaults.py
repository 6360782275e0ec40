"""One default per flag across commands: the load's shape, its seed and the lab directory read the same."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from diagnose.cli import build_parser
from diagnose.lab.venv import default_lab_dir
from diagnose.stress import LoadConfig


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _action(command: str, flag: str) -> argparse.Action:
    return next(a for a in _subparser(command)._actions if flag in a.option_strings)


@pytest.mark.parametrize("flag", ["--docs", "--words", "--seed"])
def test_demo_check_and_stress_send_the_same_load_by_default(flag: str) -> None:
    defaults = {str(_action(command, flag).default) for command in ("demo", "check", "stress")}
    assert len(defaults) == 1, f"{flag} defaults differ: {defaults}"


def test_the_flag_defaults_are_the_load_configs_own() -> None:
    config = LoadConfig()
    assert _action("check", "--docs").default == config.docs.low
    assert _action("check", "--words").default == config.words.low
    assert _action("check", "--seed").default is None and config.seed is None  # a fresh seed per run


def test_demo_and_lab_name_the_lab_directory_in_the_same_words(monkeypatch: pytest.MonkeyPatch) -> None:
    helps = {command: _action(command, "--lab-dir").help or "" for command in ("demo", "lab")}
    tails = {h[h.index("(default") :] for h in helps.values()}
    assert len(tails) == 1, helps
    monkeypatch.delenv("RERANK_DOCTOR_LAB_DIR", raising=False)
    # ... and those words are true: the default really is ~/.cache/rerank-doctor/lab.
    assert default_lab_dir() == Path.home() / ".cache" / "rerank-doctor" / "lab"
    assert "~/.cache/rerank-doctor/lab" in next(iter(tails))
