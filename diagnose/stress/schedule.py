"""When each open-loop call is meant to be sent: offsets in seconds from the start, fixed up front.

The schedule does not look at responses. That is what makes the open loop honest: a server that stalls
does not slow the arrivals down, and each call's latency is counted from its intended send time, so
the calls that queued behind the stall show it (no coordinated omission).

A linear ramp from `ramp_from_per_s` to `rate_per_s` over `ramp_s` seconds is a time change: the
expected number of arrivals by time t is Λ(t) (the integral of the rate), and arrival k of a unit-rate
process at Λ = x happens at t = Λ⁻¹(x). Constant arrivals put x on 0, 1, 2, ...; Poisson arrivals put
the gaps between x values on Exp(1) draws.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator


def expected_arrivals(
    t_s: float, rate_per_s: float, ramp_s: float = 0.0, ramp_from_per_s: float = 0.0
) -> float:
    """Λ(t): how many arrivals the schedule expects by t seconds."""
    if ramp_s <= 0 or t_s <= 0:
        return rate_per_s * max(t_s, 0.0)
    slope = (rate_per_s - ramp_from_per_s) / ramp_s
    if t_s <= ramp_s:
        return ramp_from_per_s * t_s + slope * t_s * t_s / 2
    return ramp_from_per_s * ramp_s + slope * ramp_s * ramp_s / 2 + rate_per_s * (t_s - ramp_s)


def time_of_arrival(x: float, rate_per_s: float, ramp_s: float = 0.0, ramp_from_per_s: float = 0.0) -> float:
    """Λ⁻¹(x): the time by which x arrivals are expected (the inverse of `expected_arrivals`)."""
    if x <= 0:
        return 0.0
    if ramp_s <= 0:
        return x / rate_per_s
    in_ramp = expected_arrivals(ramp_s, rate_per_s, ramp_s, ramp_from_per_s)
    if x > in_ramp:
        return ramp_s + (x - in_ramp) / rate_per_s
    half_slope = (rate_per_s - ramp_from_per_s) / ramp_s / 2
    # Root of half_slope*t² + r0*t - x = 0 in the form that stays exact when the slope is ~0 or negative.
    return 2 * x / (ramp_from_per_s + math.sqrt(max(ramp_from_per_s**2 + 4 * half_slope * x, 0.0)))


def arrival_offsets(
    rate_per_s: float,
    duration_s: float,
    arrival: str = "poisson",
    ramp_s: float = 0.0,
    ramp_from_per_s: float = 0.0,
    seed: int = 0,
) -> Iterator[float]:
    """Intended send offsets (seconds, ascending, all < duration_s). Lazy: a long run costs no memory."""
    rng = random.Random(seed)
    x = 0.0 if arrival == "constant" else rng.expovariate(1.0)
    while True:
        t = time_of_arrival(x, rate_per_s, ramp_s, ramp_from_per_s)
        if t >= duration_s:
            return
        yield t
        x += 1.0 if arrival == "constant" else rng.expovariate(1.0)
