"""Reading a bundle folder: what `collect` wrote, a capture, or a folder of hand-run outputs.

Whatever cannot be read becomes a CollectorIssue in the bundle (the diagnosis then says what is
missing and why) rather than an error, except a folder with nothing usable in it at all.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from diagnose.bundle import layout
from diagnose.bundle.launch import flags_from_argv, read_launch
from diagnose.bundle.nvidia_smi import parse_nvidia_smi_csv
from diagnose.bundle.sockstat import parse_host_tcp
from diagnose.bundle.ss_tan import census_on_port, listening_ports, looks_like_ss_tan, parse_ss_tan
from diagnose.errors import DoctorError
from diagnose.readings import (
    Bundle,
    CollectorIssue,
    GpuProcessMemory,
    MetricsDump,
    ProcessSample,
    ServerInfo,
    SocketCensus,
)
from diagnose.redact import redact_command_line

_MARKER = re.compile(r"^### capture t_unix=([0-9.eE+-]+)[^\n]*\n?", re.MULTILINE)


def split_dumps(text: str, default_t_unix: float = 0.0) -> list[MetricsDump]:
    """Splits a metrics file at `### capture t_unix=<float>` lines; no marker means one dump."""
    marks = list(_MARKER.finditer(text))
    if not marks:
        return [MetricsDump(t_unix=default_t_unix, text=text)] if text.strip() else []
    dumps = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        dumps.append(MetricsDump(t_unix=float(mark.group(1)), text=text[mark.end() : end]))
    return dumps


def _find(directory: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (directory / name).is_file():
            return directory / name
    return None


def _read_text(path: Path, issues: list[CollectorIssue], collector: str) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        issues.append(
            CollectorIssue(
                0.0, collector, f"{path.name} is not UTF-8 (byte {err.start}); unreadable bytes replaced"
            )
        )
        return raw.decode("utf-8", errors="replace")


def _float(cell: str | None) -> float | None:
    try:
        return float(cell) if cell not in (None, "") else None
    except ValueError:
        return None


def _read_processes(path: Path, issues: list[CollectorIssue]) -> list[ProcessSample]:
    rows = list(csv.reader(io.StringIO(_read_text(path, issues, "host"))))
    if not rows:
        return []
    col = {name.strip(): i for i, name in enumerate(rows[0])}
    needed = ("t_unix", "pid", "name", "cpu_percent")
    if any(n not in col for n in needed):
        issues.append(
            CollectorIssue(0.0, "host", f"{path.name} lacks columns {needed}: per-process CPU skipped")
        )
        return []
    samples = []
    for row in rows[1:]:
        if len(row) < len(rows[0]):
            continue
        # A hand-made log may leave the last column (cmd) unquoted: its commas then split it.
        cmd = ",".join(row[col["cmd"] :]) if "cmd" in col and col["cmd"] == len(rows[0]) - 1 else ""
        t_unix, pid = _float(row[col["t_unix"]]), _float(row[col["pid"]])
        if t_unix is None or pid is None:
            continue
        samples.append(
            ProcessSample(
                t_unix=t_unix,
                pid=int(pid),
                ppid=int(_float(row[col["ppid"]]) or 0) if "ppid" in col else 0,
                name=row[col["name"]].strip(),
                cpu_percent=_float(row[col["cpu_percent"]]),
                rss_mb=_float(row[col["rss_mb"]]) if "rss_mb" in col else None,
                cmd=redact_command_line(cmd.strip()),
            )
        )
    return samples


def _read_sockets(path: Path) -> list[SocketCensus]:
    by_time: dict[float, SocketCensus] = {}
    for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8", errors="replace"))):
        t_unix, count = _float(row.get("t_unix")), _float(row.get("count"))
        if t_unix is None or count is None:
            continue
        port = _float(row.get("port"))
        census = by_time.setdefault(t_unix, SocketCensus(t_unix=t_unix, port=int(port) if port else None))
        target = census.port_states if row.get("scope") == "port" else census.host_states
        target[row.get("state") or "?"] = int(count)
    return [by_time[t] for t in sorted(by_time)]


def _read_ss_tan(path: Path, server: ServerInfo, issues: list[CollectorIssue]) -> SocketCensus:
    """A hand-run `ss -tan[p]` as one census, taken when the file was written, on the serving port."""
    sockets = parse_ss_tan(path.read_text(encoding="utf-8", errors="replace"))
    flags = flags_from_argv(read_launch(server.flags).argv) if server.flags else {}
    port_text = flags.get("--port") or ("8000" if server.flags else None)  # vLLM's default port is 8000
    port = int(port_text) if port_text and port_text.isdigit() else None
    if port is None:
        listening = listening_ports(sockets)
        port = listening[0] if listening else None
        issues.append(
            CollectorIssue(
                0.0,
                "sockets",
                f"{path.name}: the serving port is not known from flags.txt; "
                + (f"taken as :{port}, the listening port with the most sockets" if port else "no listener"),
                "add flags.txt (the vLLM command line, with its --port)",
            )
        )
    return census_on_port(sockets, port, path.stat().st_mtime)


def _read_server(directory: Path, issues: list[CollectorIssue]) -> ServerInfo:
    server = ServerInfo()
    path = directory / layout.SERVER
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            known = set(ServerInfo.__dataclass_fields__)
            server = ServerInfo(**{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError, AttributeError) as err:
            issues.append(
                CollectorIssue(0.0, "server", f"{layout.SERVER} is unreadable ({err}); server facts skipped")
            )
    flags_path = _find(directory, layout.FLAGS)
    if flags_path and not server.flags:
        # Whatever form was pasted (a shell line, `ps` output, compose or Kubernetes YAML, with comments,
        # `VAR=value` lines, or the captures' env and load lines after the command): one argv and env.
        launch = read_launch(flags_path.read_text(encoding="utf-8", errors="replace"))
        server.flags = launch.command_line if launch.argv else None
        server.env = server.env or launch.env
        if not launch.argv:
            issues.append(
                CollectorIssue(
                    0.0,
                    "server",
                    f"{flags_path.name} holds no vLLM command line",
                    "paste the `vllm serve ...` line, `ps -ef | grep vllm` output, or the compose/k8s args",
                )
            )
    if server.flags:
        server.flags = redact_command_line(server.flags)
    return server


def _read_report(path: Path, collector: str, what: str, issues: list[CollectorIssue]) -> dict | None:
    """A JSON report a step wrote into the bundle (stress.json, bypass.json); None when absent."""
    if not path.is_file():
        return None
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        loaded = None
    if not isinstance(loaded, dict):
        issues.append(CollectorIssue(0.0, collector, f"{path.name} is unreadable; {what} is skipped"))
        return None
    return loaded


def read_bundle(directory: str | Path) -> Bundle:
    """Loads a bundle folder; raises DoctorError only when there is nothing to diagnose in it."""
    path = Path(directory)
    if not path.is_dir():
        raise DoctorError(
            f"no bundle folder at {path}", "pass the folder that `rerank-doctor collect --out` wrote"
        )
    bundle = Bundle()
    issues = bundle.issues
    issues_path = path / layout.ISSUES
    if issues_path.is_file():
        try:
            issues.extend(CollectorIssue(**i) for i in json.loads(issues_path.read_text(encoding="utf-8")))
        except (ValueError, TypeError, AttributeError):
            issues.append(
                CollectorIssue(0.0, "bundle", f"{layout.ISSUES} is unreadable; earlier issues lost")
            )

    metrics_path = _find(path, layout.METRICS)
    if metrics_path:
        bundle.dumps = split_dumps(_read_text(metrics_path, issues, "vllm"), metrics_path.stat().st_mtime)
    else:
        issues.append(
            CollectorIssue(
                0.0,
                "vllm",
                "the bundle has no /metrics dump",
                f"save `curl URL/metrics` output as {layout.METRICS[0]}",
            )
        )
    gpu_path = _find(path, layout.NVIDIA_SMI)
    if gpu_path:
        bundle.gpu, problems = parse_nvidia_smi_csv(_read_text(gpu_path, issues, "gpu"))
        issues.extend(CollectorIssue(0.0, "gpu", p) for p in problems[:5])
    gpu_procs = path / layout.GPU_PROCESSES
    if gpu_procs.is_file():
        for row in csv.DictReader(io.StringIO(gpu_procs.read_text(encoding="utf-8", errors="replace"))):
            t_unix, index, pid = (
                _float(row.get("t_unix")),
                _float(row.get("gpu_index")),
                _float(row.get("pid")),
            )
            if t_unix is not None and index is not None and pid is not None:
                bundle.gpu_processes.append(
                    GpuProcessMemory(t_unix, int(index), int(pid), _float(row.get("used_mib")))
                )
    proc_path = _find(path, layout.PROCESSES)
    if proc_path:
        bundle.processes = _read_processes(proc_path, issues)
    if (path / layout.SOCKETS).is_file():
        bundle.sockets = _read_sockets(path / layout.SOCKETS)
    bundle.server = _read_server(path, issues)
    sock_text = _find(path, layout.SS_S + layout.SOCKSTAT)
    ss_tan = _find(path, layout.SS_TAN)
    if sock_text:
        text = sock_text.read_text(encoding="utf-8", errors="replace")
        if looks_like_ss_tan(text) and ss_tan is None:
            ss_tan = sock_text  # `ss -tan` saved under the `ss -s` name: read what it is
        else:
            bundle.sockstat_text = text
            bundle.host_tcp = parse_host_tcp(text)
    if ss_tan and not bundle.sockets:
        bundle.sockets = [_read_ss_tan(ss_tan, bundle.server, issues)]
    bundle.stress = _read_report(path / layout.STRESS, "stress", "the client's view", issues)
    bundle.bypass = _read_report(path / layout.BYPASS, "bypass", "the bypass comparison", issues)

    if not (bundle.dumps or bundle.gpu or bundle.processes or bundle.sockets or bundle.sockstat_text):
        raise DoctorError(
            f"{path} holds nothing rerank-doctor can read",
            f"expected {layout.METRICS[0]}, {layout.NVIDIA_SMI[0]}, {layout.PROCESSES[0]} "
            f"or {layout.SS_S[0]} "
            "(see `rerank-doctor collect --help`)",
        )
    return bundle
