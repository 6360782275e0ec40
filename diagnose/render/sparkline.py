"""Sparklines: the shape of a series in a few terminal cells (▁▂▃▄▅▆▇█). Pure string work.

The scale starts at zero, as the HTML charts do: every series here is a duration, a rate, a count or a
share, and a line of full blocks for "1.0 to 1.1 s" would read as a climb that is not there.
A cell with no known value is a space (a gap), never the lowest block: unknown is not zero.
"""

from __future__ import annotations

from collections.abc import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None], width: int, top: float | None = None) -> str:
    """`values` squeezed (or spread) into `width` cells, scaled from 0 to `top` (default: their max).

    Squeezing keeps each cell's MAX: a one-sample spike is what a reader of a latency line looks for.
    """
    if width <= 0:
        return ""
    if not values:
        return " " * width
    cells: list[float | None] = []
    n = len(values)
    for i in range(width):
        lo, hi = i * n // width, max((i + 1) * n // width, i * n // width + 1)
        known = [v for v in values[lo:hi] if v is not None]
        cells.append(max(known) if known else None)
    peak = top if top is not None else max((c for c in cells if c is not None), default=None)
    out = []
    for c in cells:
        if c is None:
            out.append(" ")
        elif not peak or peak <= 0:
            out.append(BLOCKS[0])
        else:
            level = round(max(0.0, min(c, peak)) / peak * (len(BLOCKS) - 1))
            out.append(BLOCKS[level])
    return "".join(out)
