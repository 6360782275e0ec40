"""NvmlSource over a stand-in NVML (the injection point), and over the real one where there is a GPU."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from diagnose.collect.gpu import NvmlSource
from diagnose.readings import GpuProcessMemory, GpuSample

MIB = 2**20


class NVMLError(Exception):
    """Like pynvml.NVMLError: carries the nvml.h return code in `value`."""

    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


NOT_SUPPORTED, DRIVER_NOT_LOADED, LIBRARY_NOT_FOUND, GPU_IS_LOST = 3, 9, 12, 15


@dataclass
class Board:
    name: str = "NVIDIA H200"
    util: int = 40
    used: int = 120_000 * MIB
    total: int = 143_771 * MIB
    power_mw: int | None = 326_000  # None: NotSupported
    sm_mhz: int = 1980
    procs: list[tuple[int, int | None]] = field(default_factory=list)


class FakeNvml:
    """The pynvml calls NvmlSource makes, answering from a list of boards."""

    NVMLError = NVMLError
    NVML_CLOCK_SM = 1

    def __init__(self, boards: list[Board], init_error: int | None = None) -> None:
        self.boards = boards
        self.init_error = init_error
        self.lost = False  # set to simulate the GPU falling off the bus
        self.shutdowns = 0

    def _board(self, handle: int) -> Board:
        if self.lost:
            raise NVMLError(GPU_IS_LOST)
        return self.boards[handle]

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        if self.lost:
            raise NVMLError(GPU_IS_LOST)
        return len(self.boards)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._board(index)
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self._board(handle).name

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return SimpleNamespace(gpu=self._board(handle).util, memory=5)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        board = self._board(handle)
        return SimpleNamespace(used=board.used, total=board.total, free=board.total - board.used)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        power = self._board(handle).power_mw
        if power is None:
            raise NVMLError(NOT_SUPPORTED)
        return power

    def nvmlDeviceGetClockInfo(self, handle: int, clock: int) -> int:
        assert clock == self.NVML_CLOCK_SM
        return self._board(handle).sm_mhz

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in self._board(handle).procs]


def started(nvml: FakeNvml) -> NvmlSource:
    source = NvmlSource(nvml=nvml, clock=lambda: 100.0)
    assert source.start() is None
    return source


def test_several_gpus_give_one_sample_each_with_units_converted() -> None:
    nvml = FakeNvml([Board(procs=[(2674, 1890 * MIB)]), Board(name="NVIDIA H100", util=0, procs=[])])
    gpus, procs, issue = started(nvml).sample()
    assert issue is None
    assert gpus == [
        GpuSample(100.0, 0, 40.0, 120_000.0, 143_771.0, 326.0, 1980.0, "NVIDIA H200"),
        GpuSample(100.0, 1, 0.0, 120_000.0, 143_771.0, 326.0, 1980.0, "NVIDIA H100"),
    ]
    assert procs == [GpuProcessMemory(100.0, 0, 2674, 1890.0)]


def test_power_not_supported_is_none_and_the_rest_stands() -> None:
    gpus, _, issue = started(FakeNvml([Board(power_mw=None)])).sample()
    assert issue is None
    assert gpus[0].power_w is None
    assert gpus[0].util_pct == 40.0
    assert gpus[0].sm_clock_mhz == 1980.0


def test_process_memory_nvml_cannot_tell_is_none() -> None:
    _, procs, _ = started(FakeNvml([Board(procs=[(11, None)])])).sample()
    assert procs == [GpuProcessMemory(100.0, 0, 11, None)]


def test_gpu_lost_mid_run_is_one_issue_then_silence() -> None:
    nvml = FakeNvml([Board(), Board()])
    source = started(nvml)
    assert len(source.sample()[0]) == 2
    nvml.lost = True
    gpus, procs, issue = source.sample()
    assert (gpus, procs) == ([], [])
    assert issue is not None and issue.collector == "gpu"
    assert "mid-run" in issue.reason and "NVMLError" in issue.reason
    assert issue.fix
    nvml.lost = False  # even if it comes back, the window keeps the one statement and stays quiet
    assert source.sample() == ([], [], None)


@pytest.mark.parametrize("code", [DRIVER_NOT_LOADED, LIBRARY_NOT_FOUND])
def test_no_driver_at_start_is_an_issue_and_sampling_returns_nothing(code: int) -> None:
    source = NvmlSource(nvml=FakeNvml([Board()], init_error=code))
    issue = source.start()
    assert issue is not None
    assert issue.reason.startswith("no NVIDIA driver/NVML on this host: GPU evidence will be skipped")
    assert source.sample() == ([], [], None)


def test_driver_with_no_gpu_is_an_issue() -> None:
    nvml = FakeNvml([])
    issue = NvmlSource(nvml=nvml).start()
    assert issue is not None
    assert "no GPU" in issue.reason
    assert nvml.shutdowns == 1  # NVML was initialised, so it is shut down again


def test_close_shuts_nvml_down_once() -> None:
    nvml = FakeNvml([Board()])
    source = started(nvml)
    source.close()
    source.close()
    assert nvml.shutdowns == 1


def test_real_nvml_either_samples_or_says_why() -> None:
    """Whatever this host is: a GPU host gives samples; any other host gives the one-line issue."""
    source = NvmlSource()
    issue = source.start()
    if issue is not None:
        assert "GPU evidence will be skipped" in issue.reason
        assert source.sample() == ([], [], None)
        return
    try:
        gpus, _procs, sample_issue = source.sample()
    finally:
        source.close()
    assert sample_issue is None
    assert gpus, "NVML started but reported no GPU sample"
    first = gpus[0]
    assert first.memory_total_mib is not None and first.memory_total_mib > 1000
    assert first.util_pct is not None and 0 <= first.util_pct <= 100
    assert isinstance(first.name, str) and first.name


class FakeNvmlV2(FakeNvml):
    """NVML with the v2 memory call: it leaves out what the driver reserves, as nvidia-smi does."""

    nvmlMemory_v2 = 0x02000028
    reserved = 615 * MIB

    def __init__(self, boards: list[Board], v2_supported: bool = True) -> None:
        super().__init__(boards)
        self.v2_supported = v2_supported

    def nvmlDeviceGetMemoryInfo(self, handle: int, version: int | None = None) -> Any:
        board = self._board(handle)
        if version is None:  # v1: reserved memory counts as used
            return SimpleNamespace(used=board.used + self.reserved, total=board.total, free=0)
        if not self.v2_supported:
            raise NVMLError(NOT_SUPPORTED)
        return SimpleNamespace(used=board.used, total=board.total, free=0, reserved=self.reserved)


def test_memory_used_is_read_with_the_v2_call_as_nvidia_smi_reports_it() -> None:
    gpus, _, _ = started(FakeNvmlV2([Board()])).sample()
    assert gpus[0].memory_used_mib == 120_000.0


def test_a_driver_without_the_v2_memory_call_falls_back_to_v1() -> None:
    gpus, _, _ = started(FakeNvmlV2([Board()], v2_supported=False)).sample()
    assert gpus[0].memory_used_mib == 120_615.0
