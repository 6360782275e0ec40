"""The report as one self-contained HTML file: verdict, causes, flags to change, what was not judged,
the window's charts, and the facts of the collection. Pure: a string out, no I/O but reading the
vendored chart library from the package.

Opens offline: uPlot (diagnose/render/vendor/uplot/, MIT) and the data are inlined; nothing is fetched.
uPlot was chosen by measurement over matplotlib SVG and plotly's offline bundle (benchmarks/html_report.py).

Every text from the bundle or the report goes through `redact_command_line` and `html.escape`: a
command line, a URL with userinfo or a finding that quotes a flag can carry a secret, and none may reach
a file that people attach to tickets.

The page reports what it drew for tests and people alike: each chart's element gets `data-points`
(known values it was given) and `data-painted` (canvas pixels of each series' colour after drawing),
and `<body>` gets `data-charts-drawn`, `data-charts-ms` and `data-errors` once every chart has drawn.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from diagnose import __version__
from diagnose.derive.processes import cpu_by_role
from diagnose.derive.series import Chart, Series, WindowSeries
from diagnose.readings import Bundle
from diagnose.redact import redact_command_line
from diagnose.render.text import format_number
from diagnose.report import Finding, Report, Severity

UPLOT_VERSION = "1.6.32"

_SEVERITY_COLOUR = {
    Severity.OK: "#15803d",
    Severity.INFO: "#0369a1",
    Severity.WARNING: "#b45309",
    Severity.CRITICAL: "#b91c1c",
}
# Series colours: distinct from each other, from the grey of the axes, and from the threshold colours,
# so the page can count each series' own pixels to prove it drew.
PALETTE = ("#2563eb", "#db2777", "#059669", "#7c3aed", "#ea580c", "#0891b2")
_THRESHOLD_COLOURS = ("#d97706", "#dc2626")  # the ladder: warning, then critical
_REFERENCE_COLOUR = "#6b7280"  # a fact, not a rule's number (memory.total)


def render_html(report: Report, series: WindowSeries, bundle: Bundle | None = None) -> str:
    """The whole page. `bundle` gives the collection facts (version, model, flags, host)."""
    body = "\n".join(
        [
            _verdict(report),
            _findings(report.findings, report.verdict.rule_id),
            _suggestions(report.findings),
            _not_judged(report),
            charts_section(series),
            _facts(report, series, bundle),
            f"<footer>rerank-doctor {html.escape(__version__)} · charts by uPlot {UPLOT_VERSION} (MIT) · "
            "this file opens offline</footer>",
        ]
    )
    title = f"rerank-doctor: {report.verdict.label} ({report.verdict.severity.label})"
    return page(title, body, chart_specs(series))


def page(title: str, body: str, charts: list[dict[str, Any]]) -> str:
    """The page around `body`: styles, the chart data (from `chart_specs`) and the script that draws it.
    Shared with the fleet report (diagnose/render/fleet_html.py)."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Nothing may load from the network: the report is attached to tickets and opened anywhere.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{_t(title)}</title>"
        f"<style>{_vendor('uPlot.min.css')}\n{_CSS}</style></head>\n"
        f"<body>\n<main>\n{body}\n</main>\n"
        f'<script type="application/json" id="chart-data">{_chart_json(charts)}</script>\n'
        f"<script>{_vendor('uPlot.iife.min.js')}</script>\n"
        f"<script>{_JS}</script>\n"
        "</body></html>\n"
    )


# ------------------------------------------------------------------------------------------------


def _t(text: object) -> str:
    """Escaped and redacted: the one way any text reaches the page."""
    return html.escape(redact_command_line(str(text)))


def _badge(severity: Severity) -> str:
    colour = _SEVERITY_COLOUR[severity]
    return f'<span class="badge" style="background:{colour}">{severity.label.upper()}</span>'


def _verdict(report: Report) -> str:
    v = report.verdict
    decided = next((f for f in report.findings if f.rule_id == v.rule_id), None)
    why = v.why or (decided.title if decided is not None else "no finding decided the verdict")
    window = f" · {report.window_s:.0f} s window" if report.window_s else ""
    contributing = (
        f'<div class="muted">contributing: {_t(", ".join(v.contributing))}</div>' if v.contributing else ""
    )
    return (
        f'<section class="verdict" style="border-color:{_SEVERITY_COLOUR[v.severity]}">'
        f'<div class="label">{_t(v.label)} {_badge(v.severity)}'
        f' <span class="muted">confidence {_t(v.confidence)}</span></div>'
        f'<div class="why">{_t(why)}</div>{contributing}'
        f'<div class="muted">{_t(report.source or "unknown source")}{window}</div>{_notes(report)}</section>'
    )


def _notes(report: Report) -> str:
    """What the reader must know about the input before trusting the verdict (a scrape lost, the window
    cut short, lines dropped): beside the verdict, as the terminal prints them under it."""
    if not report.notes:
        return ""
    items = "".join(f"<li>{_t(n)}</li>" for n in report.notes)
    return f'<ul class="input-notes" aria-label="about the input">{items}</ul>'


def _findings(findings: list[Finding], decided: str | None) -> str:
    if not findings:
        return "<section><h2>Causes and findings</h2><p>No finding.</p></section>"
    items = []
    for rank, f in enumerate(findings, 1):
        numbers = "".join(
            f"<div><dt>{_t(name)}</dt><dd>{_t(format_number(value))}</dd></div>"
            for name, value in f.numbers.items()
        )
        provisional = (
            '<p class="muted">Provisional rule: its signature is not yet established on a real server.</p>'
            if f.provisional
            else ""
        )
        # Causes open, notes folded: a laptop screen shows what binds before the request-shape notes.
        opened = " open" if f.severity >= Severity.WARNING or f.rule_id == decided else ""
        items.append(
            f"<li><details{opened}><summary>{rank}. {_badge(f.severity)} <b>{_t(f.title)}</b></summary>"
            f'<div class="muted">{_t(f.rule_id)} · {_t(f.label)} · {_t(f.kind)} · step {f.step} · '
            f"confidence {_t(f.confidence)}</div>"
            f"<p>{_t(f.detail)}</p>{provisional}"
            + (f'<dl class="numbers">{numbers}</dl>' if numbers else "")
            + "</details></li>"
        )
    head = "<section><h2>Causes and findings, worst first</h2>"
    return f'{head}<ol class="findings">{"".join(items)}</ol></section>'


def _suggestions(findings: list[Finding]) -> str:
    rows = []
    seen: set[str] = set()
    for f in findings:  # worst first: the first finding to name a flag gives its advice
        for s in f.suggestions:
            if s.flag in seen:
                continue
            seen.add(s.flag)
            proposed = s.proposed if s.proposed is not None else "—"
            rows.append(
                f"<tr><td><code>{_t(s.flag)}</code></td><td>{_t(s.current or 'unknown')}</td>"
                f"<td><b>{_t(proposed)}</b> <span class=muted>({_t(s.direction)})</span></td>"
                f"<td>{_t(s.why)} <span class=muted>[{_t(f.rule_id)}]</span></td></tr>"
            )
    if not rows:
        return "<section><h2>Suggested flags</h2><p>No flag to change.</p></section>"
    return (
        "<section><h2>Suggested flags</h2><table class=grid><thead><tr><th>flag</th><th>now</th>"
        f"<th>try</th><th>why</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _not_judged(report: Report) -> str:
    parts = ["<section><h2>What could not be judged, and how to get it</h2>"]
    if report.skipped:
        rows = "".join(f"<tr><td>{_t(s.rule_id)}</td><td>{_t(s.reason)}</td></tr>" for s in report.skipped)
        parts.append(
            f"<table class=grid><thead><tr><th>rule</th><th>why, and the fix</th></tr></thead>{rows}</table>"
        )
    else:
        parts.append("<p>Every rule could judge.</p>")
    if report.missing:
        # Readings that share a reason are listed once: twenty GPU fields do not need twenty lines.
        by_reason: dict[str, list[str]] = {}
        for name, reason in report.missing.items():
            by_reason.setdefault(reason, []).append(name)
        rows = "".join(
            f"<tr><td>{_t(reason)}</td><td class=muted>{_t(', '.join(names))}</td></tr>"
            for reason, names in by_reason.items()
        )
        parts.append(
            f"<details><summary>{len(report.missing)} readings unknown, by reason</summary>"
            f"<table class=grid><thead><tr><th>why</th><th>readings</th></tr></thead>{rows}</table></details>"
        )
    parts.append("</section>")
    return "".join(parts)


def charts_section(series: WindowSeries, prefix: str = "", heading: str = "The window") -> str:
    """The charts' boxes and what was not drawn; `prefix` keeps element ids apart when a page holds several
    windows (the fleet report: one per replica)."""
    drawn, absent = [], []
    for c in series.charts:
        if c.absent is not None:
            absent.append(f"<li><b>{_t(c.title)}</b>: {_t(c.absent)}</li>")
            continue
        missing = "".join(f"<li>{_t(s.label)}: {_t(s.absent)}</li>" for s in c.series if s.absent is not None)
        notes = "".join(f"<li>{_t(n)}</li>" for n in c.notes)
        extra = f'<ul class="notes">{notes}{missing}</ul>' if notes or missing else ""
        sources = "".join(f"<li>{_t(s.label)}: {_t(s.source)}</li>" for s in _drawn(c.series))
        drawn.append(
            f'<figure class="chart-box"><figcaption>{_t(c.title)} <span class=muted>({_t(c.unit)})</span>'
            f'</figcaption><div class="chart" id="chart-{_t(prefix + c.key)}" role="img" '
            f'aria-label="{_t(_summary(c))}"></div>{extra}'
            f'<details class="sources"><summary>where the numbers come from</summary><ul>{sources}</ul>'
            "</details></figure>"
        )
    start = ""
    if series.start_unix:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(series.start_unix))
        start = f" Time is in seconds from the window's start, {stamp}."
    absent_html = (
        f'<div class="absent"><b>Not drawn, and why</b><ul>{"".join(absent)}</ul></div>' if absent else ""
    )
    return (
        f"<section><h2>{_t(heading)}</h2><p class=muted>Dashed lines are the thresholds the rules judge by "
        f"(diagnose/thresholds.py, or your --thresholds file).{start}</p>"
        f'<div class="charts">{"".join(drawn)}</div>{absent_html}</section>'
    )


def _facts(report: Report, series: WindowSeries, bundle: Bundle | None) -> str:
    rows: list[tuple[str, str]] = [("source", report.source or "unknown")]
    if bundle is not None:
        server = bundle.server
        rows.append(("vLLM version", server.version or "unknown (no /version)"))
        rows.append(("model", server.model_id or "unknown (no /v1/models)"))
        if server.max_model_len is not None:
            rows.append(("max_model_len", f"{server.max_model_len:,}"))
        host = urlsplit(server.url).hostname if server.url else None
        rows.append(("host", host or "unknown"))
        rows.append(("flags", server.flags or "unknown (run on the serving host, or add flags.txt)"))
        if server.env:
            rows.append(("environment", " ".join(f"{k}={v}" for k, v in sorted(server.env.items()))))
        gpus = {g.index: g.name for g in bundle.gpu}
        if gpus:
            names = sorted({n or "unnamed GPU" for n in gpus.values()})
            rows.append(("GPUs", f"{len(gpus)} × {', '.join(names)}"))
        roles = cpu_by_role(bundle.processes)
        found = ", ".join(f"{r.process_count} {role}" for role, r in sorted(roles.items()) if role != "host")
        if found:
            rows.append(("processes", found))
        rows.append(("/metrics dumps", str(len(bundle.dumps))))
        rows.extend(
            (f"collector: {i.collector}", i.reason + (f" — {i.fix}" if i.fix else "")) for i in bundle.issues
        )
    if series.start_unix:
        start = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(series.start_unix))
        length = f", {series.window_s:.1f} s" if series.window_s else ""
        rows.append(("window", f"from {start}{length}"))
    table = "".join(f"<tr><th>{_t(k)}</th><td>{_t(v)}</td></tr>" for k, v in rows)
    return f'<section><h2>The collection</h2><table class="facts">{table}</table></section>'


def chart_specs(series: WindowSeries, prefix: str = "") -> list[dict[str, Any]]:
    """What the page's script draws for `series`, keyed as `charts_section(series, prefix)` names them."""
    charts: list[dict[str, Any]] = []
    times = [t for c in series.charts for s in c.series for t in s.t_s]
    x_min = min(0.0, *times) if times else 0.0
    x_max = max(series.window_s or 0.0, *times) if times else 1.0
    x_max = x_max if x_max > x_min else x_min + 1.0
    for c in series.charts:
        if c.absent is not None:
            continue
        charts.append(
            {
                "key": prefix + c.key,
                "unit": c.unit,
                "x_min": round(x_min, 3),
                "x_max": round(x_max, 3),
                "series": [
                    _series_json(s, PALETTE[i % len(PALETTE)]) for i, s in enumerate(_drawn(c.series))
                ],
                "thresholds": [
                    {
                        "label": f"{th.label} = {format_number(th.value)} {c.unit}",
                        "value": th.value,
                        "colour": _REFERENCE_COLOUR
                        if th.fact
                        else _THRESHOLD_COLOURS[min(i, len(_THRESHOLD_COLOURS) - 1)],
                    }
                    for i, th in enumerate(c.thresholds)
                ],
            }
        )
    return charts


def _chart_json(charts: list[dict[str, Any]]) -> str:
    text = json.dumps({"charts": charts}, separators=(",", ":"), allow_nan=False)
    # Inside <script>, "</script>" or "<!--" in a label would end the block: no "<" may appear as is.
    return text.replace("<", "\\u003c")


def _summary(chart: Chart) -> str:
    """The chart in one sentence, for screen readers and for text search in the file."""
    parts = []
    for s in _drawn(chart.series):
        known = [v for v in s.values if v is not None]
        parts.append(f"{s.label}: {len(known)} points, max {format_number(max(known))} {s.unit}")
    return f"{chart.title}. " + "; ".join(parts)


def _drawn(series: Iterable[Series]) -> list[Series]:
    return [s for s in series if s.absent is None]


def _series_json(s: Series, colour: str) -> dict[str, Any]:
    return {
        "label": redact_command_line(s.label),
        "colour": colour,
        "t": [round(t, 3) for t in s.t_s],
        "v": [None if v is None else round(v, 6) for v in s.values],
    }


def _vendor(name: str) -> str:
    return resources.files("diagnose.render").joinpath("vendor", "uplot", name).read_text(encoding="utf-8")


def chart_keys(series: WindowSeries) -> list[str]:
    """The charts the page draws (tests compare the DOM with it)."""
    return [c.key for c in series.charts if c.absent is None]


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#111827;
  margin:0;background:#f9fafb}
main{max-width:1180px;margin:0 auto;padding:16px 20px 32px}
h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.verdict{background:#fff;border-left:8px solid;padding:12px 16px;border-radius:6px;
  box-shadow:0 1px 2px #0001}
.verdict .label{font-size:26px;font-weight:700}
.verdict .why{font-size:18px;margin:4px 0}
.badge{display:inline-block;color:#fff;font-size:12px;font-weight:700;padding:1px 7px;border-radius:4px;
  vertical-align:middle;letter-spacing:.03em}
.muted{color:#6b7280;font-size:13px}
ol.findings{padding-left:0;list-style:none;margin:0}
ol.findings li{background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:6px 12px;margin:6px 0}
ol.findings summary{cursor:pointer;margin:0}
ol.findings p{margin:4px 0}
table{border-collapse:collapse}
dl.numbers{columns:3 220px;column-gap:24px;margin:4px 0;font-size:13px;color:#374151}
dl.numbers div{display:flex;justify-content:space-between;break-inside:avoid;border-bottom:1px dotted #e5e7eb}
dl.numbers dt{margin-right:8px}dl.numbers dd{margin:0;font-variant-numeric:tabular-nums}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.grid{width:100%;background:#fff;font-size:14px}
table.grid th,table.grid td{border:1px solid #e5e7eb;padding:4px 8px;text-align:left;vertical-align:top}
table.grid th{background:#f3f4f6}
table.facts{background:#fff;font-size:14px;width:100%}
table.facts th{text-align:left;padding:3px 10px;width:150px;vertical-align:top;color:#374151}
table.facts td{padding:3px 10px;word-break:break-all;font-family:ui-monospace,"DejaVu Sans Mono",monospace;
  font-size:13px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}
figure.chart-box{margin:0;background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:8px}
figcaption{font-weight:600;margin-bottom:4px}
.chart{min-height:250px}
.u-legend .u-series th{font-weight:400}
.u-legend .u-label{max-width:420px;white-space:normal;vertical-align:middle;text-align:left}
.u-legend .u-marker{vertical-align:middle}
ul.notes{margin:4px 0 0;padding-left:18px;font-size:12px;color:#6b7280}
ul.input-notes{margin:8px 0 0;padding-left:18px;color:#92400e}
.absent{background:#fff7ed;border:1px solid #fed7aa;border-radius:6px;padding:8px 12px;margin-top:12px}
.absent ul{margin:4px 0;padding-left:18px}
details summary{cursor:pointer;margin:8px 0}
details.sources{font-size:12px;color:#6b7280}details.sources summary{margin:4px 0 0}
details.sources ul{margin:2px 0;padding-left:18px}
footer{margin-top:24px;color:#9ca3af;font-size:12px}
.u-legend{font-size:12px}
"""

# Draws every chart, then records what it drew (see the module docstring).
_JS = r"""
(function () {
  "use strict";
  const errors = [];
  window.addEventListener("error", (e) => errors.push(String(e.message)));
  const consoleError = console.error;
  console.error = function (...args) { errors.push(args.join(" ")); consoleError.apply(console, args); };
  const spec = JSON.parse(document.getElementById("chart-data").textContent);
  const HEIGHT = 210;
  let drawn = 0;

  function rgb(hex) { return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)); }

  // Pixels of each series' colour inside the plot area: proof that the line (or its points) was drawn.
  function painted(u, colours) {
    const ctx = u.ctx, b = u.bbox;
    const img = ctx.getImageData(b.left, b.top, Math.max(1, b.width), Math.max(1, b.height)).data;
    const want = colours.map(rgb), counts = colours.map(() => 0);
    for (let p = 0; p < img.length; p += 4) {
      if (img[p + 3] < 128) continue;
      for (let k = 0; k < want.length; k++) {
        const w = want[k];
        if (Math.abs(img[p] - w[0]) + Math.abs(img[p + 1] - w[1]) + Math.abs(img[p + 2] - w[2]) < 60) {
          counts[k]++; break;
        }
      }
    }
    return counts;
  }

  function fmt(v) {
    if (v == null) return "";
    const a = Math.abs(v);
    if (a >= 10000) return (v / 1000).toFixed(0) + "k";
    if (a >= 100) return v.toFixed(0);
    if (a >= 1) return String(+v.toFixed(2));
    return String(+v.toPrecision(2));
  }

  function finished() {
    document.body.dataset.chartsDrawn = String(drawn);
    document.body.dataset.chartsMs = performance.now().toFixed(1);  // since navigation start
    document.body.dataset.errors = JSON.stringify(errors);
  }

  for (const c of spec.charts) {
    const el = document.getElementById("chart-" + c.key);
    try {
      // Threshold lines span the whole window as tables of their own, so a window of one interval
      // still shows them; the join marks the data series' missing x's as alignment gaps (spanned).
      const tables = c.series.map((s) => [s.t, s.v]);
      for (const th of c.thresholds) tables.push([[0, c.x_max], [th.value, th.value]]);
      const data = uPlot.join(tables);
      const series = [{ label: "t (s)" }];
      let points = 0;
      // Each later series a little thinner: two equal series (waiting and running both 0) stay visible.
      c.series.forEach((s, i) => {
        points += s.v.filter((v) => v != null).length;
        const width = Math.max(1.25, 3.5 - 0.75 * i);
        series.push({ label: s.label, stroke: s.colour, width,
                      points: { show: s.t.length <= 60, size: Math.max(4, 2.5 * width), fill: s.colour } });
      });
      for (const th of c.thresholds) {
        series.push({ label: th.label, stroke: th.colour, width: 1.5, dash: [7, 5],
                      points: { show: false } });
      }
      el.dataset.points = String(points);
      let counted = false;
      const opts = {
        width: Math.max(320, el.clientWidth), height: HEIGHT, series,
        legend: { live: false },
        // Every quantity here is a duration, a rate, a count or a share: zero is the honest floor
        // (a hair below it, so that a line at 0 is not hidden under the axis).
        // The same x range on every chart (the window), so that charts line up by time.
        scales: { x: { time: false, auto: false, range: [c.x_min, c.x_max * 1.02] },
                  y: { range: (u, lo, hi) => {
                    const top = hi > 0 ? hi * 1.08 : 1;
                    return [-0.03 * top, top];
                  } } },
        axes: [{ label: "seconds from the window start", size: 40 },
               { label: c.unit, values: (u, vals) => vals.map(fmt), size: 56 }],
        cursor: { drag: { x: true, y: false } },
        hooks: { draw: [(u) => {
          el.dataset.painted = JSON.stringify(painted(u, c.series.map((s) => s.colour)));
          if (!counted) { counted = true; drawn++; if (drawn === spec.charts.length) finished(); }
        }] },
      };
      const plot = new uPlot(opts, data, el);
      window.addEventListener("resize", () =>
        plot.setSize({ width: Math.max(320, el.clientWidth), height: HEIGHT }));
    } catch (err) {
      errors.push(c.key + ": " + err);
      el.textContent = "chart failed: " + err;
    }
  }
  if (spec.charts.length === 0) finished();
  else setTimeout(() => { if (drawn < spec.charts.length) finished(); }, 3000);
})();
"""
