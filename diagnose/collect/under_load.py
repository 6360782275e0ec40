"""Collect a window while `stress` drives load: the server's view and the client's, over the same time.

The load starts first and runs a few seconds past both ends of the window, so the window sees steady
traffic only. The client's report lands in the bundle (`Bundle.stress`, stress.json) so that a replay
with `check --from` judges the same evidence.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from diagnose.bundle.write import write_stress_report
from diagnose.collect.run import collect_to_folder
from diagnose.readings import Bundle

# Seconds of load before the window opens (connections warm, queue settled) and after it closes.
LEAD_IN_S = 3.0
LEAD_OUT_S = 3.0


def collect_under_load(
    load_config: Any, *, url: str, out: Path | None, duration_s: float, **collect_kwargs: Any
) -> Bundle:
    """`load_config` is a diagnose.stress.LoadConfig; its duration is stretched to cover the window."""
    from diagnose.stress import run_load

    config = replace(load_config, duration_s=duration_s + LEAD_IN_S + LEAD_OUT_S)
    config.validate()  # a bad rate or a non-loopback URL stops here, before anything is sent
    result: dict[str, Any] = {}

    def drive() -> None:
        try:
            result["report"] = run_load(config)
        except Exception as err:  # reported with the bundle below; the collection still stands
            result["error"] = err

    thread = threading.Thread(target=drive, name="rerank-doctor-load", daemon=True)
    thread.start()
    thread.join(LEAD_IN_S)
    bundle, _ = collect_to_folder(url=url, out=out, duration_s=duration_s, **collect_kwargs)
    thread.join(LEAD_OUT_S + config.timeout_s + 30.0)
    report = result.get("report")
    if report is not None:
        bundle.stress = report.to_dict()
        if out is not None:
            write_stress_report(out, bundle.stress)
    elif "error" in result:
        from diagnose.readings import CollectorIssue

        err = result["error"]
        bundle.issues.append(
            CollectorIssue(
                0.0, "stress", f"the load run failed: {getattr(err, 'message', err)}", "see `stress --help`"
            )
        )
    return bundle
