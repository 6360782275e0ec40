"""Plausibility bounds on derived numbers: a reading outside them is set aside as suspect, with the reason.

Pure, no I/O, no imports from the rest of derive: each helper takes a derived number and returns it, or
None with a one-line reason that the rule needing it quotes when it skips. Raw readings are bounded at
the bundle boundary (diagnose/bundle/values.py); these are the bounds only a derived number can break:
a counter reset makes a rate negative, a wrong sample window makes a process use more cores than the
host has, two dumps at one instant make a window of zero seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

# Sampling jitter: psutil's interval and the sample timestamps differ by a few ms, so a process that
# truly uses every core can read a few percent above 100 x cores. Past this slack it is not jitter.
_CPU_SLACK = 1.10
_RATIO_SLACK = 1e-9


@dataclass(frozen=True, slots=True)
class Checked:
    value: float | None  # the number when plausible, else None
    suspect: str | None = None  # why it was set aside; None when it was not

    @property
    def ok(self) -> bool:
        return self.suspect is None


def _bad(reason: str) -> Checked:
    return Checked(None, reason)


def process_cpu_pct(value: float | None, host_cores: int | None, what: str = "process CPU") -> Checked:
    """A process's CPU in % of ONE core: within 0 and 100 x the host's cores."""
    if value is None:
        return Checked(None)
    if not math.isfinite(value) or value < 0:
        return _bad(f"{what} read {value:g} % of one core: not a possible reading")
    if host_cores and value > 100.0 * host_cores * _CPU_SLACK:
        return _bad(
            f"{what} read {value:.0f} % of one core on a {host_cores}-core host: suspect "
            "(a counter reset or a sample window that does not match)"
        )
    return Checked(value)


def ratio(value: float | None, what: str) -> Checked:
    """A share or hit ratio: within 0 and 1."""
    if value is None:
        return Checked(None)
    if not (math.isfinite(value) and -_RATIO_SLACK <= value <= 1.0 + _RATIO_SLACK):
        return _bad(f"{what} read {value:g}, outside 0-1: suspect (a counter reset inside the window?)")
    return Checked(min(max(value, 0.0), 1.0))


def counter_delta(before: float | None, after: float | None, what: str) -> Checked:
    """after - before of a cumulative counter; negative means it was reset (vLLM restarted)."""
    if before is None or after is None:
        return Checked(None)
    delta = after - before
    if not math.isfinite(delta):
        return _bad(f"{what} did not read as a number in both dumps")
    if delta < 0:
        return _bad(
            f"{what} went down by {-delta:g} inside the window: the counter was reset (vLLM restarted?)"
        )
    return Checked(delta)


def window_s(times: Iterable[float]) -> Checked:
    """The span of a window: it needs two distinct, finite times."""
    finite = sorted({t for t in times if math.isfinite(t)})
    if len(finite) < 2:
        return _bad(
            "the dumps carry fewer than two distinct capture times: there is no window, "
            "so rates and quantiles are not judged"
        )
    return Checked(finite[-1] - finite[0])
