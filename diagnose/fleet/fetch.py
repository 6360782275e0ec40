"""Running the fleet plan against Prometheus' HTTP API: the histograms' first bounds, the queries in
parallel, and the charted replicas' window again, step by step. The plan itself is queries.py; turning
the answers into bundles is assemble.py."""

from __future__ import annotations

import math

from diagnose.fleet.assemble import assemble
from diagnose.fleet.client import PrometheusClient, Series
from diagnose.fleet.queries import (
    STORE_QUANTILE_HISTOGRAMS,
    Query,
    bucket_names,
    bucket_selector,
    first_bucket_probe,
    plan,
    range_step_s,
)
from diagnose.fleet.window import Window
from diagnose.progress import StepReporter
from diagnose.readings import Bundle

# Queries in flight at once: Prometheus evaluates them on several cores while the answers are decoded.
PARALLEL_QUERIES = 4


def first_bucket_bounds(client: PrometheusClient, window: Window, matchers: str) -> dict[str, float]:
    """The first bucket bound of each STORE_QUANTILE_HISTOGRAMS family, where every replica's histogram
    starts at it: the families whose quantile Prometheus may compute (queries.py). From the index (one
    label-values call per family) and one count; a fixed cost whatever the fleet. Nothing where the
    label-values API is not served: every histogram is then fetched bucket by bucket."""
    from concurrent.futures import ThreadPoolExecutor

    def first(concept: str) -> tuple[str, float, str] | None:
        texts = client.label_values(
            "le", bucket_selector(concept, matchers), window.start_unix, window.end_unix
        )
        bounds = []
        for text in texts or []:
            try:
                le = float(text)
            except ValueError:
                continue
            if math.isfinite(le):
                bounds.append((le, text))
        return (concept, *min(bounds)) if bounds else None

    with ThreadPoolExecutor(max_workers=PARALLEL_QUERIES) as pool:
        found = [f for f in pool.map(first, STORE_QUANTILE_HISTOGRAMS) if f is not None]
    if not found:
        return {}
    counts = client.instant(first_bucket_probe({c: text for c, _, text in found}, matchers), window.end_unix)
    at_first: dict[str, float] = {}
    at_inf: dict[str, float] = {}
    for concept, _, text in found:
        names = set(bucket_names(concept))
        for s in counts:
            if s.labels.get("__name__") in names:
                le = s.labels.get("le")
                if le == "+Inf":
                    at_inf[concept] = at_inf.get(concept, 0.0) + s.points[0][1]
                elif le == text:
                    at_first[concept] = at_first.get(concept, 0.0) + s.points[0][1]
    # Equal counts: every histogram of the family has that first bound (and none a lower one: the index
    # lists none). Otherwise its replicas differ (mixed versions): its buckets are fetched as they are.
    return {c: le for c, le, _ in found if at_inf.get(c, 0.0) > 0 and at_first.get(c) == at_inf.get(c)}


def fetch(
    client: PrometheusClient,
    window: Window,
    replica_label: str,
    matchers: str,
    *,
    charted: list[str] | None = None,
    progress: StepReporter | None = None,
) -> tuple[dict[str, list[Series]], dict[str, float]]:
    """Runs the plan: a fixed number of queries whatever the fleet's size. Returns the answers and the
    first bucket bound of each histogram whose quantile Prometheus computed. `charted` (the HTML page's
    replicas): only those, their counters at every range step too, every histogram's buckets.
    `progress` hears how many answers are in (a Thanos over a large fleet can take many seconds)."""
    steps = charted is not None
    import threading
    from concurrent.futures import ThreadPoolExecutor

    step_s = range_step_s(window.seconds)
    what = f"the {len(charted)} charted replicas, step by step" if charted is not None else "every replica"
    asking = f"asking {client.shown_url()} for {what}"
    if progress is not None:
        progress.step(asking)
    first_le = {} if steps else first_bucket_bounds(client, window, matchers)
    queries = plan(replica_label, matchers, window.seconds, first_le, only=charted)
    answered = [0]
    lock = threading.Lock()

    def one(query: Query) -> list[Series]:
        if query.when == "range" or (steps and query.when == "ends"):
            series = client.range(query.expr, window.start_unix, window.end_unix, step_s)
        elif query.when == "ends":
            series = client.range(query.expr, window.start_unix, window.end_unix, window.seconds)
        else:
            series = client.instant(query.expr, window.end_unix)
        if progress is not None:
            with lock:  # the count and its saying together, so that it never goes back
                answered[0] += 1
                progress.step(f"{asking}: {answered[0]} of {len(queries)} answers in")
        return series

    with ThreadPoolExecutor(max_workers=PARALLEL_QUERIES) as pool:
        results = list(pool.map(one, queries))  # the first failure is raised here, as one DoctorError
    return {q.key: r for q, r in zip(queries, results, strict=True)}, first_le


def chart_bundles(
    client: PrometheusClient,
    window: Window,
    replica_label: str,
    matchers: str,
    replicas: list[str],
    progress: StepReporter | None = None,
) -> dict[str, Bundle]:
    """The charted replicas' window, step by step (RANGE_POINTS steps): the diagnosis reads counters at
    the window's two ends and the latency histograms' p95 only, one interval with no shape to draw. The
    same plan, narrowed to these replicas (one regex matcher, so still a fixed number of queries)."""
    if not replicas:
        return {}
    answers, _ = fetch(client, window, replica_label, matchers, charted=replicas, progress=progress)
    return {
        d.replica: d.bundle
        for d in assemble(answers, window, replica_label, require_vllm=False, steps=True)
        if d.replica in replicas
    }
