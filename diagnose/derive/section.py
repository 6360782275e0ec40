"""What an Evidence section is: a frozen record of numbers, each declared once with its unit (in the
name) and its source (in the declaration), and the reason for every number that stayed unknown.

Each section has one pure deriver (`derive/latency.py`, `derive/traffic.py`, ...) that builds it from its
own readings; `derive/evidence.py` only assembles them. Rules refer to a number by its class attribute
(`Latency.queue_p95_s`: a slot descriptor), so a wrong name fails at import, not as a silent skip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

# A number nobody explained: the server simply does not export it (another vLLM version, a flag).
NOT_REPORTED = "not reported by this server"


def num(source: str) -> Any:
    """A number of a section: unknown (None) until its deriver knows it. `source` says where it comes
    from (the metric, the file, the arithmetic) and is shown with it."""
    return field(default=None, metadata={"source": source})


@dataclass(frozen=True, slots=True, kw_only=True)
class Section:
    """Base of every section. `missing` maps each field that is None to why."""

    missing: Mapping[str, str] = field(default_factory=dict)

    def values(self) -> dict[str, object]:
        """Every number of the section, by name, in declaration order."""
        return {name: getattr(self, name) for name in number_names(type(self))}


_NUMBER_NAMES: dict[type, tuple[str, ...]] = {}


def number_names(cls: type[Section]) -> tuple[str, ...]:
    """The numbers a section class declares, in order (dataclasses.fields() walks them anew each call,
    and a fleet diagnosis asks it some 30 times a replica)."""
    names = _NUMBER_NAMES.get(cls)
    if names is None:
        names = _NUMBER_NAMES[cls] = tuple(f.name for f in fields(cls) if f.name != "missing")
    return names


S = TypeVar("S", bound=Section)


def build(
    cls: type[S], values: Mapping[str, object], why: Mapping[str, str], default: str = NOT_REPORTED
) -> S:
    """The section with `values`; every field left None gets its reason from `why`, else `default`."""
    unknown = set(values).difference(number_names(cls))
    if unknown:  # a deriver that sets a field its section does not declare is a bug
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    section = cls(**values)  # type: ignore[arg-type]
    missing = {name: why.get(name, default) for name, value in section.values().items() if value is None}
    object.__setattr__(section, "missing", missing)
    return section


def group(why: dict[str, str], names: Iterable[str], reason: str) -> None:
    """The same reason for several fields (first reason wins: the most specific is given first)."""
    for name in names:
        why.setdefault(name, reason)


def unknown(cls: type[S], reason: str) -> S:
    """The section with every number unknown for one reason (its readings are absent)."""
    return build(cls, {}, {}, default=reason)


def field_names(cls: type[Section]) -> list[str]:
    return [f.name for f in fields(cls) if f.name != "missing"]


def source_of(cls: type[Section], name: str) -> str:
    for f in fields(cls):
        if f.name == name:
            return str(f.metadata.get("source", ""))
    raise KeyError(name)
