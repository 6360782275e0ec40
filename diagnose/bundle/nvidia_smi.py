"""The `nvidia-smi --query-gpu=... --format=csv` log: read by header name, written in the same format.

Columns are found by their header name, so any `--query-gpu` selection and order loads; extra columns
are ignored. nvidia-smi prints `[N/A]` or `[Not Supported]` where it cannot read a value: that is None.
Its `timestamp` column is local time with no zone; bundles written by rerank-doctor add a `t_unix`
column so that no zone has to be guessed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from diagnose.bundle.values import (
    CLOCK_MHZ_MAX,
    GPU_INDEX_MAX,
    MIB_MAX,
    PCT_MAX,
    POWER_W_MAX,
    BadValue,
    bounded,
    csv_rows,
    number,
    t_unix,
    whole,
)
from diagnose.readings import GpuSample

# Header (before the " [unit]" part) -> GpuSample field. nvidia-smi names some fields two ways.
_COLUMNS = {
    "utilization.gpu": "util_pct",
    "memory.used": "memory_used_mib",
    "memory.total": "memory_total_mib",
    "power.draw": "power_w",
    "power.draw.instant": "power_w",
    "clocks.sm": "sm_clock_mhz",
    "clocks.current.sm": "sm_clock_mhz",
}
_TIMESTAMP_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S")

HEADER = (
    "timestamp, t_unix, index, name, utilization.gpu [%], memory.used [MiB], memory.total [MiB], "
    "power.draw [W], clocks.sm [MHz]"
)


# Plausible range of each field: outside it a cell is damage, not a reading (unknown, with a reason).
_RANGE = {
    "util_pct": (0.0, PCT_MAX),
    "memory_used_mib": (0.0, MIB_MAX),
    "memory_total_mib": (0.0, MIB_MAX),
    "power_w": (0.0, POWER_W_MAX),
    "sm_clock_mhz": (0.0, CLOCK_MHZ_MAX),
}


def _number(cell: str) -> float | None:
    """'42 %', '127.86 W', '122395 MiB', '[N/A]' -> 42.0, 127.86, 122395.0, None; 'nan %' -> BadValue."""
    text = cell.strip()
    if not text or text.startswith("["):
        return None
    return number(text.split()[0], "value")


def _parse_timestamp(cell: str) -> float | None:
    text = cell.strip()
    whole, _, fraction = text.partition(".")
    for fmt in _TIMESTAMP_FORMATS:
        try:
            seconds = time.mktime(time.strptime(whole, fmt))
        except ValueError:
            continue
        return seconds + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)
    return None


def parse_nvidia_smi_csv(text: str) -> tuple[list[GpuSample], list[str]]:
    """Rows of a `nvidia-smi --query-gpu ... --format=csv` log, and one line per row that could not be read.

    Without an `index` column, rows that share a timestamp are taken as GPUs 0, 1, ... in order
    (nvidia-smi prints one row per GPU per interval).
    """
    problems: list[str] = []
    rows = csv_rows(text, skipinitialspace=True)
    if not rows:
        return [], ["nvidia-smi log is empty"]
    header = [h.split(" [")[0].strip() for h in rows[0]]
    if "timestamp" not in header and "t_unix" not in header:
        return [], [
            "nvidia-smi log has no timestamp column: run it with --query-gpu=timestamp,... --format=csv"
        ]
    col = {name: i for i, name in enumerate(header)}
    samples: list[GpuSample] = []
    last_stamp: str | None = None
    position = 0
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(header):
            problems.append(f"line {line_no}: {len(row)} columns, the header has {len(header)}")
            continue
        if (
            row[0].strip() == rows[0][0].strip()
        ):  # a repeated header (nvidia-smi restarted into the same file)
            continue
        stamp = row[col["timestamp"]].strip() if "timestamp" in col else ""
        try:
            when = t_unix(row[col["t_unix"]]) if "t_unix" in col else None
            index_cell = whole(row[col["index"]], "GPU index", 0, GPU_INDEX_MAX) if "index" in col else None
        except BadValue as bad:
            problems.append(f"line {line_no}: {bad}; row skipped")
            continue
        if when is None:
            when = _parse_timestamp(stamp)
        if when is None:
            problems.append(f"line {line_no}: unreadable timestamp {stamp!r}; row skipped")
            continue
        if "index" in col:
            index = index_cell or 0
        else:
            position = position + 1 if stamp == last_stamp else 0
            index = position
        last_stamp = stamp
        fields: dict[str, float | None] = {}
        for name, field in _COLUMNS.items():
            if name in col and fields.get(field) is None:
                lo, hi = _RANGE[field]
                try:
                    fields[field] = bounded(_number(row[col[name]]), name, lo, hi)
                except BadValue as bad:
                    problems.append(
                        f"line {line_no}: {name} {str(bad).removeprefix('value ')}, taken as unknown"
                    )
        samples.append(
            GpuSample(
                t_unix=when,
                index=index,
                util_pct=fields.get("util_pct"),
                memory_used_mib=fields.get("memory_used_mib"),
                memory_total_mib=fields.get("memory_total_mib"),
                power_w=fields.get("power_w"),
                sm_clock_mhz=fields.get("sm_clock_mhz"),
                name=row[col["name"]].strip() if "name" in col else None,
            )
        )
    return samples, problems


def _cell(value: float | None, unit: str) -> str:
    return "[N/A]" if value is None else f"{value:g} {unit}"


def format_nvidia_smi_csv(samples: Iterable[GpuSample]) -> str:
    """The same format nvidia-smi writes, plus `t_unix`, so either tool's log reads the same way."""
    lines = [HEADER]
    for s in samples:
        stamp = (
            time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(s.t_unix)) + f".{int(s.t_unix % 1 * 1000):03d}"
        )
        name = (s.name or "").replace(",", " ")
        lines.append(
            ", ".join(
                (
                    stamp,
                    f"{s.t_unix:.3f}",
                    str(s.index),
                    name,
                    _cell(s.util_pct, "%"),
                    _cell(s.memory_used_mib, "MiB"),
                    _cell(s.memory_total_mib, "MiB"),
                    _cell(s.power_w, "W"),
                    _cell(s.sm_clock_mhz, "MHz"),
                )
            )
        )
    return "\n".join(lines) + "\n"
