"""The client's view (step 3, a stress report) and the bypass step's (step 4), when the bundle has them.

`stress.json` and `bypass.json` are read here and only here: `StressSummary.from_dict` and
`BypassOverhead.from_dict` are the one parser of each (the bypass step reads a stress report through
the first). Numbers are taken only when they are finite numbers of the right type; anything else is
unknown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from diagnose.derive.section import Section, build, group, num


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _section(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True, slots=True)
class StressSummary:
    """What a stress report (stress.json: `LoadReport.to_dict()`) says about the served load."""

    mode: str | None = None  # "open" or "closed"
    calls: int | None = None  # calls with a latency (the latency sample's count)
    calls_per_s: float | None = None
    pairs_per_s: float | None = None
    docs_per_call_mean: float | None = None
    concurrency: int | None = None
    rate_per_s: float | None = None  # the offered rate of an open loop
    latency_mean_s: float | None = None  # per call, from the intended send time in an open loop
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None

    @classmethod
    def from_dict(cls, doc: Any) -> StressSummary | None:
        """None when `doc` is not a stress report (not a JSON object)."""
        if not isinstance(doc, Mapping):
            return None
        settings, bodies, latency = (
            _section(doc, "settings"),
            _section(doc, "bodies"),
            _section(doc, "latency"),
        )
        mode = doc.get("mode")
        return cls(
            mode=mode if isinstance(mode, str) else None,
            calls=_int(latency.get("count")),
            calls_per_s=_num(doc.get("calls_per_s")),
            pairs_per_s=_num(doc.get("pairs_per_s")),
            docs_per_call_mean=_num(bodies.get("docs_per_call_mean")),
            concurrency=_int(settings.get("concurrency")),
            rate_per_s=_num(settings.get("rate_per_s")),
            latency_mean_s=_num(latency.get("mean_s")),
            latency_p50_s=_num(latency.get("p50_s")),
            latency_p95_s=_num(latency.get("p95_s")),
        )


@dataclass(frozen=True, slots=True)
class BypassOverhead:
    """One served-vs-direct comparison of a bypass report (bypass.json `overhead[]`)."""

    source: str | None  # "url": measured against the live server, same pairs and batches
    direct_pairs_per_s: float | None
    served_pairs_per_s: float | None
    share_of_served: float | None  # (served - direct time) / served time

    @classmethod
    def from_dict(cls, row: Any) -> BypassOverhead | None:
        if not isinstance(row, Mapping):
            return None
        source = row.get("source")
        return cls(
            source=source if isinstance(source, str) else None,
            direct_pairs_per_s=_num(row.get("direct_pairs_per_s")),
            served_pairs_per_s=_num(row.get("served_pairs_per_s")),
            share_of_served=_num(row.get("share_of_served")),
        )

    @classmethod
    def best_of(cls, report: Any) -> BypassOverhead | None:
        """The comparison against the server itself first (same pairs, same batches: the cleanest)."""
        rows = report.get("overhead") if isinstance(report, Mapping) else None
        parsed = (
            [o for r in rows or [] if (o := cls.from_dict(r)) is not None] if isinstance(rows, list) else []
        )
        parsed.sort(key=lambda o: o.source != "url")
        return parsed[0] if parsed else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Client(Section):
    client_mean_s: float | None = num("stress.json latency.mean_s: per call, as the load client saw it")
    client_p95_s: float | None = num("stress.json latency.p95_s")
    bypass_direct_pairs_per_s: float | None = num(
        "bypass.json overhead: the model alone, one batch at a time"
    )
    bypass_served_pairs_per_s: float | None = num("bypass.json overhead: the same pairs and batches served")
    bypass_overhead_share: float | None = num("(served - direct time) / served time, 0-1")


BYPASS_FIELDS = ("bypass_direct_pairs_per_s", "bypass_served_pairs_per_s", "bypass_overhead_share")


def derive_client(stress: StressSummary | None, bypass: BypassOverhead | None) -> Client:
    why: dict[str, str] = {}
    values: dict[str, object] = {}
    if stress is not None and (stress.latency_mean_s is not None or stress.latency_p95_s is not None):
        values.update(client_mean_s=stress.latency_mean_s, client_p95_s=stress.latency_p95_s)
    else:
        group(
            why,
            ["client_mean_s", "client_p95_s"],
            "no stress report: run `rerank-doctor stress` for the client's view",
        )
    if bypass is not None:
        values.update(
            bypass_direct_pairs_per_s=bypass.direct_pairs_per_s,
            bypass_served_pairs_per_s=bypass.served_pairs_per_s,
            bypass_overhead_share=bypass.share_of_served,
        )
    else:
        group(why, BYPASS_FIELDS, "no bypass report: run `rerank-doctor bypass --url URL --save BUNDLE`")
    return build(Client, values, why)
