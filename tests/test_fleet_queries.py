"""The fleet queries (diagnose/fleet/queries.py): a fixed plan whatever the fleet, every vLLM name and
spelling, and no reading left out that the derivation needs."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from diagnose.bundle import read_bundle
from diagnose.derive.evidence import build_evidence
from diagnose.fleet.queries import (
    MEAN_ONLY_HISTOGRAMS,
    RAW_KEYS,
    STORE_QUANTILE,
    STORE_QUANTILE_HISTOGRAMS,
    parse_selector,
    plan,
)
from diagnose.metrics.names import CONCEPTS, spellings
from diagnose.readings import Bundle, MetricsDump, StoreQuantile, time_ordered

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_the_plan_is_the_same_few_queries_whatever_the_selector() -> None:
    bounds = {"queue_time": 0.3, "inference_time": 0.3, "e2e_latency": 0.3, "http_duration_highr": 0.01}
    one = plan("pod", 'namespace="rerank", pod="rr-0"', 600, bounds)
    every = plan("pod", "", 600, bounds)
    assert [q.key for q in one] == [q.key for q in every]
    assert len(every) <= 18  # + 4 label-value calls and 1 count that find the bounds (fetch.py)


def test_every_vllm_name_in_both_spellings_is_asked_for() -> None:
    text = "\n".join(q.expr for q in plan("pod", "", 600))
    for concept in CONCEPTS.values():
        for name in concept.names:
            for spelled in spellings(name):
                assert spelled in text, spelled


def test_every_query_groups_by_the_replica_label() -> None:
    for q in plan("kubernetes_pod_name", "", 600):
        if q.key not in RAW_KEYS:  # raw series carry every label, the replica label among them
            assert "kubernetes_pod_name" in q.expr, q.key


@pytest.mark.parametrize(
    ("text", "matchers"),
    [(None, ""), ('{namespace="rerank"}', 'namespace="rerank"'), ('{a="1", b=~"x|y",}', 'a="1", b=~"x|y"')],
)
def test_a_selector_becomes_the_matchers_added_to_every_query(text: str | None, matchers: str) -> None:
    assert parse_selector(text) == matchers


# Real recordings of three vLLM eras: the H200 0.26 capture, the CPU lab's 0.32, and a 0.7-era dump.
EVERY_ERA = pytest.mark.parametrize(
    "path",
    [
        FIXTURES / "gpu-h200-4b-8api-open" / "bundle",
        FIXTURES / "vllm-0.32-cpu-lab",
        FIXTURES / "vllm-0.7-era",
    ],
    ids=lambda p: p.parent.name if p.name == "bundle" else p.name,
)


def _assert_same_evidence(stripped: Bundle, bundle: Bundle) -> None:
    """What fleet mode leaves out of the dumps was left out, and the Evidence did not change."""
    assert sum(len(d.text) for d in stripped.dumps) < sum(len(d.text) for d in bundle.dumps)
    assert build_evidence(stripped).as_dict() == build_evidence(bundle).as_dict()


def _strip_finite_buckets(dump: MetricsDump, concepts: tuple[str, ...] = MEAN_ONLY_HISTOGRAMS) -> MetricsDump:
    names = [s for c in concepts for n in CONCEPTS[c].names for s in spellings(n)]
    finite = re.compile(rf'^({"|".join(map(re.escape, names))})_bucket{{.*le="(?!\+Inf")', re.MULTILINE)
    lines = [line for line in dump.text.split("\n") if not finite.match(line)]
    return replace(dump, text="\n".join(lines))


@pytest.mark.parametrize(
    "path",
    [FIXTURES / "gpu-h200-4b-8api-open" / "bundle", FIXTURES / "vllm-0.32-cpu-lab"],
    ids=lambda p: p.parent.name if p.name == "bundle" else p.name,
)
def test_the_histograms_fetched_without_buckets_change_no_evidence(path: Path) -> None:
    """Fleet mode fetches only the +Inf bucket of MEAN_ONLY_HISTOGRAMS: the Evidence of a real recording
    must not change when their other buckets are gone (if it does, the derivation reads them now:
    take the histogram out of MEAN_ONLY_HISTOGRAMS)."""
    bundle = read_bundle(path)
    stripped = replace(bundle, dumps=[_strip_finite_buckets(d) for d in bundle.dumps])
    _assert_same_evidence(stripped, bundle)


@EVERY_ERA
def test_the_histograms_prometheus_summarises_need_nothing_else_of_their_buckets(path: Path) -> None:
    """Fleet mode fetches STORE_QUANTILE_HISTOGRAMS without their finite buckets and hands the derivation
    their p95 and first bound instead: with those computed from the recording's own buckets, its
    Evidence must not change (if it does, the derivation reads more of those buckets now)."""
    from diagnose.derive.quantiles import histogram_quantile
    from diagnose.derive.window import hist
    from diagnose.metrics.exposition import parse_dump

    bundle = read_bundle(path)
    dumps = time_ordered(bundle.dumps)
    first, last = parse_dump(dumps[0]), parse_dump(dumps[-1])
    store = {}
    for concept in STORE_QUANTILE_HISTOGRAMS:
        h = hist(first, last, concept)
        if h is not None and len(h.buckets) > 1:
            value = histogram_quantile(STORE_QUANTILE, h) if h.count > 0 else None
            store[concept] = StoreQuantile(concept, STORE_QUANTILE, value, h.buckets[0][0])
    assert store
    stripped = replace(
        bundle,
        dumps=[_strip_finite_buckets(d, STORE_QUANTILE_HISTOGRAMS) for d in bundle.dumps],
        store_quantiles=store,
    )
    _assert_same_evidence(stripped, bundle)


@EVERY_ERA
def test_the_gauges_prometheus_summarises_need_nothing_else_of_the_dumps(path: Path) -> None:
    """Fleet mode fetches the scheduler's gauges (WINDOW_GAUGES) as their window maximum and mean only,
    never in the dumps: with those computed from the recording's own dumps and the gauges taken out of
    every dump, its Evidence must not change (if it does, the derivation reads more of them now)."""
    from diagnose.derive.dump_fold import fold_dumps
    from diagnose.derive.sections.scheduler import WINDOW_GAUGES, SchedulerGauges
    from diagnose.readings import StoreGauge

    bundle = read_bundle(path)
    folded = SchedulerGauges()
    fold_dumps(bundle.dumps, folded.add)
    store = {}
    for gauge in WINDOW_GAUGES:
        running = getattr(folded, gauge)
        if running.max_or_none is not None and running.mean is not None:
            store[gauge] = StoreGauge(gauge, running.max_or_none, running.mean)
    assert store
    concepts = [concept for concept, _ in WINDOW_GAUGES.values()]
    names = [s for c in concepts for n in CONCEPTS[c].names for s in spellings(n)]
    # Their samples and their HELP and TYPE lines: fleet mode's dumps carry no trace of them.
    gauge_line = re.compile(rf"^(# (HELP|TYPE) )?({'|'.join(map(re.escape, names))})[{{ ]", re.MULTILINE)
    stripped = replace(
        bundle,
        dumps=[
            replace(d, text="\n".join(x for x in d.text.split("\n") if not gauge_line.match(x)))
            for d in bundle.dumps
        ],
        store_gauges=store,
    )
    _assert_same_evidence(stripped, bundle)


def test_a_family_whose_replicas_start_at_other_bounds_is_fetched_bucket_by_bucket() -> None:
    """Prometheus computes a family's p95 only when every replica's histogram starts at the bound the
    index lists first (mixed vLLM versions may not): the probe counts the series at that bound and at
    +Inf. Real HTTP, answers in Prometheus' JSON."""
    from http_servers import Route, serve

    from diagnose.fleet.client import PrometheusClient
    from diagnose.fleet.fetch import first_bucket_bounds
    from diagnose.fleet.window import Window

    def vector(rows: list[tuple[str, str, int]]) -> bytes:
        result = [{"metric": {"__name__": n, "le": le}, "value": [1796234600, str(c)]} for n, le, c in rows]
        return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()

    le_values = json.dumps({"status": "success", "data": ["+Inf", "0.5", "0.3", "junk"]}).encode()
    probe = vector(
        [
            ("vllm:request_queue_time_seconds_bucket", "0.3", 2),  # one replica starts elsewhere
            ("vllm:request_queue_time_seconds_bucket", "+Inf", 3),
            ("vllm:e2e_request_latency_seconds_bucket", "0.3", 3),
            ("vllm:e2e_request_latency_seconds_bucket", "+Inf", 3),
        ]
    )
    routes = {
        "/api/v1/label/le/values": Route(body=le_values, content_type="application/json"),
        "/api/v1/query": Route(body=probe, content_type="application/json"),
    }
    with serve(routes) as url:
        bounds = first_bucket_bounds(PrometheusClient(url), Window(1796234000, 1796234600), "")
    # inference_time and http_duration_highr: no series counted at all, so no store quantile either.
    assert bounds == {"e2e_latency": 0.3}
    assert plan("pod", "", 600, bounds)[-1].key == "quantile:e2e_latency"
    cumulative = plan("pod", "", 600, bounds)[0].expr
    assert "vllm:request_queue_time_seconds_bucket" in cumulative
    assert "vllm:e2e_request_latency_seconds_bucket" not in cumulative


@pytest.mark.parametrize(
    "path",
    [FIXTURES / "gpu-h200-0.6b-8api-churn" / "bundle", FIXTURES / "gpu-h200-4b-8api-open" / "bundle"],
    ids=lambda p: p.parent.name,
)
def test_the_socket_states_fetched_are_all_the_evidence_reads(path: Path) -> None:
    """Fleet mode fetches only SOCKET_STATES_READ of the exporter's censuses: a real recording's
    Evidence must not change when its censuses lose every other state (if it does, add the state)."""
    from diagnose.fleet.queries import SOCKET_STATES_READ

    def only(states: dict[str, int]) -> dict[str, int]:
        return {k: v for k, v in states.items() if k in SOCKET_STATES_READ}

    bundle = read_bundle(path)
    assert any(set(c.port_states) - set(SOCKET_STATES_READ) for c in bundle.sockets)  # there is a rest
    stripped = replace(
        bundle,
        sockets=[
            replace(c, port_states=only(c.port_states), host_states=only(c.host_states))
            for c in bundle.sockets
        ],
    )
    assert build_evidence(stripped).as_dict() == build_evidence(bundle).as_dict()
