"""The HTML report's chart library, measured: file size, build time, and draw time in headless Chromium.

Why it matters: the report is attached to tickets and must open offline on a laptop, under 2 MB for a
10-minute window, and draw at once. Candidates, each drawing the same series with the same threshold
lines into the same page (diagnose/render/html.py's sections):
- uPlot 1.6.32 (what the report uses): the vendored 51 KB script draws on canvas in the browser;
- matplotlib SVG (the reference): one inline SVG per chart, drawn in Python, no script at all;
- plotly's offline bundle: only when PLOTLY_JS points at plotly.min.js (`npm pack plotly.js-dist-min`).
Inputs: the H200 GPU-bound recording (tests/fixtures/gpu-h200-4b-8api-open, 40 s) and the same recording
repeated to the sample counts of a 10-minute window. Chromium: median of 3 loads, milliseconds from
navigation start until every chart has drawn (uPlot, plotly) or the load event (SVG).

Run: python benchmarks/html_report.py   (KEEP_DIR=DIR keeps the pages; matplotlib importable
     for the reference: e.g.
     pip install --target /tmp/mpl matplotlib && PYTHONPATH=/tmp/mpl python benchmarks/html_report.py;
     add PLOTLY_JS=/path/to/plotly.min.js for the third candidate)
"""

from __future__ import annotations

import io
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from browser_support import chromium, load, stretched  # noqa: E402

from diagnose.bundle import read_bundle  # noqa: E402
from diagnose.derive.series import WindowSeries, window_series  # noqa: E402
from diagnose.pipeline import diagnose  # noqa: E402
from diagnose.readings import Bundle  # noqa: E402
from diagnose.render.html import PALETTE, render_html  # noqa: E402

GPU_BOUND = REPO / "tests" / "fixtures" / "gpu-h200-4b-8api-open"
_SCRIPTS = re.compile(
    r'<script type="application/json" id="chart-data">.*?</script>\n<script>.*?</script>\n'
    r"<script>.*?</script>\n",
    re.DOTALL,
)
_MARK_LOAD = (
    '<script>addEventListener("load",()=>{document.body.dataset.chartsMs=performance.now().toFixed(1);'
    "document.body.dataset.chartsDrawn="
    'String(document.querySelectorAll(".chart svg").length)})'
    "</script>\n"
)


def uplot_page(bundle: Bundle, series: WindowSeries) -> str:
    return render_html(diagnose(bundle), series, bundle)


def _without_uplot(bundle: Bundle, series: WindowSeries, chart_html: Callable[[str], str], tail: str) -> str:
    page = _SCRIPTS.sub("", uplot_page(bundle, series))
    for c in series.charts:
        if c.absent is None:
            empty = f'<div class="chart" id="chart-{c.key}"></div>'
            page = page.replace(empty, f'<div class="chart" id="chart-{c.key}">{chart_html(c.key)}</div>')
    return page.replace("</body>", tail + "</body>")


def svg_page(bundle: Bundle, series: WindowSeries) -> str:
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    def one(key: str) -> str:
        chart = next(c for c in series.charts if c.key == key)
        fig, ax = plt.subplots(figsize=(5.4, 2.3), dpi=100)
        for i, s in enumerate(x for x in chart.series if x.absent is None):
            ax.plot(
                s.t_s,
                [float("nan") if v is None else v for v in s.values],
                color=PALETTE[i % 6],
                marker="o" if len(s.t_s) <= 60 else None,
                markersize=3,
                label=s.label,
            )
        for th in chart.thresholds:
            ax.axhline(th.value, linestyle="--", color="#d97706", linewidth=1, label=th.label)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("seconds from the window start")
        ax.set_ylabel(chart.unit)
        ax.legend(fontsize=6, loc="upper left")
        out = io.StringIO()
        fig.savefig(out, format="svg", bbox_inches="tight")
        plt.close(fig)
        return out.getvalue().split("?>", 1)[-1]  # drop the XML declaration: the SVG is inline

    return _without_uplot(bundle, series, one, _MARK_LOAD)


def plotly_page(bundle: Bundle, series: WindowSeries, plotly_js: str) -> str:
    charts = []
    for c in series.charts:
        if c.absent is not None:
            continue
        traces = [
            {"x": list(s.t_s), "y": list(s.values), "name": s.label, "mode": "lines+markers"}
            for s in c.series
            if s.absent is None
        ]
        shapes = [
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": th.value,
                "y1": th.value,
                "line": {"dash": "dash", "color": "#d97706"},
            }
            for th in c.thresholds
        ]
        charts.append({"key": c.key, "traces": traces, "shapes": shapes, "unit": c.unit})
    script = (
        f"<script>{plotly_js}</script><script>const charts={json.dumps(charts)};"
        "Promise.all(charts.map(c=>Plotly.newPlot('chart-'+c.key,c.traces,{height:230,shapes:c.shapes,"
        "margin:{t:10},yaxis:{title:c.unit,rangemode:'tozero'}},{staticPlot:false})))"
        ".then(()=>{document.body.dataset.chartsMs=performance.now().toFixed(1);"
        "document.body.dataset.chartsDrawn=String(charts.length)});</script>\n"
    )
    return _without_uplot(bundle, series, lambda key: "", script)


def measure(name: str, build: Callable[[], str], tmp: Path) -> dict[str, float]:
    start = time.perf_counter()
    page = build()
    build_ms = (time.perf_counter() - start) * 1000
    file = tmp / f"{name}.html"
    file.write_text(page, encoding="utf-8")
    draws = []
    if chromium() is not None:
        for _ in range(3):
            dom = load(file)
            if dom.charts_ms is not None and not dom.console and not dom.errors:
                draws.append(dom.charts_ms)
    return {
        "kb": len(page.encode()) / 1024,
        "build_ms": build_ms,
        "draw_ms": statistics.median(draws) if draws else float("nan"),
    }


def main() -> None:
    recording = read_bundle(GPU_BOUND / "bundle")
    recording.stress = json.loads((GPU_BOUND / "stress-0.json").read_text())
    inputs = {"40 s": recording, "10 min": stretched(recording, copies=15, period_s=41.0)}
    plotly_path = os.environ.get("PLOTLY_JS")
    plotly_js = Path(plotly_path).read_text() if plotly_path else None
    try:
        import matplotlib  # noqa: F401

        have_mpl = True
    except ImportError:
        have_mpl = False
        print("matplotlib is not importable: the SVG reference is skipped (see the docstring)")
    if chromium() is None:
        print("chromium is not installed: draw times are nan (apt-get install chromium)")
    keep = os.environ.get("KEEP_DIR")  # to look at the candidates' pages afterwards
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(keep) if keep else Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        for label, bundle in inputs.items():
            series = window_series(bundle)
            rows: dict[str, dict[str, float]] = {}
            rows["uPlot"] = measure(f"uplot-{label[:2]}", lambda b=bundle, s=series: uplot_page(b, s), tmp)
            if have_mpl:
                rows["matplotlib SVG"] = measure(
                    f"svg-{label[:2]}", lambda b=bundle, s=series: svg_page(b, s), tmp
                )
            if plotly_js is not None:
                rows["plotly"] = measure(
                    f"plotly-{label[:2]}", lambda b=bundle, s=series: plotly_page(b, s, plotly_js), tmp
                )
            print(f"\n{label} window ({sum(1 for c in series.charts if c.absent is None)} charts):")
            print(f"  {'candidate':<16} {'file KB':>9} {'build ms':>9} {'draw ms':>8}")
            for name, r in rows.items():
                print(f"  {name:<16} {r['kb']:>9.0f} {r['build_ms']:>9.0f} {r['draw_ms']:>8.0f}")
            if "matplotlib SVG" in rows:
                ref, ours = rows["matplotlib SVG"], rows["uPlot"]
                print(
                    f"  uPlot vs matplotlib SVG: size {ours['kb'] / ref['kb']:.2f}x, "
                    f"build {ours['build_ms'] / ref['build_ms']:.2f}x, "
                    f"draw {ours['draw_ms'] / ref['draw_ms']:.2f}x"
                )


if __name__ == "__main__":
    main()
