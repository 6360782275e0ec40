"""The collection window: before and after scrapes, Ctrl-C keeps what was gathered, failures are values."""

from __future__ import annotations

from pathlib import Path

import pytest

from diagnose.bundle import BundleWriter, read_bundle
from diagnose.collect.sampler import CollectionInterrupted, Sources, collect_window
from diagnose.readings import CollectorIssue, GpuSample, MetricsDump, ProcessSample, ServerInfo, SocketCensus


class FakeClock:
    """Time that moves only when the sampler sleeps, so tests run instantly and exactly."""

    def __init__(self, interrupt_after_sleeps: int | None = None):
        self.now = 1000.0
        self.sleeps = 0
        self.interrupt_after = interrupt_after_sleeps

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.interrupt_after is not None and self.sleeps >= self.interrupt_after:
            raise KeyboardInterrupt
        self.now += seconds


class FakeVllm:
    def __init__(self, clock: FakeClock, reachable: bool = True):
        self.clock, self.reachable, self.scrapes = clock, reachable, 0

    def server_info(self) -> tuple[ServerInfo, list[CollectorIssue]]:
        if not self.reachable:
            return ServerInfo(url="http://127.0.0.1:9"), [CollectorIssue(0, "server", "connection refused")]
        return ServerInfo(url="http://127.0.0.1:8000", healthy=True), []

    def scrape(self) -> MetricsDump | CollectorIssue:
        if not self.reachable:
            return CollectorIssue(self.clock.now, "vllm", "connection refused at http://127.0.0.1:9")
        self.scrapes += 1
        return MetricsDump(self.clock.now, f"vllm:prompt_tokens_total {self.scrapes * 100}\n")

    def dump_issues(self, dump: MetricsDump) -> list[CollectorIssue]:
        issue = self.has_engine_metrics(dump)
        return [] if issue is None else [issue]

    def has_engine_metrics(self, dump: MetricsDump) -> CollectorIssue | None:
        return None


class FakeGpu:
    def __init__(
        self, clock: FakeClock, start_issue: CollectorIssue | None = None, fail_after: int | None = None
    ):
        self.clock, self.start_issue, self.fail_after, self.calls, self.closed = (
            clock,
            start_issue,
            fail_after,
            0,
            False,
        )

    def start(self) -> CollectorIssue | None:
        return self.start_issue

    def sample(self) -> tuple[list[GpuSample], list, CollectorIssue | None]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            return [], [], CollectorIssue(self.clock.now, "gpu", "NVML lost the GPU")
        return [GpuSample(self.clock.now, 0, 95.0, 1.0, 2.0, 700.0, 1590.0)], [], None

    def close(self) -> None:
        self.closed = True


class FakeHost:
    def cores(self) -> int:
        return 16

    def find_vllm(
        self, port: int | None, pid: int | None
    ) -> tuple[list[int], str | None, CollectorIssue | None]:
        return [42], "python -m vllm.entrypoints.openai.api_server --api-key ***", None

    def sample(self, pids: list[int]) -> list[ProcessSample]:
        return [ProcessSample(0.0, 42, 1, "python3", 100.0, 1.0, "api_server")]


class FakeSockets:
    def census(self, port: int | None) -> SocketCensus:
        return SocketCensus(0.0, port, {"TIME_WAIT": 5}, {"TIME_WAIT": 7})


def test_window_has_a_before_and_an_after_scrape_and_samples_every_beat() -> None:
    clock = FakeClock()
    sources = Sources(
        vllm=FakeVllm(clock), gpu=FakeGpu(clock), host=FakeHost(), sockets=FakeSockets(), port=8000
    )
    bundle = collect_window(
        sources, duration_s=10, interval_s=1, metrics_interval_s=5, clock=clock.clock, sleep=clock.sleep
    )
    times = [d.t_unix for d in bundle.dumps]
    assert times == [1000.0, 1005.0, 1010.0]  # at the start, every 5 s, and the closing scrape at the end
    assert len(bundle.gpu) == 10 and len(bundle.processes) == 10
    assert len(bundle.sockets) == 2  # the census runs every 5 s: TIME_WAIT lives 60 s, a beat's CPU does not
    assert bundle.server.pids == [42] and bundle.issues == []


class SlowToStartVllm(FakeVllm):
    """/health, /version and /v1/models answering slowly, as a saturated server does."""

    def server_info(self) -> tuple[ServerInfo, list[CollectorIssue]]:
        self.clock.now += 20.0
        return super().server_info()


def test_the_window_opens_at_its_first_scrape_when_the_server_is_slow_to_answer_its_setup() -> None:
    # CI once saw a 15 s window shrink to 13 ms: the setup calls took the whole window on a busy server.
    clock = FakeClock()
    bundle = collect_window(
        Sources(vllm=SlowToStartVllm(clock)),
        duration_s=10,
        metrics_interval_s=5,
        clock=clock.clock,
        sleep=clock.sleep,
    )
    times = [d.t_unix for d in bundle.dumps]
    assert times == [1020.0, 1025.0, 1030.0]


def test_unreachable_server_stops_at_once_with_the_reason() -> None:
    clock = FakeClock()
    bundle = collect_window(
        Sources(vllm=FakeVllm(clock, reachable=False)), duration_s=30, clock=clock.clock, sleep=clock.sleep
    )
    assert bundle.dumps == [] and clock.sleeps == 0
    assert [i.reason for i in bundle.issues] == [
        "connection refused",
        "connection refused at http://127.0.0.1:9",
    ]


def test_ctrl_c_mid_window_is_raised_with_what_was_collected_and_kept_on_disk(tmp_path: Path) -> None:
    clock = FakeClock(interrupt_after_sleeps=4)
    gpu = FakeGpu(clock)
    with BundleWriter(tmp_path / "b") as writer, pytest.raises(CollectionInterrupted) as stop:
        collect_window(
            Sources(vllm=FakeVllm(clock), gpu=gpu),
            duration_s=30,
            writer=writer,
            clock=clock.clock,
            sleep=clock.sleep,
        )
    bundle = stop.value.bundle
    assert isinstance(stop.value, KeyboardInterrupt)  # never swallowed: an unhandled one still exits 130
    assert gpu.closed
    assert any("interrupted after" in i.reason for i in bundle.issues)
    on_disk = read_bundle(tmp_path / "b")
    assert len(on_disk.dumps) == len(bundle.dumps) >= 1
    assert len(on_disk.gpu) == len(bundle.gpu) == 4
    assert any("interrupted" in i.reason for i in on_disk.issues)


def test_no_nvml_is_stated_once_and_not_retried() -> None:
    clock = FakeClock()
    gpu = FakeGpu(clock, start_issue=CollectorIssue(0, "gpu", "no NVIDIA driver/NVML on this host"))
    bundle = collect_window(
        Sources(vllm=FakeVllm(clock), gpu=gpu), duration_s=5, clock=clock.clock, sleep=clock.sleep
    )
    assert gpu.calls == 0 and bundle.gpu == []
    assert [i.collector for i in bundle.issues] == ["gpu"]
    assert len(bundle.dumps) >= 2  # the rest of the window went on


def test_nvml_failing_mid_run_keeps_earlier_samples_and_says_so_once() -> None:
    clock = FakeClock()
    bundle = collect_window(
        Sources(vllm=FakeVllm(clock), gpu=FakeGpu(clock, fail_after=3)),
        duration_s=8,
        clock=clock.clock,
        sleep=clock.sleep,
    )
    assert len(bundle.gpu) == 3
    assert [i.reason for i in bundle.issues] == ["NVML lost the GPU"]


@pytest.mark.parametrize("duration_s", [1, 3])
def test_short_windows_still_get_two_scrapes(duration_s: float) -> None:
    clock = FakeClock()
    bundle = collect_window(
        Sources(vllm=FakeVllm(clock)),
        duration_s=duration_s,
        metrics_interval_s=5,
        clock=clock.clock,
        sleep=clock.sleep,
    )
    assert len(bundle.dumps) == 2
