"""The bypass report as text: rich renderables built from a `BypassReport` (pure; the caller prints them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import RenderableType

    from diagnose.bypass.report import BypassReport, Timing


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _num(value: float | None, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def _timing_row(name: str, t: Timing) -> list[str]:
    return [
        name,
        str(t.pairs),
        str(t.batches),
        str(t.batch_size),
        _num(t.pairs_per_s),
        _num(t.ms_per_pair, ".2f"),
        _ms(t.batch_p50_s),
        _ms(t.batch_p95_s),
    ]


def render(report: BypassReport) -> list[RenderableType]:
    from rich.table import Table
    from rich.text import Text

    out: list[RenderableType] = []
    d = report.direct
    where = d.device_name or d.device
    versions = ", ".join(f"{k} {v}" for k, v in d.versions.items() if v)
    out.append(
        Text(
            f"bypass: {report.pairs} pairs of {report.model_dir}, batch size {report.batch_size}; "
            f"direct = {d.engine} on {where} ({d.dtype}; {versions}; model loaded in {_num(d.load_s)} s)"
        )
    )
    speed = Table(title="speed (one batch in flight)", show_edge=False)
    for col in ("path", "pairs", "batches", "batch", "pairs/s", "ms/pair", "batch p50", "batch p95"):
        speed.add_column(col, justify="left" if col == "path" else "right")
    speed.add_row(*_timing_row(f"direct ({d.engine})", d.timing))
    if d.forward_timing is not None:
        speed.add_row(*_timing_row("  model forward only", d.forward_timing))
    if report.served is not None:
        s = report.served
        speed.add_row(*_timing_row(f"served {s.endpoint} ({s.http_calls} calls)", s.timing))
    if report.stress is not None:
        st = report.stress
        speed.add_row(
            f"served, stress.json ({st.mode or '?'} loop)",
            "-",
            "-",
            _num(st.docs_per_call_mean, ".0f"),
            _num(st.pairs_per_s),
            _num(1000.0 / st.pairs_per_s, ".2f"),
            _ms(st.latency_p50_s),
            _ms(st.latency_p95_s),
        )
    out.append(speed)

    if report.overhead:
        over = Table(title="engine + serving overhead per pair (served - direct)", show_edge=False)
        for col in (
            "from",
            "served pairs/s",
            "direct pairs/s",
            "overhead/pair",
            "share of served",
            "served/direct",
        ):
            over.add_column(col, justify="left" if col == "from" else "right")
        for o in report.overhead:
            over.add_row(
                "--url (same pairs)" if o.source == "url" else "stress.json",
                _num(o.served_pairs_per_s),
                _num(o.direct_pairs_per_s),
                f"{o.per_pair_ms:.2f} ms",
                f"{o.share_of_served * 100:.0f} %",
                f"{o.served_over_direct:.2f}x",
            )
        out.append(over)

    sc = report.scores
    if sc is not None:
        verdict = "agree" if sc.agree else f"DISAGREE ({sc.problem})"
        style = "green" if sc.agree else "bold red"
        line = Text("scores: ")
        line.append(verdict, style=style)
        line.append(f" — {sc.one_line()}; direct = {sc.activation}(logit) ({report.activation_why})")
        out.append(line)
    elif report.served is None:
        out.append(Text("scores: not compared (no --url: pass one to check served scores against the model)"))

    if report.samples:
        samples = Table(title="first pairs", show_edge=False)
        keys = [k for k in report.samples[0] if k not in ("query", "document")]
        samples.add_column("document", justify="left", max_width=40, no_wrap=True)
        for k in keys:
            samples.add_column(k.replace("_", " "), justify="right")
        for row in report.samples:
            samples.add_row(row["document"], *(_num(row.get(k), ".5f") for k in keys))
        out.append(samples)

    for f in report.findings:
        text = Text(f"[{f.severity.label}] {f.label}: ", style="bold red" if f.severity >= 3 else "yellow")
        text.append(f"{f.title} — {f.detail}")
        out.append(text)
        for tip in f.suggestions:
            out.append(Text(f"    {tip.flag} ({tip.direction}): {tip.why}"))
    for note in report.notes:
        out.append(Text(f"note: {note}", style="dim"))
    return out
