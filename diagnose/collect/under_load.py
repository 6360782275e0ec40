"""Collect a window while `stress` drives load: the server's view and the client's, over the same time.

The load starts first and runs a few seconds past both ends of the window, so the window sees steady
traffic only. The client's report lands in the bundle (`Bundle.stress`, stress.json) so that a replay
with `check --from` judges the same evidence.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from diagnose.bundle.write import write_stress_report
from diagnose.collect.run import collect_to_folder
from diagnose.progress import NullProgress, StepReporter, terminal_progress
from diagnose.readings import Bundle

# Seconds of load before the window opens (connections warm, queue settled) and after it closes.
LEAD_IN_S = 3.0
LEAD_OUT_S = 3.0
# The load is planned this much longer than lead-in + window + lead-out and stopped once the window has
# closed: the window opens only after /health, /version, /v1/models and the process scan have answered,
# which took a whole 15 s window on a saturated CI server (each call may wait its 5 s timeout). A load
# that ended on its own clock would have left the window without traffic: an idle, "healthy" verdict.
SETUP_ALLOWANCE_S = 30.0


def collect_under_load(
    load_config: Any, *, url: str, out: Path | None, duration_s: float, **collect_kwargs: Any
) -> Bundle:
    """`load_config` is a diagnose.stress.LoadConfig; its duration is stretched to cover the window.

    The seconds before and after the window (lead-in, lead-out, the load's drain) show as progress
    unless `show_progress=False` is among the collection's arguments.
    """
    from diagnose.stress import run_load

    # The seed is fixed here, not in the load's thread, so the progress line can say which bodies go out.
    config = replace(
        load_config, duration_s=duration_s + LEAD_IN_S + LEAD_OUT_S + SETUP_ALLOWANCE_S
    ).with_seed()
    config.validate()  # a bad rate or a non-loopback URL stops here, before anything is sent
    show = bool(collect_kwargs.get("show_progress", True))

    def steps() -> AbstractContextManager[StepReporter]:
        # One display at a time: the collection's own bar runs between these two.
        return terminal_progress(prefix="load") if show else nullcontext(NullProgress())

    result: dict[str, Any] = {}
    stop = threading.Event()

    def drive() -> None:
        try:
            result["report"] = run_load(config, stop=stop)
        except Exception as err:  # reported with the bundle below; the collection still stands
            result["error"] = err

    thread = threading.Thread(target=drive, name="rerank-doctor-load", daemon=True)
    thread.start()
    try:
        with steps() as progress:
            progress.step(
                f"{_rate(config)} (seed {config.seed}) for {LEAD_IN_S:g} s "
                f"before the {duration_s:g} s window opens"
            )
            thread.join(LEAD_IN_S)
        bundle, _ = collect_to_folder(url=url, out=out, duration_s=duration_s, **collect_kwargs)
        with steps() as progress:
            progress.step(
                f"window closed; load runs {LEAD_OUT_S:g} s more, then waits at most {config.drain_s:g} s "
                "for calls in flight"
            )
            thread.join(LEAD_OUT_S)
    finally:
        stop.set()  # the window closed (or the collection stopped): the load stops sending
    with steps() as progress:
        # Bounded: the drain, and the closing /metrics scrape (10 s at most).
        thread.join(config.drain_s + 15.0)
        progress.step("load done" if not thread.is_alive() else "load still running; reporting without it")
    report = result.get("report")
    if report is not None:
        bundle.stress = report.to_dict()
        if out is not None:
            write_stress_report(out, bundle.stress)
    elif thread.is_alive():
        from diagnose.readings import CollectorIssue

        bundle.issues.append(
            CollectorIssue(0.0, "stress", "the load run did not finish in time; its report is missing", "")
        )
    elif "error" in result:
        from diagnose.readings import CollectorIssue

        err = result["error"]
        bundle.issues.append(
            CollectorIssue(
                0.0, "stress", f"the load run failed: {getattr(err, 'message', err)}", "see `stress --help`"
            )
        )
    return bundle


def _rate(config: Any) -> str:
    if config.rate_per_s is not None:
        return f"load: {config.rate_per_s:g} calls/s"
    return f"load: {config.concurrency} workers"
