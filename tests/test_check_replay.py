"""`rerank-doctor check --from` on the real vLLM 0.26 H200 captures (see the captures' README).

What the README established by reading the raw data: s1 is idle; s2-s5 are all limited by the single
API-server process at ~100 % of one core (s3 was meant to saturate the GPU and did not); s2's 92 %
prefix-hit ratio comes from cycling 64 request bodies.
"""

from __future__ import annotations

import argparse
import json

import pytest

from diagnose.bundle import read_bundle
from diagnose.commands import check
from diagnose.derive.evidence import StressSummary, build_evidence
from diagnose.errors import DoctorError
from diagnose.report import Severity
from diagnose.rules.engine import run_rules

LOADED_API_BOUND = (
    "s3_gpu_saturated_c64_d80_w300",
    "s4_kv_pressure_blocks512_c32_d20_w800",
    "s5_cpu_bound_tiny_c32_d500_w3",
)


def diagnose(folder, client=None):
    return run_rules(build_evidence(read_bundle(folder), client=client), source=str(folder))


def run_check(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    check.add_arguments(parser)
    return check.run(parser.parse_args(list(argv)))


def test_s1_idle_is_healthy_with_no_warning_and_exits_0(captures_dir, capsys):
    report = diagnose(captures_dir / "s1_idle")
    assert report.verdict.label == "healthy"
    assert report.worst() < Severity.WARNING
    assert run_check("--from", str(captures_dir / "s1_idle")) == 0
    assert "Idle" in capsys.readouterr().out


@pytest.mark.parametrize("scenario", LOADED_API_BOUND)
def test_loaded_captures_are_api_server_cpu_bound_not_gpu(captures_dir, scenario):
    report = diagnose(captures_dir / scenario)
    assert (report.verdict.label, report.verdict.rule_id) == ("cpu", "cpu-api-server")
    assert report.verdict.severity == Severity.CRITICAL
    assert all(f.rule_id != "gpu" or f.severity < Severity.WARNING for f in report.findings)
    knob = next(f for f in report.findings if f.rule_id == "cpu-api-server").suggestions[0]
    assert (knob.flag, knob.direction, knob.current) == ("--api-server-count", "raise", "1")
    assert int(knob.proposed) > 1


def test_s2_is_api_server_bound_at_low_latency_and_its_92_percent_hits_are_explained(captures_dir):
    report = diagnose(captures_dir / "s2_healthy_c8_d10_w100")
    assert (report.verdict.label, report.verdict.rule_id) == ("cpu", "cpu-api-server")
    prefix = next(f for f in report.findings if f.rule_id == "prefix-cache")
    assert prefix.severity == Severity.INFO
    assert prefix.title.startswith("Prefix-cache hit ratio 91.6 %")
    assert "7 full 16-token blocks" in prefix.detail and "exact repeats" in prefix.detail
    assert "turns over every 11.1 s" in prefix.detail


def test_s5_zero_prefix_hits_are_explained_by_pairs_shorter_than_a_block(captures_dir):
    report = diagnose(captures_dir / "s5_cpu_bound_tiny_c32_d500_w3")
    prefix = next(f for f in report.findings if f.rule_id == "prefix-cache")
    assert "less than one 16-token block" in prefix.detail


def test_s3_and_s4_capacity_waits_are_read_as_the_token_budget_not_kv_thrash(captures_dir):
    for scenario in LOADED_API_BOUND[:2]:
        report = diagnose(captures_dir / scenario)
        thrash = [f for f in report.findings if f.rule_id == "cache-thrash"]
        assert [f.severity for f in thrash] == [Severity.INFO]
        assert "token budget" in thrash[0].title


def test_s3_client_latency_matches_the_server_so_there_is_no_network_finding(captures_dir):
    # The load client's own view, from the capture's load_result.json (mean 9,751.7 ms, p95 10,440.5 ms).
    result = json.loads((captures_dir / "s3_gpu_saturated_c64_d80_w300" / "load_result.json").read_text())
    client = StressSummary(
        latency_mean_s=result["lat_ms_mean"] / 1000, latency_p95_s=result["lat_ms_p95"] / 1000
    )
    report = diagnose(captures_dir / "s3_gpu_saturated_c64_d80_w300", client=client)
    assert "network-latency" not in {s.rule_id for s in report.skipped}
    assert all(f.label != "network" for f in report.findings)


def test_no_capture_shows_generated_tokens_or_failures(captures_dir):
    for folder in sorted(captures_dir.iterdir()):
        report = diagnose(folder)
        assert not {"generate-endpoint", "failures"} & {f.rule_id for f in report.findings}


def test_check_exit_status_follows_fail_on(captures_dir):
    s2 = str(captures_dir / "s2_healthy_c8_d10_w100")  # its worst finding is a warning
    assert run_check("--from", s2, "--json") == 1
    assert run_check("--from", s2, "--json", "--fail-on", "critical") == 0
    assert run_check("--from", str(captures_dir / "s1_idle"), "--json", "--fail-on", "info") == 0


def test_check_json_output_parses_and_carries_the_verdict(captures_dir, capsys):
    run_check("--from", str(captures_dir / "s3_gpu_saturated_c64_d80_w300"), "--json")
    data = json.loads(capsys.readouterr().out)
    assert data["schema_version"] == 1
    assert data["verdict"]["rule_id"] == "cpu-api-server"
    assert data["evidence"]["docs_per_call"] == pytest.approx(80.0)


def test_thresholds_file_changes_the_outcome(captures_dir, tmp_path):
    lenient = tmp_path / "t.toml"
    lenient.write_text(
        "[cpu-api-server]\nbusy_warning_pct = 150\n\n[cpu-engine-core]\nbusy_warning_pct = 150\n"
        "busy_critical_pct = 160\n"
    )
    assert (
        run_check(
            "--from", str(captures_dir / "s2_healthy_c8_d10_w100"), "--json", "--thresholds", str(lenient)
        )
        == 0
    )


def test_a_bad_thresholds_key_stops_check_before_reading_anything(tmp_path):
    bad = tmp_path / "t.toml"
    bad.write_text("[gpu]\nnope = 1\n")
    with pytest.raises(DoctorError, match=r"gpu\.nope"):
        run_check("--from", str(tmp_path / "no-such-bundle"), "--thresholds", str(bad))


def test_check_requires_a_url_or_a_bundle():
    parser = argparse.ArgumentParser()
    check.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args([])


def test_live_check_on_a_server_replaying_the_idle_recording_is_healthy(captures_dir, capsys, tmp_path):
    from http_servers import Route, serve

    # /metrics answers with s1's recorded end-of-window dump every time: no counter moves, an idle server.
    body = (captures_dir / "s1_idle" / "metrics_end.txt").read_bytes()
    # The test machine's own CPU is whatever other work makes it (the host rule rightly fires on a busy
    # 2-core box): this test is about the live pipeline, so the host rule is switched off.
    no_host_rule = tmp_path / "t.toml"
    no_host_rule.write_text("[cpu-host]\nbusy_warning_pct = 1000\nbusy_critical_pct = 1000\n")
    with serve({"/metrics": Route(body=body), "/health": Route(body=b"")}) as url:
        status = run_check(
            "--url",
            url,
            "--duration",
            "1s",
            "--json",
            "--no-gpu",
            "--quiet",
            "--thresholds",
            str(no_host_rule),
        )
    data = json.loads(capsys.readouterr().out)
    assert status == 0
    assert data["source"] == url and data["verdict"]["label"] == "healthy"
    assert data["evidence"]["dumps"] >= 2 and data["evidence"]["calls_delta"] == 0


def test_live_check_on_a_closed_port_is_unreachable():
    from http_servers import closed_port_url

    with pytest.raises(DoctorError) as err:
        run_check("--url", closed_port_url(), "--duration", "1s", "--no-gpu", "--quiet")
    assert int(err.value.status) == 3
