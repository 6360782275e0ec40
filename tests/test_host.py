"""HostSource on real processes this test starts: a vLLM-shaped tree listening on 127.0.0.1.

The tree copies multi-API-server mode: a launcher (`... vllm serve ...`) opens the listening socket and
hands it to an API-server child (`... vllm.entrypoints ...`), which starts a helper grandchild. Only the
command lines look like vLLM; nothing here imports vLLM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import psutil
import pytest

from diagnose.collect.host import HostSource
from diagnose.readings import HOST_TOTAL

# The helper at the bottom of the tree: a light, steady CPU user.
HELPER = "import time\nwhile True:\n    sum(range(20000))\n    time.sleep(0.02)\n"
# The API server: inherits the listening socket (fd in argv), accepts nothing, starts the helper.
API_SERVER = (
    "import socket, subprocess, sys, time\n"
    "s = socket.socket(fileno=int(sys.argv[1]))\n"
    "subprocess.Popen([sys.executable, '-c', sys.argv[2]])\n"
    "time.sleep(120)\n"
)
# The launcher: opens the socket, prints its port, starts the API server with the socket inherited.
LAUNCHER = (
    "import socket, subprocess, sys, time\n"
    "s = socket.create_server(('127.0.0.1', 0))\n"
    "subprocess.Popen([sys.executable, '-c', sys.argv[1], str(s.fileno()), sys.argv[2],\n"
    "                  'vllm.entrypoints.openai.api_server'], pass_fds=[s.fileno()])\n"
    "print(s.getsockname()[1], flush=True)\n"
    "time.sleep(120)\n"
)


@dataclass
class Tree:
    port: int
    launcher: int
    api_server: int
    helper: int


def _children(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


@pytest.fixture
def vllm_like_tree() -> Iterator[Tree]:
    argv = [
        sys.executable,
        "-c",
        LAUNCHER,
        API_SERVER,
        HELPER,
        "vllm",
        "serve",
        "/m",
        "--api-key",
        "sk-SECRET",
    ]
    # A session of its own, so the whole tree is ended by this process group id at teardown.
    launcher = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert launcher.stdout is not None
        port = int(launcher.stdout.readline())
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            api = _children(launcher.pid)
            helper = _children(api[0]) if api else []
            if api and helper:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the test's process tree did not start in 15 s")
        yield Tree(port, launcher.pid, api[0], helper[0])
    finally:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=10)


def test_port_leads_to_the_whole_tree_root_first_with_flags_redacted(vllm_like_tree: Tree) -> None:
    pids, flags, issue = HostSource().find_vllm(port=vllm_like_tree.port)
    assert issue is None
    # Launcher and API server both hold the listening socket; the launcher is the top of the tree.
    assert pids[0] == vllm_like_tree.launcher
    assert set(pids) == {vllm_like_tree.launcher, vllm_like_tree.api_server, vllm_like_tree.helper}
    assert flags is not None
    assert "vllm serve /m --api-key ***" in flags
    assert "sk-SECRET" not in flags


def test_pid_of_a_descendant_walks_up_to_the_top_vllm_process(vllm_like_tree: Tree) -> None:
    # The helper's command line is not vLLM's, but its parent is: the walk goes up from there.
    pids, _, issue = HostSource().find_vllm(pid=vllm_like_tree.api_server)
    assert issue is None
    assert pids[0] == vllm_like_tree.launcher


def test_second_sample_reports_cpu_for_every_process_and_the_host(vllm_like_tree: Tree) -> None:
    source = HostSource(clock=lambda: 42.0)
    pids, _, _ = source.find_vllm(port=vllm_like_tree.port)
    time.sleep(0.3)
    rows = source.sample(pids)
    by_pid = {r.pid: r for r in rows}
    assert set(by_pid) == {0, *pids}
    host = by_pid[0]
    assert host.name == HOST_TOTAL and host.cmd == "host"
    assert host.cpu_percent is not None and host.rss_mb is not None and host.rss_mb > 0
    for pid in pids:
        row = by_pid[pid]
        assert row.t_unix == 42.0
        assert row.cpu_percent is not None and row.cpu_percent >= 0
        assert row.rss_mb is not None and row.rss_mb > 0
        assert "sk-SECRET" not in row.cmd
    assert by_pid[vllm_like_tree.api_server].ppid == vllm_like_tree.launcher
    assert "vllm.entrypoints" in by_pid[vllm_like_tree.api_server].cmd


def test_process_that_exits_mid_run_is_skipped_without_error(vllm_like_tree: Tree) -> None:
    source = HostSource()
    pids, _, _ = source.find_vllm(port=vllm_like_tree.port)
    os.kill(vllm_like_tree.helper, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until it is a zombie (its parent never reaps it) or gone
        try:
            if psutil.Process(vllm_like_tree.helper).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    rows = source.sample(pids)
    assert vllm_like_tree.helper not in {r.pid for r in rows}
    assert vllm_like_tree.launcher in {r.pid for r in rows}


def test_nobody_listening_is_an_issue_that_names_the_pid_fix() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pids, flags, issue = HostSource().find_vllm(port=port)
    assert (pids, flags) == ([], None)
    assert issue is not None and issue.collector == "host"
    assert str(port) in issue.reason
    assert "--pid" in issue.fix


def test_unknown_pid_is_an_issue() -> None:
    pids, _, issue = HostSource().find_vllm(pid=2**22 + 12345)
    assert pids == []
    assert issue is not None and "--pid" in issue.fix


# -- permissions and pid reuse, through the injected psutil ------------------------------------------


class _Guarded:
    """A psutil.Process whose CPU and memory readings are refused, as for another user's process."""

    def __init__(self, proc: psutil.Process) -> None:
        self._proc = proc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._proc, name)

    def cpu_percent(self, interval: float | None = None) -> float:
        raise psutil.AccessDenied(self._proc.pid)

    def memory_info(self) -> Any:
        raise psutil.AccessDenied(self._proc.pid)

    def children(self, recursive: bool = False) -> list[Any]:
        return [_Guarded(p) for p in self._proc.children(recursive=recursive)]


class _Reused:
    """A psutil.Process that reports a new create_time from the second look on: the pid was reused."""

    looks: ClassVar[dict[int, int]] = {}

    def __init__(self, proc: psutil.Process) -> None:
        self._proc = proc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._proc, name)

    def create_time(self) -> float:
        _Reused.looks[self._proc.pid] = _Reused.looks.get(self._proc.pid, 0) + 1
        return self._proc.create_time() + (1000.0 if _Reused.looks[self._proc.pid] > 1 else 0.0)

    def children(self, recursive: bool = False) -> list[Any]:
        return [_Reused(p) for p in self._proc.children(recursive=recursive)]


class _Psutil:
    """The psutil module, with Process wrapped."""

    def __init__(self, wrap: type) -> None:
        self._wrap = wrap

    def __getattr__(self, name: str) -> Any:
        return getattr(psutil, name)

    def Process(self, pid: int) -> Any:  # psutil's name for it
        return self._wrap(psutil.Process(pid))


def test_access_denied_readings_are_none_not_zero(vllm_like_tree: Tree) -> None:
    source = HostSource(ps=_Psutil(_Guarded))
    pids, _, issue = source.find_vllm(pid=vllm_like_tree.launcher)
    assert issue is None
    rows = [r for r in source.sample(pids) if r.pid != 0]
    assert {r.pid for r in rows} == set(pids)
    assert all(r.cpu_percent is None and r.rss_mb is None for r in rows)
    assert all(r.name for r in rows)  # what could be read still is


def test_reused_pid_is_primed_again_not_reported_with_the_old_baseline(vllm_like_tree: Tree) -> None:
    _Reused.looks = {}
    source = HostSource(ps=_Psutil(_Reused))
    pids, _, _ = source.find_vllm(pid=vllm_like_tree.launcher)
    first = source.sample(pids)  # every pid now looks like a new process: primed, not reported
    assert [r.pid for r in first] == [0]
    second = source.sample(pids)  # same create_time as when primed: reported
    assert {r.pid for r in second} == {0, *pids}


def test_a_worker_started_later_is_found_when_the_tree_is_walked_again() -> None:
    # The tree walk reads every /proc/*/stat, so it is redone every 10 s, not every beat.
    spawn_later = (
        "import subprocess, sys, time; time.sleep(0.5); "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    )
    now = [1000.0]
    host = HostSource(clock=lambda: now[0], rediscover_every_s=10.0)
    parent = subprocess.Popen([sys.executable, "-c", spawn_later], start_new_session=True)
    try:
        host.sample([parent.pid])
        time.sleep(2.0)  # the child is running now
        child_pids = set(_children(parent.pid))
        assert child_pids
        now[0] += 1.0
        assert not child_pids & {r.pid for r in host.sample([parent.pid])}  # walk not due yet
        now[0] += 10.0
        host.sample([parent.pid])  # walked: the child is primed (its CPU counts from the next beat)
        now[0] += 1.0
        assert child_pids <= {r.pid for r in host.sample([parent.pid])}
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
