"""Disk IO: not collected yet, so the io rule skips with the reason."""

from __future__ import annotations

from dataclasses import dataclass

from diagnose.derive.section import Section, num, unknown


@dataclass(frozen=True, slots=True, kw_only=True)
class Disk(Section):
    disk_busy_max_pct: float | None = num("share of time the busiest disk was busy (not collected yet)")


def derive_disk() -> Disk:
    return unknown(Disk, "disk IO is not collected yet")
