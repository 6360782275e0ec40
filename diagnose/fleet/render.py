"""The fleet view for people (pure rich builders) and programs (JSON with a `schema_version`)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from diagnose import __version__
from diagnose.fleet.summary import FleetReport, ReplicaResult
from diagnose.render.json import _clean
from diagnose.render.text import STYLE, format_number, severity_text
from diagnose.report import Severity

SCHEMA_VERSION = 1
# The text view lists this many replicas; the JSON always lists all of them.
TEXT_ROWS = 20
TOP_FINDINGS = 5


def _verdict_dict(r: ReplicaResult) -> dict[str, Any]:
    v = r.report.verdict
    return {"label": v.label, "severity": v.severity.label, "confidence": v.confidence, "rule_id": v.rule_id}


def _replica_dict(r: ReplicaResult) -> dict[str, Any]:
    return {
        "replica": r.replica,
        "model_name": r.model_name,
        "vllm_version": r.vllm_version,
        "verdict": _verdict_dict(r),
        "worst_severity": r.report.worst().label,
        "pairs_per_s": r.pairs_per_s,
        "load_share": r.load_share,
        "capacity_pairs_per_s": r.capacity_pairs_per_s,
        "window_s": r.report.window_s,
        "findings": [
            {"rule_id": f.rule_id, "label": f.label, "severity": f.severity.label, "title": f.title}
            for f in r.report.findings
        ],
        "sources": dict(r.data.sources),
        "missing_sources": [
            {"source": i.collector, "reason": i.reason, "fix": i.fix} for i in r.data.bundle.issues
        ],
        "container_cpu_cores": dict(r.data.container_cpu_cores),
        "notes": list(r.notes),
    }


def fleet_to_dict(report: FleetReport) -> dict[str, Any]:
    v = report.verdict
    h = report.headroom
    return _clean(
        {
            "schema_version": SCHEMA_VERSION,
            "kind": "fleet",
            "tool_version": __version__,
            "source": report.source,
            "selector": report.selector,
            "replica_label": report.replica_label,
            "window": {
                "start_unix": report.window.start_unix,
                "end_unix": report.window.end_unix,
                "seconds": report.window.seconds,
            },
            "queries": report.queries,
            "bytes_read": report.bytes_read,
            "warnings": list(report.warnings),
            "verdict": {
                "label": v.label,
                "severity": v.severity.label,
                "confidence": v.confidence,
                "rule_id": v.rule_id,
            },
            "worst_severity": report.worst().label,
            "replicas_by_label": dict(report.by_label),
            "imbalance": [
                {
                    "model_name": i.model_name,
                    "replica": i.replica,
                    "load_share": i.load_share,
                    "capacity_share": i.capacity_share,
                    "capacity_known": i.capacity_known,
                }
                for i in report.imbalance
            ],
            "stale": [{"replica": s.replica, "reason": s.reason} for s in report.stale],
            "versions": report.versions,
            "mixed_versions": sorted(m for m, vs in report.versions.items() if len(vs) > 1),
            "headroom": None
            if h is None
            else {
                "served_pairs_per_s": h.served_pairs_per_s,
                "capacity_pairs_per_s": h.capacity_pairs_per_s,
                "served_by_those_pairs_per_s": h.served_by_those_pairs_per_s,
                "replicas_with_capacity": h.replicas_with_capacity,
                "replicas_without_capacity": h.replicas_without_capacity,
            },
            "replicas": [_replica_dict(r) for r in report.replicas],
        }
    )


def render_fleet_json(report: FleetReport) -> str:
    return json.dumps(fleet_to_dict(report), indent=2, ensure_ascii=False, allow_nan=False)


def _share(value: float | None) -> str:
    return "unknown" if value is None else f"{100 * value:.0f} %"


def fleet_renderable(report: FleetReport) -> RenderableType:
    v = report.verdict
    head = Text()
    head.append(f"{len(report.replicas)} replicas", style="bold")
    head.append("  fleet verdict ")
    head.append(v.label, style="bold " + STYLE[v.severity])
    head.append("  ")
    head.append_text(severity_text(v.severity))
    head.append(f"  ({v.confidence} confidence)\n")
    head.append(", ".join(f"{n} {label}" for label, n in report.by_label.items()))
    head.append(
        f"\n{report.source}  {report.selector or 'every vLLM series'}  by {report.replica_label}  "
        f"window {report.window.seconds:.0f} s  {report.queries} queries, {report.bytes_read / 1e6:.1f} MB",
        style="dim",
    )
    parts: list[RenderableType] = [Panel(head, title="rerank-doctor fleet", expand=False)]

    table = Table(title="replicas, worst first", show_lines=False)
    shown = report.replicas[:TEXT_ROWS]
    table.add_column("replica", no_wrap=True, min_width=max((len(r.replica) for r in shown), default=7))
    table.add_column("model", no_wrap=True, overflow="ellipsis", min_width=10, max_width=24)  # whole: --json
    table.add_column("verdict", no_wrap=True, min_width=7)
    table.add_column("severity", no_wrap=True, min_width=8)
    table.add_column("pairs/s", justify="right", no_wrap=True, min_width=7)
    table.add_column("share", justify="right", no_wrap=True, min_width=7)  # of its model's pairs/s
    for r in shown:
        table.add_row(
            Text(r.replica),
            Text(r.model_name or "unknown"),
            Text(r.report.verdict.label),
            severity_text(r.report.worst()),
            Text(format_number(r.pairs_per_s)),
            Text(_share(r.load_share)),
        )
    parts.append(table)
    if len(report.replicas) > TEXT_ROWS:
        parts.append(Text(f"... and {len(report.replicas) - TEXT_ROWS} more replicas (--json lists all)"))

    lines = Text()
    # The worst few replicas' top findings: the table says which, these lines say why.
    for r in [r for r in shown if r.report.findings and r.report.worst() > Severity.INFO][:TOP_FINDINGS]:
        lines.append(f"{r.replica}: ", style="bold")
        lines.append(r.report.findings[0].title + "\n")
    for i in report.imbalance:
        lines.append(
            f"imbalance: {i.replica} ({i.model_name}) serves {_share(i.load_share)} of the model's pairs/s "
            f"against {_share(i.capacity_share)} of its capacity"
            + ("" if i.capacity_known else " (equal capacity assumed)")
            + "\n",
            style="yellow",
        )
    for s in report.stale:
        lines.append(f"{s.replica}: {s.reason}\n", style="yellow")
    for model, versions in report.versions.items():
        if len(versions) > 1:
            listed = "; ".join(f"{ver}: {len(reps)} replicas" for ver, reps in sorted(versions.items()))
            lines.append(f"mixed vLLM versions for {model}: {listed}\n", style="yellow")
    h = report.headroom
    if h is not None:
        lines.append(f"fleet serves {format_number(h.served_pairs_per_s)} pairs/s")
        if h.capacity_pairs_per_s is not None and h.served_by_those_pairs_per_s is not None:
            lines.append(
                f"; {h.replicas_with_capacity} replicas with a measured busy resource serve "
                f"{format_number(h.served_by_those_pairs_per_s)} of an implied "
                f"{format_number(h.capacity_pairs_per_s)} pairs/s"
            )
        if h.replicas_without_capacity:
            lines.append(f"; capacity unknown for {h.replicas_without_capacity} (no busy resource measured)")
        lines.append("\n")
    missing: dict[tuple[str, str], int] = {}
    for r in report.replicas:
        for issue in r.data.bundle.issues:
            missing[(issue.reason, issue.fix)] = missing.get((issue.reason, issue.fix), 0) + 1
    for (reason, fix), n in sorted(missing.items(), key=lambda kv: -kv[1]):
        lines.append(f"{n} replicas: {reason} — {fix}\n", style="dim")
    for warning in report.warnings:
        lines.append(f"warning: {warning}\n", style="bold yellow")
    parts.append(lines)
    return Group(*parts)


def show_fleet(report: FleetReport, *, as_json: bool) -> None:
    from rich.console import Console

    if as_json:
        print(render_fleet_json(report))
    else:
        Console().print(fleet_renderable(report))
