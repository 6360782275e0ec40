"""Served numbers from a bundle's stress.json (written by `rerank-doctor stress --save DIR`).

The file is a `LoadReport.to_dict()` (diagnose/stress/report.py, schema_version 1). Only the fields the
bypass compares are read; unknown ones are ignored, so newer stress files still load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diagnose.bypass.report import StressServed
from diagnose.derive.sections.client import StressSummary
from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus

STRESS_FILE = "stress.json"


def parse_stress(doc: Any, path: str) -> StressServed:
    fix = "run `rerank-doctor stress --save BUNDLE` against the server to record one"
    summary = StressSummary.from_dict(doc)  # the one reader of stress.json
    if summary is None:
        raise DoctorError(f"{path} is not a stress report (not a JSON object)", fix, ExitStatus.BAD_INPUT)
    if summary.pairs_per_s is None or summary.pairs_per_s <= 0:
        raise DoctorError(
            f"{path} has no served pairs/s (pairs_per_s is {doc.get('pairs_per_s')!r}: no call succeeded?)",
            fix,
            ExitStatus.BAD_INPUT,
        )
    return StressServed(
        path=path,
        mode=summary.mode,
        pairs_per_s=summary.pairs_per_s,
        calls_per_s=summary.calls_per_s,
        docs_per_call_mean=summary.docs_per_call_mean,
        concurrency=summary.concurrency,
        rate_per_s=summary.rate_per_s,
        latency_p50_s=summary.latency_p50_s,
        latency_p95_s=summary.latency_p95_s,
    )


def read_stress(bundle: Path | str) -> StressServed:
    bundle = Path(bundle)
    path = bundle / STRESS_FILE if bundle.is_dir() else bundle
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DoctorError(
            f"no {STRESS_FILE} in {bundle}",
            "run `rerank-doctor stress --save BUNDLE` first, or compare live with --url",
            ExitStatus.BAD_INPUT,
        ) from None
    except (OSError, ValueError) as err:
        raise DoctorError(
            f"{path} cannot be read as JSON ({type(err).__name__})",
            "record it again with `rerank-doctor stress --save BUNDLE`",
            ExitStatus.BAD_INPUT,
        ) from None
    return parse_stress(doc, str(path))
