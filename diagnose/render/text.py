"""The report for people: pure rich builders (they return renderables and print nothing).

Every piece of text from a finding goes in as `Text`, never as markup, so a "[" in a handler name or a
flag value cannot be taken for a style tag. Tests render to
`Console(file=io.StringIO(), width=100, color_system=None)`, and at width 80 (tests/test_width80.py).
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from diagnose.report import Finding, Report, Severity

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
    where = report.source or "unknown source"
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
    table.add_column("now")
    table.add_column("try")
    table.add_column("why", ratio=1)
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


def report_renderable(report: Report, *, details: bool = True) -> Group:
    """The whole report: verdict, findings table, one panel per finding, rules skipped and why."""
    parts: list[RenderableType] = [verdict_panel(report), findings_table(report)]
    if details:
        parts.extend(finding_panel(f) for f in report.findings)
    if report.skipped:
        parts.append(skipped_table(report))
    return Group(*parts)
