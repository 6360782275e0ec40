"""The fleet queries (diagnose/fleet/queries.py): a fixed plan whatever the fleet, every vLLM name and
spelling, and no reading left out that the derivation needs."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from diagnose.bundle import read_bundle
from diagnose.derive.evidence import build_evidence
from diagnose.fleet.queries import MEAN_ONLY_HISTOGRAMS, parse_selector, plan
from diagnose.metrics.names import CONCEPTS, spellings
from diagnose.readings import MetricsDump

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_the_plan_is_the_same_few_queries_whatever_the_selector() -> None:
    one = plan("pod", 'namespace="rerank", pod="rr-0"', 600)
    every = plan("pod", "", 600)
    assert [q.key for q in one] == [q.key for q in every]
    assert len(every) <= 12


def test_every_vllm_name_in_both_spellings_is_asked_for() -> None:
    text = "\n".join(q.expr for q in plan("pod", "", 600))
    for concept in CONCEPTS.values():
        for name in concept.names:
            for spelled in spellings(name):
                assert spelled in text, spelled


def test_every_query_groups_by_the_replica_label() -> None:
    for q in plan("kubernetes_pod_name", "", 600):
        if q.key != "info":  # raw info series carry every label
            assert "kubernetes_pod_name" in q.expr, q.key


@pytest.mark.parametrize(
    ("text", "matchers"),
    [(None, ""), ('{namespace="rerank"}', 'namespace="rerank"'), ('{a="1", b=~"x|y",}', 'a="1", b=~"x|y"')],
)
def test_a_selector_becomes_the_matchers_added_to_every_query(text: str | None, matchers: str) -> None:
    assert parse_selector(text) == matchers


def _strip_finite_buckets(dump: MetricsDump) -> MetricsDump:
    names = [s for c in MEAN_ONLY_HISTOGRAMS for n in CONCEPTS[c].names for s in spellings(n)]
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
    assert sum(len(d.text) for d in stripped.dumps) < sum(len(d.text) for d in bundle.dumps)
    assert build_evidence(stripped).as_dict() == build_evidence(bundle).as_dict()
