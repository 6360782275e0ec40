"""The typed boundary of a bundle: every cell and JSON value read from outside becomes a value, or
unknown (None) with a stated reason. Nothing a damaged file holds reaches a rule as a number that cannot
be (NaN, an infinity, `1e400`, a negative count, a pid of 10^20) or as the wrong type.

Pure functions, no I/O. Each reader keeps one `Problems` per file: it collects the first few reasons with
their line numbers and becomes ONE CollectorIssue saying how many values were unreadable and where the
first was, so a 10,000-row file of garbage is one line in the report, not 10,000.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from diagnose.readings import CollectorIssue

# Plausibility bounds of raw readings: past them the value is not a measurement but damage.
# Linux's pid_max is at most 2^22; a TCP port is 1-65535; no host has 1,024 GPUs.
PID_MAX = 2**22
PORT_MAX = 65_535
GPU_INDEX_MAX = 1_023
COUNT_MAX = 2**40  # sockets in one state, observations in a report: far past any real host
# Seconds since the epoch, up to the year 5138; bundles built by tests use small times from 0.
T_UNIX_MAX = 1e11
# psutil's cpu_percent of one process is in percent of ONE core: 100 x the cores of the largest host.
CPU_PCT_MAX = 100.0 * 4096
MIB_MAX = 1e9  # a petabyte: past any RSS or GPU memory
POWER_W_MAX = 1e5
CLOCK_MHZ_MAX = 1e5
PCT_MAX = 100.0

# One /metrics dump: vLLM 0.32's is ~54 KB (92 families); multi-model or multi-engine servers are larger.
# Far past that it is not vLLM's /metrics, and parsing it would cost seconds and gigabytes: the live
# scrape stops reading there (collect/vllm.py) and a bundle's dump that size is skipped.
MAX_DUMP_BYTES = 64 * 1024 * 1024

_KEEP = 3  # reasons listed per file; the rest are counted


class BadValue(ValueError):
    """A present value that is not what the column promises; the message is the reason."""


class Problems:
    """The unreadable values of one file: the first few reasons (with line numbers) and a count."""

    def __init__(self, file: str):
        self.file = file
        self.count = 0
        self.first: list[str] = []

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        if len(self.first) < _KEEP:
            self.first.append(f"{where}: {reason}" if where else reason)

    def issue(self, collector: str, consequence: str) -> CollectorIssue | None:
        """One issue for the whole file, or None when everything read."""
        if not self.count:
            return None
        shown = "; ".join(self.first)
        more = f" (and {self.count - len(self.first)} more)" if self.count > len(self.first) else ""
        return CollectorIssue(
            0.0,
            collector,
            f"{self.file}: {self.count} unreadable value{'s' if self.count != 1 else ''} "
            f"({shown}{more}); {consequence}",
            f"regenerate {self.file} (`rerank-doctor collect`) or fix those lines by hand",
        )


def _short(text: str) -> str:
    return repr(text if len(text) <= 30 else text[:30] + "...")


def number(text: str | None, what: str) -> float | None:
    """A finite float from a cell; None when the cell is empty; BadValue when it is not a finite number."""
    if text is None:
        return None
    cell = text.strip()
    if not cell:
        return None
    if "_" in cell:  # float() takes "1_000"; no tool we read writes it
        raise BadValue(f"{what} {_short(cell)} is not a number")
    try:
        value = float(cell)
    except ValueError:
        raise BadValue(f"{what} {_short(cell)} is not a number") from None
    if not math.isfinite(value):
        raise BadValue(f"{what} {_short(cell)} is not a finite number")
    return value


def bounded(value: float | None, what: str, lo: float, hi: float) -> float | None:
    if value is not None and not lo <= value <= hi:
        raise BadValue(f"{what} {value:g} is outside {lo:g}-{hi:g}")
    return value


def whole(text: str | None, what: str, lo: int, hi: int) -> int | None:
    """A whole number within [lo, hi] from a cell ("2660", "2660.0"); None when empty."""
    value = bounded(number(text, what), what, lo, hi)
    if value is None:
        return None
    if value != int(value):
        raise BadValue(f"{what} {value:g} is not a whole number")
    return int(value)


def t_unix(text: str | None, what: str = "t_unix") -> float | None:
    return bounded(number(text, what), what, 0.0, T_UNIX_MAX)


def measure(text: str | None, what: str, hi: float, problems: Problems, where: str) -> float | None:
    """An optional measurement in [0, hi]: a bad one becomes unknown (None) and its reason is recorded."""
    try:
        return bounded(number(text, what), what, 0.0, hi)
    except BadValue as bad:
        problems.add(where, f"{bad}, taken as unknown")
        return None


def optional_whole(text: str | None, what: str, hi: int, problems: Problems, where: str) -> int | None:
    """An optional whole number in [0, hi]: a bad one becomes unknown (None) and its reason is recorded."""
    try:
        return whole(text, what, 0, hi)
    except BadValue as bad:
        problems.add(where, f"{bad}, taken as unknown")
        return None


def csv_rows(text: str, *, skipinitialspace: bool = False) -> list[list[str]]:
    """CSV rows that never raise: NUL bytes dropped, lone carriage returns read as line ends, and a
    line the csv module refuses (a quote left open) split on commas as it stands."""
    text = text.replace("\0", "").replace("\r\n", "\n").replace("\r", "\n")
    try:
        return list(csv.reader(io.StringIO(text), skipinitialspace=skipinitialspace))
    except csv.Error:
        split = [line.split(",") for line in text.split("\n") if line]
        return [[cell.lstrip() for cell in row] for row in split] if skipinitialspace else split


# --- JSON ---------------------------------------------------------------------------------------------


def load_json(text: str, problems: Problems) -> Any:
    """json.loads where NaN, Infinity and overflowing numbers (1e400) become None with a reason.

    Raises BadValue when the text is not JSON at all (or nests past Python's recursion limit).
    """

    def constant(name: str) -> None:
        problems.add("", f"{name} is not a number, taken as unknown")

    def floating(token: str) -> float | None:
        value = float(token)
        if math.isfinite(value):
            return value
        problems.add("", f"{_short(token)} overflows a number, taken as unknown")
        return None

    try:
        return json.loads(text, parse_constant=constant, parse_float=floating)
    except RecursionError:
        raise BadValue("nested too deeply to be a report") from None
    except ValueError as err:
        raise BadValue(f"not JSON ({err})") from None


def json_type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number"
    )


def json_text(data: dict[str, Any], key: str, problems: Problems) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    problems.add(key, f"expected text, found {json_type_name(value)}; taken as unknown")
    return None


def json_bool(data: dict[str, Any], key: str, problems: Problems) -> bool | None:
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return value
    problems.add(key, f"expected true/false, found {json_type_name(value)}; taken as unknown")
    return None


def json_number(
    data: dict[str, Any], key: str, problems: Problems, lo: float = 0.0, hi: float = math.inf
) -> float | None:
    """A finite number in [lo, hi]; anything else (text, true/false, out of range) is unknown."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.add(key, f"expected a number, found {json_type_name(value)}; taken as unknown")
        return None
    if not (math.isfinite(value) and lo <= value <= hi):
        problems.add(key, f"{value!r} is outside {lo:g}-{hi:g}; taken as unknown")
        return None
    return float(value)


def json_whole(data: dict[str, Any], key: str, problems: Problems, lo: int, hi: int) -> int | None:
    value = json_number(data, key, problems, lo, hi)
    if value is None:
        return None
    if value != int(value):
        problems.add(key, f"{value:g} is not a whole number; taken as unknown")
        return None
    return int(value)
