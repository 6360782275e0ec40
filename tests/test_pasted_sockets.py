"""Hand-run socket tables: `ss -tan[p]` as a per-port census, `ss -s` / sockstat as the host-wide one.

tests/fixtures/pasted/ was recorded on this VM (its README): a loopback HTTP server on the port in ports.json,
closed and held-open connections to it, and `ss -s` taken at the same moment, which is the kernel's own count
the table is checked against.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from diagnose.bundle import read_bundle
from diagnose.bundle.sockstat import parse_host_tcp
from diagnose.bundle.ss_tan import census_on_port, listening_ports, looks_like_ss_tan, parse_ss_tan
from diagnose.derive.evidence import build_evidence

PASTED = Path(__file__).resolve().parent / "fixtures" / "pasted"
SOCKETS = Path(__file__).resolve().parent / "fixtures" / "sockets"
PORTS = json.loads((PASTED / "ports.json").read_text())
PORT = PORTS["port"]


def _ss_s_time_wait() -> int:
    totals = parse_host_tcp((PASTED / "ss-s.txt").read_text())
    assert totals is not None and totals.time_wait is not None
    return totals.time_wait


def test_ss_tan_counts_on_the_port_agree_with_the_kernels_own_totals() -> None:
    for name in ("ss-tan.txt", "ss-tanp.txt"):
        sockets = parse_ss_tan((PASTED / name).read_text())
        census = census_on_port(sockets, PORT, 1.0)
        # Every TIME_WAIT on the host was left by the recorder's closed connections to PORT.
        assert census.port_states["TIME_WAIT"] == _ss_s_time_wait() >= PORTS["connections_closed"], name
        assert census.port_states["ESTABLISHED"] == 2 * PORTS["held_open"], name  # both ends on loopback
        assert census.port_states["LISTEN"] == 1, name
        assert census.host_states["TIME_WAIT"] == census.port_states["TIME_WAIT"]
        assert sum(census.host_states.values()) == len(sockets)


def test_ss_tanp_keeps_the_owner_and_ss_tan_has_none() -> None:
    listener = next(s for s in parse_ss_tan((PASTED / "ss-tanp.txt").read_text()) if s.local_port == PORT)
    assert listener.state == "LISTEN" and listener.process is not None and "pid=" in listener.process
    assert all(s.process is None for s in parse_ss_tan((PASTED / "ss-tan.txt").read_text()))


def test_ss_state_words_become_the_kernels_names_and_ipv6_ports_are_read() -> None:
    text = (
        "State     Recv-Q Send-Q Local Address:Port  Peer Address:Port Process\n"
        "ESTAB     0      0      [::ffff:10.0.0.5]:8000 [::ffff:10.0.0.9]:51000\n"
        "CLOSE-WAIT 1     0      [::1]:8000             [::1]:51002\n"
        "FIN-WAIT-2 0     0      10.0.0.9:51003         10.0.0.5:8000\n"
        "LISTEN    0      4096   *:8000                 *:*\n"
    )
    census = census_on_port(parse_ss_tan(text), 8000, 0.0)
    assert census.port_states == {"ESTABLISHED": 1, "CLOSE_WAIT": 1, "FIN_WAIT2": 1, "LISTEN": 1}
    assert listening_ports(parse_ss_tan(text)) == [8000]


def test_only_ss_tan_output_looks_like_ss_tan() -> None:
    assert looks_like_ss_tan((PASTED / "ss-tan.txt").read_text())
    assert not looks_like_ss_tan((PASTED / "ss-s.txt").read_text())
    assert not looks_like_ss_tan((SOCKETS / "sockstat.txt").read_text())
    assert not looks_like_ss_tan("")


def test_the_busiest_listener_comes_first() -> None:
    assert listening_ports(parse_ss_tan((PASTED / "ss-tan.txt").read_text()))[0] == PORT


def test_host_wide_totals_say_their_source() -> None:
    ss_s = parse_host_tcp((PASTED / "ss-s.txt").read_text())
    sockstat = parse_host_tcp((SOCKETS / "sockstat.txt").read_text())
    assert ss_s is not None and ss_s.source == "ss -s" and ss_s.time_wait == 202
    assert sockstat is not None and sockstat.source == "/proc/net/sockstat" and sockstat.time_wait == 330
    assert parse_host_tcp("Total: 3\n") is None


def _flags(folder: Path, port: int) -> None:
    (folder / "flags.txt").write_text(f"vllm serve /m --port {port}\n")


def test_a_bundle_with_ss_tanp_has_a_census_on_the_serving_port(tmp_path: Path) -> None:
    shutil.copy(PASTED / "ss-tanp.txt", tmp_path / "ss-tanp.txt")
    _flags(tmp_path, PORT)
    bundle = read_bundle(tmp_path)
    assert len(bundle.sockets) == 1 and bundle.sockets[0].port == PORT
    assert bundle.sockets[0].t_unix == os.stat(tmp_path / "ss-tanp.txt").st_mtime
    ev = build_evidence(bundle)
    assert ev.sockets.serving_port == PORT
    assert ev.sockets.time_wait_on_port_max == _ss_s_time_wait()
    assert ev.sockets.established_on_port_max == 2 * PORTS["held_open"]


def test_a_bundle_serving_elsewhere_counts_nothing_on_this_port(tmp_path: Path) -> None:
    shutil.copy(PASTED / "ss-tan.txt", tmp_path / "ss-tan.txt")
    _flags(tmp_path, 8000)  # no socket of the recording is on 8000
    ev = build_evidence(read_bundle(tmp_path))
    assert ev.sockets.serving_port == 8000 and ev.sockets.time_wait_on_port_max == 0


def test_without_flags_the_busiest_listener_is_taken_and_the_issue_says_so(tmp_path: Path) -> None:
    shutil.copy(PASTED / "ss-tan.txt", tmp_path / "ss-tan.txt")
    bundle = read_bundle(tmp_path)
    assert bundle.sockets[0].port == PORT
    issue = next(i for i in bundle.issues if i.collector == "sockets")
    assert f":{PORT}" in issue.reason and "--port" in issue.fix


def test_ss_tan_saved_under_the_ss_s_name_is_read_as_what_it_is(tmp_path: Path) -> None:
    shutil.copy(PASTED / "ss-tan.txt", tmp_path / "ss-s.txt")
    _flags(tmp_path, PORT)
    bundle = read_bundle(tmp_path)
    assert bundle.host_tcp is None and bundle.sockstat_text is None
    assert bundle.sockets[0].port_states["TIME_WAIT"] == _ss_s_time_wait()


def test_a_bundle_with_ss_s_only_has_typed_host_totals_and_no_port_census(tmp_path: Path) -> None:
    shutil.copy(PASTED / "ss-s.txt", tmp_path / "ss-s.txt")
    bundle = read_bundle(tmp_path)
    assert bundle.sockets == []
    assert (
        bundle.host_tcp is not None and bundle.host_tcp.time_wait == 202 and bundle.host_tcp.established == 8
    )


def test_host_time_wait_prefers_the_census_and_falls_back_to_ss_s(tmp_path: Path) -> None:
    from diagnose.derive.host_sockets import host_time_wait
    from diagnose.readings import SocketCensus

    shutil.copy(PASTED / "ss-s.txt", tmp_path / "ss-s.txt")
    bundle = read_bundle(tmp_path)
    from_ss = host_time_wait(bundle.sockets, bundle.host_tcp)
    assert from_ss is not None and (from_ss.time_wait, from_ss.established, from_ss.source) == (
        202,
        8,
        "ss -s",
    )
    census = [
        SocketCensus(1.0, 8000, {"TIME_WAIT": 3}, {"TIME_WAIT": 40, "ESTABLISHED": 2}),
        SocketCensus(2.0, 8000, {"TIME_WAIT": 5}, {"TIME_WAIT": 70, "ESTABLISHED": 1}),
    ]
    from_census = host_time_wait(census, bundle.host_tcp)
    assert from_census is not None and (from_census.time_wait, from_census.source) == (70, "census")
    assert host_time_wait([], None) is None
