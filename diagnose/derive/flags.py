"""The vLLM command line as flags: what the rules compare their proposals against. Pure.

`--x 1 --y=2 --z` -> {'--x': '1', '--y': '2', '--z': 'true'}; underscores read as dashes; the short forms
vLLM accepts (-tp, -dp, -asc) read as their long names. A secret's value never comes through, even from
a command line that arrived unredacted.
"""

from __future__ import annotations

import re
import shlex

_SECRET = re.compile(r"(key|token|secret|password)$", re.IGNORECASE)  # not --max-num-batched-tokens
_SHORT = {"-dp": "--data-parallel-size", "-tp": "--tensor-parallel-size", "-asc": "--api-server-count"}


def parse_flags(command_line: str) -> dict[str, str]:
    """'--x 1 --y=2 --z' -> {'--x': '1', '--y': '2', '--z': 'true'}; underscores read as dashes."""
    try:
        tokens = shlex.split(command_line)
    except ValueError:
        tokens = command_line.split()
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("-") or token == "-m":
            continue
        name, eq, value = token.partition("=")
        name = _SHORT.get(name, name)
        name = "--" + name.lstrip("-").replace("_", "-")
        if eq and _SECRET.search(name):
            value = "<redacted>"
        if eq:
            out[name] = value
        elif _SECRET.search(name):
            # The command line should arrive redacted; never let a key through if it did not.
            out[name] = "<redacted>"
            i += 1
        elif i < len(tokens) and not tokens[i].startswith("--") and not _is_short_flag(tokens[i]):
            out[name] = tokens[i]
            i += 1
        else:
            out[name] = "true"
    return out


def _is_short_flag(token: str) -> bool:
    # "-1" is a value; "-tp" is a flag.
    return token.startswith("-") and not token[1:2].isdigit() and token != "-"
