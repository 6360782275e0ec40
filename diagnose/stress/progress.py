"""The live line while load runs: rate, in flight, errors, p95 so far (rich, on stderr).

Only shown on a terminal and without --quiet; the caller decides. It refreshes 4 times a second from
the recorder and costs well under 1 % of a core, so it does not disturb the schedule it reports on.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

from diagnose.stress.stats import quantile

if TYPE_CHECKING:
    from diagnose.stress.config import LoadConfig
    from diagnose.stress.recorder import Recorder

_REFRESH_S = 0.25


def progress_line(recorder: Recorder, elapsed_s: float, config: LoadConfig) -> str:
    """One line of text (pure, for tests): what the live display shows."""
    sent = len(recorder.calls)
    rate = sent / elapsed_s if elapsed_s > 0 else 0.0
    recent = sorted(recorder.recent_latency_s)
    p95 = quantile(recent, 0.95)
    goal = (
        f"/{config.rate_per_s:g}"
        if config.rate_per_s is not None
        else f" (closed, {config.concurrency} workers)"
    )
    p95_text = f"{p95 * 1000:.0f} ms" if p95 is not None else "-"
    return (
        f"{elapsed_s:5.1f}/{config.duration_s:g} s  sent {sent}  rate {rate:.1f}{goal} calls/s  "
        f"in flight {recorder.in_flight}  ok {recorder.ok}  errors {recorder.failed}  p95 {p95_text}"
    )


def drain_line(recorder: Recorder, waited_s: float, config: LoadConfig) -> str:
    """The line once sending has stopped: what is still awaited, and for how long at most (pure)."""
    left_s = max(config.drain_s - waited_s, 0.0)
    return (
        f"sending stopped; waiting for {recorder.in_flight} calls in flight "
        f"({waited_s:.1f} s so far, at most {left_s:.1f} s more, then cancelled)  ok {recorder.ok}  "
        f"errors {recorder.failed}"
    )


async def show(recorder: Recorder, stop: asyncio.Event, t0: float, config: LoadConfig) -> None:
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    loop = asyncio.get_running_loop()
    console = Console(file=sys.stderr)
    with Live(console=console, auto_refresh=False, transient=True) as live:
        stopped_at: float | None = None
        while True:
            now = loop.time()
            if stop.is_set():
                stopped_at = now if stopped_at is None else stopped_at
                line = drain_line(recorder, now - stopped_at, config)
            else:
                line = progress_line(recorder, max(now - t0, 0.0), config)
            live.update(Text(line), refresh=True)
            await asyncio.sleep(_REFRESH_S)
