"""The report for people: pure rich builders (they return renderables and print nothing).

Every piece of text from a finding goes in as `Text`, never as markup, so a "[" in a handler name or a
flag value cannot be taken for a style tag. Tests render to
`Console(file=io.StringIO(), width=100, color_system=None)`, and at width 80 (tests/test_width80.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from diagnose.redact import redact_command_line
from diagnose.render.sparkline import sparkline
from diagnose.report import Finding, Report, Severity

if TYPE_CHECKING:
    from diagnose.derive.series import WindowSeries

STYLE = {
    Severity.OK: "green",
    Severity.INFO: "cyan",
    Severity.WARNING: "yellow",
    Severity.CRITICAL: "bold red",
}


def severity_text(severity: Severity) -> Text:
    return Text(severity.label.upper(), style=STYLE[severity])


def format_number(value: object) -> str:
    """A number as people read it: 3 significant figures, thousands separated; None is "unknown"."""
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    return str(value)


def verdict_panel(report: Report) -> Panel:
    v = report.verdict
    head = Text()
    head.append(v.label, style="bold " + STYLE[v.severity])
    head.append("  ")
    head.append_text(severity_text(v.severity))
    head.append(f"  confidence {v.confidence}")
    lines = [head]
    decided = next((f for f in report.findings if f.rule_id == v.rule_id), None)
    if v.why:
        lines.append(Text(v.why))
    elif decided is not None:
        lines.append(Text(decided.title))
    if v.contributing:
        lines.append(Text(f"contributing: {', '.join(v.contributing)}", style="dim"))
    lines.extend(Text(f"note: {note}", style="yellow") for note in report.notes)
    # A --url may carry userinfo (http://user:password@host): the terminal is no place for it either.
    where = redact_command_line(report.source) if report.source else "unknown source"
    window = f", {report.window_s:.0f} s window" if report.window_s else ""
    return Panel(Group(*lines), title="rerank-doctor verdict", subtitle=Text(f"{where}{window}"), expand=True)


def findings_table(report: Report) -> Table:
    table = Table(title="Findings", expand=True, show_lines=False)
    table.add_column("severity", no_wrap=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("step", justify="right")
    table.add_column("finding", ratio=1)
    for f in report.findings:
        table.add_row(severity_text(f.severity), Text(f.rule_id), str(f.step), Text(f.title))
    return table


def numbers_table(finding: Finding) -> Table:
    table = Table(show_header=True, box=None, pad_edge=False)
    table.add_column("evidence", style="dim")
    table.add_column("value", justify="right", no_wrap=True)  # a number is never wrapped or cut
    for name, value in finding.numbers.items():
        table.add_row(Text(name), Text(format_number(value)))
    return table


def suggestions_table(finding: Finding) -> Table:
    table = Table(show_header=True, box=None, pad_edge=False)
    # A flag is never cut (`--data-parallel…` is no use to type): its column is at least as wide as the
    # longest one; prose knobs and "why" wrap at spaces instead.
    flags = [s.flag for s in finding.suggestions if " " not in s.flag]
    table.add_column("knob", min_width=max((len(f) for f in flags), default=4))
    table.add_column("change", no_wrap=True)
    # A long word in "now"/"try" (`aiohttp.ClientSession,`) folds onto the next line, never "…".
    table.add_column("now", overflow="fold")
    table.add_column("try", overflow="fold")
    table.add_column("why", ratio=1, overflow="fold")
    for s in finding.suggestions:
        table.add_row(
            Text(s.flag, style="bold"),
            Text(s.direction),
            Text(s.current if s.current is not None else "unknown"),
            Text(s.proposed if s.proposed is not None else "—"),
            Text(s.why),
        )
    return table


def finding_panel(finding: Finding) -> Panel:
    parts: list[RenderableType] = [Text(finding.detail)]
    if finding.provisional:
        parts.append(
            Text("Provisional rule: its signature is not yet established on a real server.", style="italic")
        )
    if finding.numbers:
        parts.append(numbers_table(finding))
    if finding.suggestions:
        parts.append(Text("What to change", style="bold"))
        parts.append(suggestions_table(finding))
    title = Text.assemble(
        severity_text(finding.severity),
        " ",
        (finding.rule_id, "bold"),
        f" · {finding.label} · {finding.kind}",
    )
    return Panel(
        Group(*parts),
        title=title,
        title_align="left",
        subtitle=Text(f"step {finding.step} · confidence {finding.confidence}"),
        border_style=STYLE[finding.severity],
    )


def skipped_table(report: Report) -> Table:
    table = Table(title="Not judged (missing evidence)", expand=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("why", ratio=1)
    for s in report.skipped:
        table.add_row(Text(s.rule_id), Text(s.reason))
    return table


# The series that say most about a window, in the order people read them (cause after symptom).
SPARK_SERIES = (
    ("queue_mean_s", "queue mean"),
    ("http_p95_s", "HTTP p95"),
    ("pairs_per_s", "pairs/s"),
    ("waiting", "waiting"),
    ("api_server_cpu_pct", "API server CPU"),
    ("engine_core_cpu_pct", "EngineCore CPU"),
    ("gpu_util_pct", "GPU busy"),
    ("time_wait", "TIME_WAIT on port"),
)
SPARK_WIDTH = 24


def window_table(series: WindowSeries) -> Table:
    """Sparklines of the key series beside their numbers; fits 80 columns. Absent ones say why."""
    table = Table(title="The window", box=None, pad_edge=False, title_justify="left", show_header=False)
    table.add_column("series", no_wrap=True)
    table.add_column("shape", no_wrap=True, width=SPARK_WIDTH)
    table.add_column("numbers", no_wrap=True, overflow="ellipsis", max_width=32)
    found = {s.key: s for chart in series.charts for s in chart.series}
    for key, label in SPARK_SERIES:
        s = found.get(key)
        if s is None:
            continue
        if s.absent is not None:
            table.add_row(Text(label, style="dim"), Text("—", style="dim"), Text(s.absent, style="dim"))
            continue
        known = [v for v in s.values if v is not None]
        mean, peak, unit = sum(known) / len(known), max(known), s.unit
        if unit == "s" and peak < 1:  # 0.0532 ms reads better than 5.32e-05 s
            mean, peak, unit = mean * 1000, peak * 1000, "ms"
        suffix = "" if unit in ("requests", "sockets") else f" {unit}"
        numbers = f"mean {format_number(mean)} · max {format_number(peak)}{suffix}"
        table.add_row(Text(label), Text(sparkline(s.values, SPARK_WIDTH), style="cyan"), Text(numbers))
    return table


def report_renderable(report: Report, *, details: bool = True, series: WindowSeries | None = None) -> Group:
    """The whole report: verdict, the window's sparklines (when given), findings, panels, skipped rules."""
    parts: list[RenderableType] = [verdict_panel(report)]
    if series is not None:
        parts.append(window_table(series))
    parts.append(findings_table(report))
    if details:
        parts.extend(finding_panel(f) for f in report.findings)
    if report.skipped:
        parts.append(skipped_table(report))
    return Group(*parts)
