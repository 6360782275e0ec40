"""The `rerank-doctor` command: parses arguments, runs one subcommand, maps the outcome to an exit status.

Subcommand modules are imported only when their `add_arguments` is needed, and they import their heavy
dependencies inside `run`, so `rerank-doctor --help` stays fast (benchmarks/startup.py).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from diagnose import __version__
from diagnose.commands import SUBCOMMANDS
from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus


class HelpFormatter(argparse.HelpFormatter):
    """argparse's own, except that a line never breaks at a hyphen: `--max-num-seqs` and
    `~/.cache/rerank-doctor/lab` stay whole on a narrow terminal (textwrap breaks them by default)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width, break_on_hyphens=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rerank-doctor",
        formatter_class=HelpFormatter,
        description="Finds why a vLLM reranker is slow — GPU, CPU, network or cache thrash — "
        "proves it with numbers, and says which vLLM flags to change.",
        epilog="Exit statuses: 0 ok, 1 findings at --fail-on, 2 usage, 3 unreachable, 4 bad input, "
        "5 missing tool, 70 internal error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"rerank-doctor {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in SUBCOMMANDS:
        module = importlib.import_module(f"diagnose.commands.{module_name}")
        sp = sub.add_parser(name, help=module.HELP, description=module.HELP, formatter_class=HelpFormatter)
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return int(ExitStatus.USAGE)
    if args.debug or os.environ.get("RERANK_DOCTOR_DEBUG"):
        # What is isolated so that the run goes on (a rule that raised) is logged with its traceback.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logging.getLogger("diagnose").addHandler(handler)
        logging.getLogger("diagnose").setLevel(logging.DEBUG)
    try:
        return int(args._run(args))
    except DoctorError as err:
        print(f"rerank-doctor: {err.one_line()}", file=sys.stderr)
        return int(err.status)
    except KeyboardInterrupt:
        print("rerank-doctor: interrupted", file=sys.stderr)
        return int(ExitStatus.INTERRUPTED)
    except Exception as err:  # a bug: one line, and the traceback only when asked for
        if args.debug or os.environ.get("RERANK_DOCTOR_DEBUG"):
            raise
        print(
            f"rerank-doctor: internal error: {type(err).__name__}: {err} — this is a bug; "
            "run again with --debug for the traceback and report it",
            file=sys.stderr,
        )
        return int(ExitStatus.INTERNAL)
