"""Parsing the human units our flags take: durations like `30s`, `2m`, `500ms`, `1h`, or plain seconds."""

from __future__ import annotations

import argparse
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_SCALE_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration_s(text: str) -> float:
    """'30s' -> 30.0, '2m' -> 120.0, '500ms' -> 0.5, '10' -> 10.0; ValueError names the accepted forms."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration: use e.g. 30s, 2m, 500ms or a number of seconds")
    return float(match.group(1)) * _SCALE_S[match.group(2)]


def positive_duration(text: str) -> float:
    """argparse `type=` for durations that must be > 0: the error becomes argparse's one-line usage error."""
    try:
        seconds = parse_duration_s(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be longer than zero")
    return seconds
