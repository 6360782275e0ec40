"""The fleet report as one self-contained HTML file: the fleet summary first, then one section per
replica, worst first, with its verdict and the same charts `report --html` draws for one server.

Pure: a string out. Built from diagnose/render/html.py's pieces (the page shell, the chart boxes and
their data, the escaping that redacts), so a replica's charts here are the single report's charts.
Only the worst MAX_CHARTED replicas are charted, to keep the file small; the table lists every replica
and the page says how many were left uncharted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from diagnose import __version__
from diagnose.derive.series import WindowSeries, window_series
from diagnose.fleet.summary import FleetReport, ReplicaResult
from diagnose.readings import Bundle
from diagnose.render.html import (
    _SEVERITY_COLOUR,
    UPLOT_VERSION,
    _badge,
    _t,
    chart_specs,
    charts_section,
    page,
)
from diagnose.render.text import format_number
from diagnose.report import Severity
from diagnose.thresholds import Thresholds

# ~12 charts of ~31 points each per replica: 20 replicas stay well under the 2 MB a report may take.
MAX_CHARTED = 20
TOP_FINDINGS = 3


def fleet_series(
    report: FleetReport, thresholds: Thresholds | None, charts: Mapping[str, Bundle] | None = None
) -> list[WindowSeries]:
    """The window's series of the replicas the page charts, in the report's order (worst first).
    `charts`: their step-by-step bundles (fleet/fetch.chart_bundles), by replica; a replica without one is
    charted from the bundle it was diagnosed from."""
    charts = charts or {}
    return [
        window_series(charts.get(r.replica, r.data.bundle), thresholds) for r in report.replicas[:MAX_CHARTED]
    ]


def render_fleet_html(report: FleetReport, series: list[WindowSeries]) -> str:
    """The whole page; `series[i]` is replica i's (from `fleet_series`)."""
    charted = report.replicas[: len(series)]
    body = "\n".join(
        [
            _fleet_verdict(report),
            _replica_table(report, len(charted)),
            _summary(report),
            *(_replica_section(i, r, s) for i, (r, s) in enumerate(zip(charted, series, strict=True))),
            f"<footer>rerank-doctor {_t(__version__)} fleet report · {report.queries} queries, "
            f"{report.bytes_read / 1e6:.1f} MB read · charts by uPlot {UPLOT_VERSION} (MIT) · "
            "this file opens offline</footer>",
        ]
    )
    specs = [spec for i, s in enumerate(series) for spec in chart_specs(s, prefix=_prefix(i))]
    v = report.verdict
    return page(f"rerank-doctor fleet: {v.label} ({v.severity.label})", body, specs)


def _prefix(index: int) -> str:
    return f"r{index}-"


def _fleet_verdict(report: FleetReport) -> str:
    v = report.verdict
    w = report.window
    start = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(w.start_unix))
    selector = f" · selector {_t(report.selector)}" if report.selector else ""
    return (
        f'<section class="verdict" style="border-color:{_SEVERITY_COLOUR[v.severity]}">'
        f'<div class="label">Fleet: {_t(v.label)} {_badge(v.severity)}'
        f' <span class="muted">confidence {_t(v.confidence)}</span></div>'
        f'<div class="why">{len(report.replicas)} replicas by {_t(report.replica_label)}; '
        "worst first below</div>"
        f'<div class="muted">{_t(report.source)}{selector} · from {start}, {w.seconds:.0f} s window</div>'
        "</section>"
    )


def _replica_table(report: FleetReport, charted: int) -> str:
    rows = []
    for i, r in enumerate(report.replicas):
        v = r.report.verdict
        name = f'<a href="#replica-{i}">{_t(r.replica)}</a>' if i < charted else _t(r.replica)
        share = "unknown" if r.load_share is None else f"{100 * r.load_share:.0f} %"
        rows.append(
            f"<tr><td class=num>{i + 1}</td><td>{name}</td><td>{_badge(r.report.worst())} {_t(v.label)}</td>"
            f"<td>{_t(r.model_name or 'unknown')}</td><td class=num>{_t(format_number(r.pairs_per_s))}</td>"
            f"<td class=num>{_t(share)}</td><td class=muted>{_t('; '.join(r.notes))}</td></tr>"
        )
    left = len(report.replicas) - charted
    cap = (
        f"<p class=muted>Charts below for the worst {charted} replicas only, to keep this file small; "
        f"{left} more are listed here without charts.</p>"
        if left > 0
        else ""
    )
    return (
        "<section><h2>Replicas, worst first</h2>"
        "<table class=grid id=replicas><thead><tr><th>#</th><th>replica</th><th>verdict</th><th>model</th>"
        f"<th>pairs/s</th><th>load share</th><th>notes</th></tr></thead><tbody>{''.join(rows)}</tbody>"
        f"</table>{cap}</section>"
    )


def _summary(report: FleetReport) -> str:
    parts = ["<section><h2>The fleet</h2>"]
    labels = "".join(
        f"<tr><td>{_t(lab)}</td><td class=num>{n}</td></tr>" for lab, n in report.by_label.items()
    )
    parts.append(
        f"<table class=grid><thead><tr><th>verdict</th><th>replicas</th></tr></thead>{labels}</table>"
    )
    if report.imbalance:
        rows = "".join(
            f"<tr><td>{_t(i.replica)}</td><td>{_t(i.model_name)}</td>"
            f"<td class=num>{100 * i.load_share:.0f} %</td>"
            f"<td class=num>{100 * i.capacity_share:.0f} %"
            f"{'' if i.capacity_known else ' (equal capacity assumed)'}</td></tr>"
            for i in report.imbalance
        )
        parts.append(
            "<h3>Imbalance</h3><table class=grid><thead><tr><th>replica</th><th>model</th>"
            f"<th>share of load</th><th>share of capacity</th></tr></thead>{rows}</table>"
        )
    if report.stale:
        items = "".join(f"<li><b>{_t(s.replica)}</b>: {_t(s.reason)}</li>" for s in report.stale)
        parts.append(f"<h3>Stale, vanished or down</h3><ul>{items}</ul>")
    if report.versions:
        items = "".join(
            f"<li>{_t(model)}: "
            + "; ".join(f"{_t(ver)} on {len(names)}" for ver, names in sorted(by_version.items()))
            + "</li>"
            for model, by_version in sorted(report.versions.items())
        )
        parts.append(f"<h3>vLLM versions</h3><ul>{items}</ul>")
    h = report.headroom
    if h is not None:
        capacity = (
            f"; {h.replicas_with_capacity} replicas serving {format_number(h.served_by_those_pairs_per_s)} "
            f"pairs/s could serve about {format_number(h.capacity_pairs_per_s)}"
            if h.capacity_pairs_per_s is not None
            else ""
        )
        parts.append(
            f"<h3>Headroom</h3><p>{_t(format_number(h.served_pairs_per_s))} pairs/s served{_t(capacity)}; "
            f"{h.replicas_without_capacity} replicas with no implied capacity.</p>"
        )
    if report.warnings:
        items = "".join(f"<li>{_t(w)}</li>" for w in report.warnings)
        parts.append(f'<div class="absent"><b>Warnings from the query</b><ul>{items}</ul></div>')
    parts.append("</section>")
    return "".join(parts)


def _replica_section(index: int, r: ReplicaResult, series: WindowSeries) -> str:
    v = r.report.verdict
    worst = r.report.worst()
    findings = [f for f in r.report.findings if f.severity >= Severity.INFO][:TOP_FINDINGS]
    items = "".join(f"<li>{_badge(f.severity)} {_t(f.title)}</li>" for f in findings)
    why = v.why or (findings[0].title if findings else "no finding decided the verdict")
    head = (
        f'<section class="verdict replica" id="replica-{index}" data-replica="{_t(r.replica)}" '
        f'style="border-color:{_SEVERITY_COLOUR[worst]}">'
        f'<div class="label">{index + 1}. {_t(r.replica)}: {_t(v.label)} {_badge(worst)}'
        f' <span class="muted">confidence {_t(v.confidence)}</span></div>'
        f'<div class="why">{_t(why)}</div>'
        f'<div class="muted">{_t(r.model_name or "unknown model")} · '
        f"vLLM {_t(r.vllm_version or 'unknown')}</div>" + (f'<ul class="notes">{items}</ul>' if items else "")
    )
    return (
        head
        + charts_section(series, prefix=_prefix(index), heading=f"{r.replica}: the window")
        + "</section>"
    )
