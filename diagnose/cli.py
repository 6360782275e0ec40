"""The `rerank-doctor` command: parses arguments, runs one subcommand, maps the outcome to an exit status.

Subcommand modules are imported only when their `add_arguments` is needed, and they import their heavy
dependencies inside `run`, so `rerank-doctor --help` stays fast (benchmarks/startup.py).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from diagnose import __version__
from diagnose.commands import SUBCOMMANDS
from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.redact import redact_text


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
    previous = _sigterm_as_ctrl_c()
    try:
        return int(args._run(args))
    except DoctorError as err:
        # Messages quote URLs and command lines: one redactor for all of them (diagnose/redact.py).
        print(f"rerank-doctor: {redact_text(err.one_line())}", file=sys.stderr)
        return int(err.status)
    except KeyboardInterrupt:
        print("rerank-doctor: interrupted", file=sys.stderr)
        return int(ExitStatus.INTERRUPTED)
    except Exception as err:  # a bug: one line, and the traceback only when asked for
        if args.debug or os.environ.get("RERANK_DOCTOR_DEBUG"):
            raise
        print(
            f"rerank-doctor: internal error: {type(err).__name__}: {redact_text(str(err))} — this is a bug; "
            "run again with --debug for the traceback and report it",
            file=sys.stderr,
        )
        return int(ExitStatus.INTERNAL)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _sigterm_as_ctrl_c() -> Any:
    """SIGTERM (`kill`, `docker stop`, a CI timeout) ends a long command the way Ctrl-C does: what was
    collected is kept and reported, exit 130. Returns the handler it replaced (None off the main thread,
    where signals cannot be set). `export` sets its own SIGTERM handler (a clean exit 0) over this one."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)
