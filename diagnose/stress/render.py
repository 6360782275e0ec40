"""The load report as text: rich renderables built from a `LoadReport` (pure; the caller prints them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

    from diagnose.stress.report import LoadReport
    from diagnose.stress.stats import LatencySummary

# How a stop reads in a sentence; the other reasons read as they are ("duration", "interrupt").
_STOPPED_BY = {"window": "the end of the collection's window", "max_requests": "--max-requests"}


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _ms_cell(seconds: float | None) -> str:
    """Milliseconds in at most 5 characters, so the latency table fits 80 columns without cutting one:
    3 significant figures below 100 ms, whole milliseconds above (12345 is 12.3 s)."""
    if seconds is None:
        return "-"
    ms = seconds * 1000
    if ms < 10:
        return f"{ms:.2f}"
    if ms < 100:
        return f"{ms:.1f}"
    return f"{ms:.0f}"


def quantile_text(value_s: float | None, at_most_s: float | None) -> str:
    """A histogram quantile as read: "285.0 ms", or "≤ 0.3 s" when it falls in the first bucket."""
    if at_most_s is not None:
        return f"≤ {at_most_s:g} s"
    return _ms(value_s)


def _ratio_pct(value: float | None) -> str:
    return "unknown" if value is None else f"{value * 100:.1f} %"


def _num(value: float | None, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def _latency_row(name: str, s: LatencySummary) -> list[str]:
    values = (s.mean_s, s.p50_s, s.p90_s, s.p95_s, s.p99_s, s.max_s)
    return [
        name,
        str(s.count),
        *(_ms_cell(v) for v in values),
        _num(s.p95_over_mean, ".2f"),
    ]


def render(report: LoadReport) -> list[RenderableType]:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    out: list[RenderableType] = []
    t = report.target
    if report.mode == "open":
        settings = report.settings
        how = f"open loop, {settings['arrival']} arrivals at {report.target_rate_per_s:g} calls/s"
        if settings.get("ramp_s"):
            how += f" (ramp {settings['ramp_from_per_s'] or 0:g} -> over {settings['ramp_s']:g} s)"
    else:
        how = f"closed loop, {report.settings['concurrency']} workers"
    seed = report.settings.get("seed")
    out.append(
        Text(
            f"{t['base_url']}{t['endpoint']}  model {t['model']}  {how}  "
            f"{report.bodies['docs_per_call_mean']:.1f} docs x "
            f"{report.bodies['words_per_doc_mean']:.0f} words (seed {seed})  "
            f"stopped by {_STOPPED_BY.get(report.stopped_by, report.stopped_by)}"
            f" after {report.elapsed_s:.1f} s"
            + (
                f" (sending {report.send_window_s:.1f} s)"
                if report.elapsed_s > report.send_window_s + 0.5
                else ""
            )
        )
    )
    target_rate = f"{report.target_rate_per_s:g}/s" if report.target_rate_per_s else "none (closed loop)"
    out.append(
        Text(
            f"calls: {report.calls_sent} sent, {report.calls_ok} ok, {report.calls_failed} failed, "
            f"{report.calls_unfinished} unfinished   rate: target {target_rate}, "
            f"sent {_num(report.achieved_send_rate_per_s)}/s   done: {_num(report.calls_per_s)} calls/s, "
            f"{_num(report.pairs_per_s)} pairs/s"
        )
    )
    lat = Table(title="latency per call in ms (successful calls)", show_edge=False, box=box.SIMPLE_HEAD)
    # Numbers never wrap or shrink (no_wrap, at most 5 characters); the row names may wrap instead.
    lat.add_column("measured", justify="left", ratio=1)
    for col in ("n", "mean", "p50", "p90", "p95", "p99", "max", "p95/ mean"):
        lat.add_column(col, justify="right", no_wrap=col != "p95/ mean", min_width=4)
    if report.mode == "open":
        lat.add_row(*_latency_row("from intended", report.latency))
        lat.add_row(*_latency_row("service time", report.service_time))
    else:
        lat.add_row(*_latency_row("service time", report.service_time))
        if report.omission is not None:
            lat.add_row(*_latency_row("corrected", report.omission.corrected))
    out.append(lat)
    headline = report.latency
    if headline.long_tail:
        out.append(
            Text(
                f"long tail: p95 is {headline.p95_over_mean:.1f} x the mean "
                "(>= 3 usually means cache thrash, memory jitter or a stall)"
            )
        )
    if report.schedule_lag is not None:
        lag = report.schedule_lag
        out.append(
            Text(
                f"schedule lag (actual - intended send): p50 {_ms(lag.p50_s)}  p99 {_ms(lag.p99_s)}  "
                f"max {_ms(lag.max_s)}  sends > 10 ms late: {lag.late_over_10ms}"
            )
        )
    if report.omission is not None:
        om = report.omission
        out.append(
            Text(
                f"coordinated omission: {om.slow_calls} answers slower than 2 x median held workers back; "
                f"~{om.delayed_sends} sends were delayed behind them (pace {_ms(om.expected_interval_s)} per "
                "worker); offered rate: none, a closed loop sends as fast as the server answers"
            )
        )
    if report.errors:
        errs = Table(title="errors", show_edge=False)
        for col in ("kind", "status", "count", "message"):
            errs.add_column(col)
        for g in report.errors:
            errs.add_row(g.kind, "-" if g.status is None else str(g.status), str(g.count), g.message)
        out.append(errs)
    if report.server is not None:
        s = report.server
        srv = Table(
            title=f"server's view, same window ({_num(s.window_s)} s, from /metrics)", show_edge=False
        )
        for col in ("", "client", "server"):
            srv.add_column(col, justify="right" if col else "left")
        pairs_ok = round((report.pairs_per_s or 0) * report.elapsed_s)
        srv.add_row(
            "requests",
            f"{report.calls_ok} calls = {pairs_ok} documents",
            f"{_num(s.engine_requests, '.0f')} engine requests (1 per document)",
        )
        srv.add_row(
            "p95 / mean",
            f"{_ms(report.latency.p95_s)} / {_ms(report.latency.mean_s)} per call",
            f"e2e {quantile_text(s.e2e_p95_s, s.e2e_p95_at_most_s)} / {_ms(s.e2e_mean_s)} per document",
        )
        srv.add_row(
            "queue p95 / mean",
            "",
            f"{quantile_text(s.queue_p95_s, s.queue_p95_at_most_s)} / {_ms(s.queue_mean_s)}",
        )
        srv.add_row(
            "inference p95 / mean",
            "",
            f"{quantile_text(s.inference_p95_s, s.inference_p95_at_most_s)} / {_ms(s.inference_mean_s)}",
        )
        srv.add_row("prompt tokens per document", "", _num(s.prompt_tokens_per_request))
        srv.add_row("prefix-cache hit ratio", "", _ratio_pct(s.prefix_cache_hit_ratio))
        out.append(srv)
        for note in s.notes:
            out.append(Text(f"server: {note}"))
    elif report.server_problem:
        out.append(Text(f"server's view: none ({report.server_problem})"))
    for note in report.notes:
        out.append(Text(f"note: {note}"))
    return out


def generated_load_text(stress: dict[str, Any]) -> Text:
    """One paragraph under a diagnosis made while rerank-doctor drove the load (`check --stress`, `demo`):
    which bodies went out, and how much of them vLLM's prefix cache answered (built from stress.json)."""
    from rich.text import Text

    seed = (stress.get("settings") or {}).get("seed")
    server = stress.get("server") or {}
    ratio = server.get("prefix_cache_hit_ratio")
    cache = (
        f"vLLM's prefix cache answered {ratio * 100:.1f} % of the prompt tokens during it"
        if isinstance(ratio, (int, float))
        else "the prefix-cache hit ratio is unknown "
        f"({stress.get('server_problem') or 'no prefix-cache lookups in /metrics'})"
    )
    return Text(
        f"Generated load: bodies from seed {seed} (a new seed each run; `--seed {seed}` sends the same "
        f"bodies again); {cache}."
    )
