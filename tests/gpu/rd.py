"""`python3 tests/gpu/rd.py COMMAND ...` = `rerank-doctor COMMAND ...`, also for a subcommand whose module
exists under diagnose/commands/ but is not yet listed in diagnose/commands/__init__.py (helpers write them
in parallel). The list is extended in this process only; no file is changed. Same parser, same exit
statuses and one-line errors as the real CLI, because it is the real CLI (diagnose.cli.main).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from diagnose import cli
from diagnose.commands import SUBCOMMANDS


def main(argv: list[str]) -> int:
    if argv and not argv[0].startswith("-"):
        name = argv[0]
        known = {n for n, _ in SUBCOMMANDS}
        if name not in known and importlib.util.find_spec(f"diagnose.commands.{name}") is not None:
            SUBCOMMANDS.append((name, name))
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
