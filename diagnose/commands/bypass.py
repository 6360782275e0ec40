"""`rerank-doctor bypass` (method step 4): the same pairs on the model directly and through the server."""

from __future__ import annotations

import argparse

HELP = "score the same pairs on the model directly and through vLLM: serving overhead and score agreement"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model (the direct path)")
    model.add_argument("--model", required=True, metavar="DIR", help="local model directory the server loads")
    model.add_argument(
        "--engine",
        choices=("transformers", "vllm"),
        default="transformers",
        help="direct path: transformers (default) or vLLM's offline LLM.score",
    )
    model.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default %(default)s")
    model.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16", "float16"),
        default="auto",
        help="auto: bfloat16 on cuda, float32 on cpu (vllm: the model's)",
    )
    model.add_argument(
        "--python",
        default=None,
        metavar="PATH",
        help="interpreter with torch + transformers (default: this one if it has them, else the lab venv's)",
    )
    model.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch CPU threads for the direct run (default: torch's choice)",
    )
    model.add_argument(
        "--worker-timeout",
        type=float,
        default=900.0,
        metavar="S",
        help="seconds the direct run may take (default %(default)s)",
    )
    pairs = parser.add_argument_group("pairs (give one)")
    source = pairs.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--pairs", metavar="FILE", help='JSON list of {"query","document"} or {"query","documents":[...]}'
    )
    source.add_argument("--synthetic", type=int, metavar="N", help="N deterministic pseudo-word pairs")
    pairs.add_argument("--seed", type=int, default=0, help="seed for --synthetic (default %(default)s)")
    pairs.add_argument(
        "--batch-size", type=int, default=20, help="pairs per batch / per call (default %(default)s)"
    )
    served = parser.add_argument_group("served numbers (the server's path)")
    served.add_argument(
        "--url", default=None, help="vLLM base URL: POST the same pairs there (127.0.0.1/localhost)"
    )
    served.add_argument(
        "--endpoint", default=None, help="/v1/rerank (default), /rerank, /v2/rerank, /score, /v1/score"
    )
    served.add_argument(
        "--served-model", default=None, help="served model name (default: first id of /v1/models)"
    )
    served.add_argument(
        "--api-key",
        default=None,
        help="sent as 'Authorization: Bearer'; never printed (default: $VLLM_API_KEY)",
    )
    served.add_argument("--yes-really", action="store_true", help="allow a --url that is not this machine")
    served.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="per HTTP call (default %(default)s)"
    )
    served.add_argument(
        "--from",
        dest="bundle",
        default=None,
        metavar="BUNDLE",
        help="also compare with the served pairs/s of BUNDLE/stress.json",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="max |served - direct| score difference that still agrees (default 0.02)",
    )
    out.add_argument("--json", action="store_true", help="print the report as JSON (with schema_version)")
    out.add_argument(
        "--save", metavar="DIR", default=None, help="write bypass.json into this bundle directory"
    )


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    from diagnose.bypass.compare import DEFAULT_TOLERANCE
    from diagnose.bypass.run import pairs_from, run_bypass
    from diagnose.exit_status import ExitStatus

    pairs = pairs_from(args.pairs, args.synthetic, args.seed)
    chatty = not args.json and sys.stderr.isatty()

    def progress(message: str) -> None:
        if chatty:
            print(f"rerank-doctor: {message}", file=sys.stderr)

    report = run_bypass(
        args.model,
        pairs,
        url=args.url,
        endpoint=args.endpoint,
        served_model=args.served_model,
        api_key=args.api_key or os.environ.get("VLLM_API_KEY") or None,
        yes_really=args.yes_really,
        bundle=args.bundle,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        engine=args.engine,
        python=args.python,
        tolerance=args.tolerance if args.tolerance is not None else DEFAULT_TOLERANCE,
        timeout_s=args.timeout,
        worker_timeout_s=args.worker_timeout,
        threads=args.threads,
        progress=progress,
    )
    from diagnose.bypass.render import render
    from diagnose.commands.output import emit, save_json

    doc = report.to_dict()
    if args.save:
        save_json(args.save, "bypass.json", doc)
    emit(doc, as_json=args.json, blocks=lambda: render(report))
    # Served scores that disagree with the model are a finding, like `check`'s.
    from diagnose.report import Severity

    # Exit 1 as check does: a finding at warning or above (an INFO note is not a failure).
    worst = max((f.severity for f in report.findings), default=Severity.OK)
    return int(ExitStatus.FINDINGS if worst >= Severity.WARNING else ExitStatus.OK)
