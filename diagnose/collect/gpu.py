"""GPU readings from NVML: utilisation, memory, power, SM clock, and per-process GPU memory.

`nvml` is the pynvml module (package nvidia-ml-py), imported lazily so that hosts without it, and
`--help`, do not pay for it; tests pass a small stand-in with the same names.

What fails how:
- no pynvml, no libnvidia-ml, no driver -> `start()` returns an issue and the GPU evidence is skipped;
- one field NVML cannot read (power NotSupported on some boards, a clock under MIG) -> that field is
  None, the rest of the sample stands;
- NVML as a whole failing mid-run (GPU fallen off the bus, driver unloaded) -> one issue, then every
  later `sample()` returns nothing, without raising: the window goes on with the other collectors.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from diagnose.readings import CollectorIssue, GpuProcessMemory, GpuSample

_NO_NVML = "no NVIDIA driver/NVML on this host: GPU evidence will be skipped"
_NO_NVML_FIX = (
    "run on the GPU host with the NVIDIA driver loaded, or pass an nvidia-smi CSV log in the bundle"
)

# NVML error codes (nvml.h) that mean "NVML as a whole is gone", not "this field is unsupported".
_FATAL_CODES = frozenset(
    {
        1,  # NVML_ERROR_UNINITIALIZED
        9,  # NVML_ERROR_DRIVER_NOT_LOADED
        12,  # NVML_ERROR_LIBRARY_NOT_FOUND
        15,  # NVML_ERROR_GPU_IS_LOST
        16,  # NVML_ERROR_RESET_REQUIRED
        18,  # NVML_ERROR_LIB_RM_VERSION_MISMATCH
        28,  # NVML_ERROR_GPU_NOT_FOUND
    }
)
_LOST_FIX = "check `nvidia-smi` and the kernel log (dmesg) for the GPU, then collect again"
_MIB = 2**20


class _NvmlGone(Exception):
    """NVML failed as a whole while sampling; carries the reason for the one issue."""


class NvmlSource:
    """`start()` once, `sample()` every beat, `close()` at the end."""

    def __init__(self, nvml: Any = None, clock: Callable[[], float] = time.time) -> None:
        self._nvml = nvml
        self._clock = clock
        self._started = False
        self._gone = False  # NVML failed mid-run: stated once, then silence

    def start(self) -> CollectorIssue | None:
        if self._nvml is None:
            try:
                import pynvml  # the nvidia-ml-py package

                self._nvml = pynvml
            except ImportError:
                return self._issue(f"{_NO_NVML} (the nvidia-ml-py package is not installed)")
        nvml = self._nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            return self._issue(f"{_NO_NVML} ({_describe(exc)})")
        except OSError as exc:  # a broken libnvidia-ml can fail to load below pynvml
            return self._issue(f"{_NO_NVML} ({exc})")
        try:
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as exc:
            count, error = 0, f" ({_describe(exc)})"
        else:
            error = ""
        if count == 0:
            self.close_quietly()
            return self._issue(f"NVML sees no GPU on this host{error}: GPU evidence will be skipped")
        self._started = True
        return None

    def sample(self) -> tuple[list[GpuSample], list[GpuProcessMemory], CollectorIssue | None]:
        """Every GPU now, and the GPU memory of each compute process on it."""
        if not self._started or self._gone:
            return [], [], None
        nvml = self._nvml
        now = self._clock()
        gpus: list[GpuSample] = []
        procs: list[GpuProcessMemory] = []
        try:
            count = self._call(nvml.nvmlDeviceGetCount)
            for index in range(count):
                handle = self._call(nvml.nvmlDeviceGetHandleByIndex, index)
                gpus.append(self._gpu(now, index, handle))
                procs.extend(self._processes(now, index, handle))
        except _NvmlGone as gone:
            self._gone = True
            return (
                [],
                [],
                self._issue(f"NVML stopped answering mid-run ({gone}): no more GPU samples", _LOST_FIX),
            )
        return gpus, procs, None

    def close(self) -> None:
        if self._started:
            self._started = False
            self.close_quietly()

    def close_quietly(self) -> None:
        # Shutting down a broken NVML must not end the run.
        with contextlib.suppress(Exception):
            self._nvml.nvmlShutdown()

    # -- one GPU ----------------------------------------------------------------------------------

    def _memory(self, handle: Any) -> Any:
        """Memory as nvidia-smi reports it: NVML's v2 call. The v1 call counts memory the driver
        reserves as used (615 MiB more on an H200, tests/fixtures/gpu-h200-*); without v2, v1."""
        nvml = self._nvml
        v2 = getattr(nvml, "nvmlMemory_v2", None)
        if v2 is not None:
            memory = self._field(lambda: nvml.nvmlDeviceGetMemoryInfo(handle, version=v2))
            if memory is not None:
                return memory
        return self._field(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))

    def _gpu(self, now: float, index: int, handle: Any) -> GpuSample:
        nvml = self._nvml
        util = self._field(lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        memory = self._memory(handle)
        power_mw = self._field(lambda: nvml.nvmlDeviceGetPowerUsage(handle))
        sm_mhz = self._field(lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM))
        name = self._field(lambda: nvml.nvmlDeviceGetName(handle))
        if isinstance(name, bytes):  # pynvml before 11.5 returned bytes
            name = name.decode(errors="replace")
        return GpuSample(
            t_unix=now,
            index=index,
            util_pct=float(util) if util is not None else None,
            memory_used_mib=memory.used / _MIB if memory is not None else None,
            memory_total_mib=memory.total / _MIB if memory is not None else None,
            power_w=power_mw / 1000.0 if power_mw is not None else None,
            sm_clock_mhz=float(sm_mhz) if sm_mhz is not None else None,
            name=name,
        )

    def _processes(self, now: float, index: int, handle: Any) -> list[GpuProcessMemory]:
        running = self._field(lambda: self._nvml.nvmlDeviceGetComputeRunningProcesses(handle))
        rows = []
        for proc in running or []:
            # usedGpuMemory is None where the driver cannot tell (WDDM, some containers): unknown, not 0.
            used = getattr(proc, "usedGpuMemory", None)
            rows.append(
                GpuProcessMemory(now, index, int(proc.pid), used / _MIB if used is not None else None)
            )
        return rows

    # -- NVML calls -------------------------------------------------------------------------------

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A call the sample cannot do without: any NVML error ends GPU sampling."""
        try:
            return fn(*args)
        except self._nvml.NVMLError as exc:
            raise _NvmlGone(_describe(exc)) from exc

    def _field(self, get: Callable[[], Any]) -> Any:
        """One reading: None when NVML cannot give it; fatal codes end GPU sampling."""
        try:
            return get()
        except self._nvml.NVMLError as exc:
            if getattr(exc, "value", None) in _FATAL_CODES:
                raise _NvmlGone(_describe(exc)) from exc
            return None

    def _issue(self, reason: str, fix: str = _NO_NVML_FIX) -> CollectorIssue:
        return CollectorIssue(t_unix=self._clock(), collector="gpu", reason=reason, fix=fix)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
