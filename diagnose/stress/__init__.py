"""Reranker-shaped load that cannot lie (step 3 of the method): open or closed loop, bounded, honest.

Python API (the demo and the scenario tests drive load through it):

    from diagnose.stress import LoadConfig, run_load
    report = run_load(LoadConfig(url="http://127.0.0.1:8000", rate_per_s=20, duration_s=10))
    report.to_dict()

Importing this package is cheap; aiohttp is imported when a run starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from diagnose.stress.config import IntRange, LoadConfig, parse_duration, parse_range

if TYPE_CHECKING:
    import threading

    from diagnose.stress.report import LoadReport

__all__ = ["IntRange", "LoadConfig", "LoadReport", "parse_duration", "parse_range", "run_load"]


def run_load(config: LoadConfig, progress: bool = False, stop: threading.Event | None = None) -> LoadReport:
    """Run one bounded load and return its report; see diagnose.stress.client.run_load."""
    from diagnose.stress.client import run_load as _run_load

    return _run_load(config, progress, stop)


def __getattr__(name: str) -> object:
    if name == "LoadReport":
        from diagnose.stress.report import LoadReport

        return LoadReport
    raise AttributeError(name)
