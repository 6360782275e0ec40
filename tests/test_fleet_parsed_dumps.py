"""Fleet mode's dumps arrive parsed (diagnose/metrics/exposition.py PreParsedDump, parsed_from_samples):
the diagnosis must read them exactly as it reads the same samples written as an exposition."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from diagnose.bundle import read_bundle
from diagnose.derive.evidence import build_evidence
from diagnose.metrics.exposition import (
    PreParsedDump,
    exposition_text,
    parse_dump,
    parse_text,
    parsed_from_samples,
)
from diagnose.pipeline import diagnose
from diagnose.readings import MetricsDump

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BUNDLES = [FIXTURES / "vllm-0.32-cpu-lab", FIXTURES / "gpu-h200-4b-8api-open" / "bundle"]


def _samples_only(dump: MetricsDump) -> str:
    """The dump without its TYPE/HELP lines: what a PromQL answer carries."""
    return "\n".join(line for line in dump.text.split("\n") if not line.startswith("#")) + "\n"


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.parent.name if p.name == "bundle" else p.name)
def test_samples_built_parsed_equal_their_text_parsed_in_order(path: Path) -> None:
    dump = read_bundle(path).dumps[-1]
    from_text = parse_text(_samples_only(dump), dump.t_unix, finite_only=True)
    rows = [(name, labels, v) for name, series in from_text.samples.items() for labels, v in series.items()]
    built = parsed_from_samples(dump.t_unix, rows)
    assert built == from_text
    # The order matters too: some sums over series are plain float additions.
    assert [(n, list(s)) for n, s in built.samples.items()] == [
        (n, list(s)) for n, s in from_text.samples.items()
    ]


def test_a_value_that_cannot_be_a_reading_is_an_unreadable_sample_not_a_number() -> None:
    labels = (("model_name", "m"),)
    built = parsed_from_samples(
        5.0, [("vllm:num_requests_waiting", labels, math.nan), ("vllm:num_requests_running", labels, 2.0)]
    )
    assert built.samples == {"vllm:num_requests_running": {labels: 2.0}}
    assert built.unreadable_lines == 1
    assert built.first_unreadable is not None and "vllm:num_requests_waiting" in built.first_unreadable
    assert built.verdict is None


def test_no_readable_sample_is_not_an_exposition() -> None:
    built = parsed_from_samples(5.0, [("vllm:num_requests_waiting", (), math.inf)])
    assert built.samples == {}
    assert built.verdict is not None and built.verdict.startswith("not a Prometheus exposition")


def test_a_pre_parsed_dump_is_read_as_it_is_and_writes_text_that_parses_back() -> None:
    labels = (("le", "+Inf"), ("model_name", 'a "quoted"\\name'))
    parsed = parsed_from_samples(7.5, [("vllm:e2e_request_latency_seconds_bucket", labels, 3.0)])
    dump = PreParsedDump(parsed)
    assert parse_dump(dump) is parsed
    assert dump.t_unix == 7.5
    assert parse_dump(MetricsDump(7.5, dump.text)).samples == parsed.samples
    assert exposition_text(parsed) == dump.text


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.parent.name if p.name == "bundle" else p.name)
def test_a_bundle_of_pre_parsed_dumps_gets_the_same_evidence_and_verdict(path: Path) -> None:
    bundle = read_bundle(path)
    dumps = list(bundle.dumps)
    parsed = replace(bundle, dumps=[PreParsedDump(parse_dump(d)) for d in dumps])
    assert build_evidence(parsed).as_dict() == build_evidence(bundle).as_dict()
    assert diagnose(parsed).verdict == diagnose(bundle).verdict
