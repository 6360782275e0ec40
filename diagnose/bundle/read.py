"""Reading a bundle folder: what `collect` wrote, a capture, or a folder of hand-run outputs.

Whatever cannot be read becomes a CollectorIssue in the bundle (the diagnosis then says what is
missing and why) rather than an error, except a folder with nothing usable in it at all.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from diagnose.bundle import layout
from diagnose.bundle.launch import flags_from_argv, read_launch
from diagnose.bundle.nvidia_smi import parse_nvidia_smi_csv
from diagnose.bundle.sockstat import parse_host_tcp
from diagnose.bundle.ss_tan import census_on_port, listening_ports, looks_like_ss_tan, parse_ss_tan
from diagnose.bundle.stream import DumpSpan, FileDumps, scan_file
from diagnose.bundle.values import (
    COUNT_MAX,
    CPU_PCT_MAX,
    GPU_INDEX_MAX,
    MAX_DUMP_BYTES,
    MIB_MAX,
    PID_MAX,
    PORT_MAX,
    T_UNIX_MAX,
    BadValue,
    Problems,
    csv_rows,
    json_bool,
    json_number,
    json_text,
    json_type_name,
    json_whole,
    load_json,
    measure,
    optional_whole,
    t_unix,
    whole,
)
from diagnose.errors import DoctorError
from diagnose.metrics.exposition import exposition_problem, parse_dump
from diagnose.progress import PROGRESS_EVERY_DUMPS, StepReporter
from diagnose.readings import (
    Bundle,
    CollectorIssue,
    GpuProcessMemory,
    MetricsDump,
    ProcessSample,
    ServerInfo,
    SocketCensus,
)
from diagnose.redact import redact_command_line, redact_url


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


def _read_processes(path: Path, issues: list[CollectorIssue]) -> list[ProcessSample]:
    rows = csv_rows(_read_text(path, issues, "host"))
    if not rows:
        return []
    col = {name.strip(): i for i, name in enumerate(rows[0])}
    needed = ("t_unix", "pid", "name", "cpu_percent")
    if any(n not in col for n in needed):
        issues.append(
            CollectorIssue(0.0, "host", f"{path.name} lacks columns {needed}: per-process CPU skipped")
        )
        return []
    problems = Problems(path.name)
    samples = []
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) < len(rows[0]):
            if any(cell.strip() for cell in row):
                problems.add(f"line {line_no}", f"{len(row)} columns, the header has {len(rows[0])}")
            continue
        where = f"line {line_no}"
        # A hand-made log may leave the last column (cmd) unquoted: its commas then split it.
        cmd = ",".join(row[col["cmd"] :]) if "cmd" in col and col["cmd"] == len(rows[0]) - 1 else ""
        try:
            when = t_unix(row[col["t_unix"]])
            pid = whole(row[col["pid"]], "pid", 0, PID_MAX)
        except BadValue as bad:
            problems.add(where, f"{bad}; row skipped")
            continue
        if when is None or pid is None:
            problems.add(where, "no time or no pid; row skipped")
            continue
        ppid = optional_whole(row[col["ppid"]], "ppid", PID_MAX, problems, where) if "ppid" in col else 0
        cpu = measure(row[col["cpu_percent"]], "cpu_percent", CPU_PCT_MAX, problems, where)
        rss = measure(row[col["rss_mb"]], "rss_mb", MIB_MAX, problems, where) if "rss_mb" in col else None
        samples.append(
            ProcessSample(
                t_unix=when,
                pid=pid,
                ppid=int(ppid or 0),
                name=row[col["name"]].strip(),
                cpu_percent=cpu,
                rss_mb=rss,
                cmd=redact_command_line(cmd.strip()),
            )
        )
    _add(issues, problems.issue("input", "those rows or values are left out of per-process CPU"))
    return samples


def _add(issues: list[CollectorIssue], issue: CollectorIssue | None) -> None:
    if issue is not None:
        issues.append(issue)


def _dict_rows(path: Path, issues: list[CollectorIssue], collector: str) -> list[tuple[int, dict[str, str]]]:
    rows = csv_rows(_read_text(path, issues, collector))
    if not rows:
        return []
    header = [h.strip() for h in rows[0]]
    return [(n, dict(zip(header, row, strict=False))) for n, row in enumerate(rows[1:], start=2) if row]


def _read_sockets(path: Path, issues: list[CollectorIssue]) -> list[SocketCensus]:
    by_time: dict[float, SocketCensus] = {}
    recent: dict[float, int] = {}  # scope "port_recent" rows (layout.SOCKETS)
    problems = Problems(path.name)
    for line_no, row in _dict_rows(path, issues, "sockets"):
        try:
            when = t_unix(row.get("t_unix"))
            count = whole(row.get("count"), "count", 0, COUNT_MAX)
            port = whole(row.get("port"), "port", 0, PORT_MAX)
        except BadValue as bad:
            problems.add(f"line {line_no}", f"{bad}; row skipped")
            continue
        if when is None or count is None:
            problems.add(f"line {line_no}", "no time or no count; row skipped")
            continue
        census = by_time.setdefault(when, SocketCensus(t_unix=when, port=port or None))
        scope = (row.get("scope") or "").strip()
        if scope == "port_recent":
            recent[when] = count
            continue
        target = census.port_states if scope == "port" else census.host_states
        target[(row.get("state") or "?").strip() or "?"] = count
    _add(issues, problems.issue("input", "those rows are left out of the socket census"))
    return [
        replace(by_time[t], port_time_wait_recent=recent[t]) if t in recent else by_time[t]
        for t in sorted(by_time)
    ]


def _read_gpu_processes(path: Path, issues: list[CollectorIssue]) -> list[GpuProcessMemory]:
    rows = []
    problems = Problems(path.name)
    for line_no, row in _dict_rows(path, issues, "gpu"):
        where = f"line {line_no}"
        try:
            when = t_unix(row.get("t_unix"))
            index = whole(row.get("gpu_index"), "gpu_index", 0, GPU_INDEX_MAX)
            pid = whole(row.get("pid"), "pid", 0, PID_MAX)
        except BadValue as bad:
            problems.add(where, f"{bad}; row skipped")
            continue
        if when is None or index is None or pid is None:
            problems.add(where, "no time, GPU index or pid; row skipped")
            continue
        used = measure(row.get("used_mib"), "used_mib", MIB_MAX, problems, where)
        rows.append(GpuProcessMemory(when, index, pid, used))
    _add(issues, problems.issue("input", "those rows are left out of GPU memory per process"))
    return rows


def _server_from_json(data: Any, problems: Problems) -> ServerInfo:
    """server.json as typed facts: a field of the wrong type is unknown, and said so."""
    if not isinstance(data, dict):
        problems.add("", f"expected an object, found {json_type_name(data)}")
        return ServerInfo()
    pids_raw = data.get("pids")
    pids: list[int] = []
    if isinstance(pids_raw, list):
        for p in pids_raw:
            if isinstance(p, int) and not isinstance(p, bool) and 0 < p <= PID_MAX:
                pids.append(p)
            else:
                problems.add("pids", f"{p!r} is not a pid; left out")
    elif pids_raw is not None:
        problems.add("pids", f"expected a list, found {json_type_name(pids_raw)}; taken as unknown")
    return ServerInfo(
        url=json_text(data, "url", problems),
        healthy=json_bool(data, "healthy", problems),
        version=json_text(data, "version", problems),
        model_id=json_text(data, "model_id", problems),
        max_model_len=json_whole(data, "max_model_len", problems, 1, 2**31),
        flags=json_text(data, "flags", problems),
        env=_env_from_json(data.get("env"), problems),
        pids=pids,
        host_cores=json_whole(data, "host_cores", problems, 1, 1 << 16),
    )


def _env_from_json(value: Any, problems: Problems) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        problems.add("env", f"expected an object of text values, found {json_type_name(value)}; left out")
        return {}
    return dict(value)


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
        problems = Problems(layout.SERVER)
        try:
            server = _server_from_json(load_json(_read_text(path, issues, "server"), problems), problems)
        except BadValue as bad:
            problems.add("", str(bad))
        _add(issues, problems.issue("input", "those server facts are unknown"))
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
    if server.url:
        server.url = redact_url(server.url)
    return server


def _issues_from_json(data: Any, problems: Problems) -> list[CollectorIssue]:
    if not isinstance(data, list):
        problems.add("", f"expected a list, found {json_type_name(data)}")
        return []
    found = []
    for n, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            problems.add(f"item {n}", f"expected an object, found {json_type_name(item)}; left out")
            continue
        item_problems = Problems(layout.ISSUES)
        collector = json_text(item, "collector", item_problems)
        reason = json_text(item, "reason", item_problems)
        if item_problems.count or not collector or not reason:
            problems.add(f"item {n}", "needs text `collector` and `reason`; left out")
            continue
        when = json_number(item, "t_unix", problems, 0.0, T_UNIX_MAX) or 0.0
        found.append(CollectorIssue(when, collector, reason, json_text(item, "fix", problems) or ""))
    return found


# The fields of a stress report the diagnosis reads (client_view_from_stress), with their bounds.
_STRESS_LATENCY = (("count", COUNT_MAX), ("mean_s", 1e6), ("p95_s", 1e6))
# The fields of a bypass report's `overhead` rows that the diagnosis reads.
_BYPASS_ROW = (("direct_pairs_per_s", 1e9), ("served_pairs_per_s", 1e9), ("share_of_served", 1e6))


def _checked_numbers(
    section: Any, fields: tuple[tuple[str, float], ...], problems: Problems, where: str
) -> Any:
    """The same dict with each listed field a finite number in range, or None (unknown)."""
    if not isinstance(section, dict):
        problems.add(where, f"expected an object, found {json_type_name(section)}; taken as unknown")
        return None
    out = dict(section)
    for key, hi in fields:
        value = json_number(section, key, problems, 0.0, hi)
        out[key] = value if key != "count" or value is None else int(value)
    return out


def _read_report(path: Path, collector: str, what: str, issues: list[CollectorIssue]) -> dict | None:
    """A JSON report a step wrote into the bundle (stress.json, bypass.json); None when absent."""
    if not path.is_file():
        return None
    problems = Problems(path.name)
    report: dict | None = None
    try:
        loaded = load_json(_read_text(path, issues, collector), problems)
    except BadValue as bad:
        problems.add("", str(bad))
        loaded = None
    if isinstance(loaded, dict):
        report = loaded
        if "latency" in report:
            report["latency"] = _checked_numbers(report["latency"], _STRESS_LATENCY, problems, "latency")
        if "overhead" in report:
            rows = report["overhead"] if isinstance(report["overhead"], list) else []
            if not isinstance(report["overhead"], list):
                problems.add("overhead", f"expected a list, found {json_type_name(report['overhead'])}")
            checked = [
                _checked_numbers(r, _BYPASS_ROW, problems, f"overhead[{i}]") for i, r in enumerate(rows)
            ]
            report["overhead"] = [r for r in checked if r is not None]
    elif loaded is not None or not problems.count:
        problems.add("", f"expected an object, found {json_type_name(loaded)}")
    _add(
        issues,
        problems.issue(collector, f"{what} is read without those values" if report else f"{what} is skipped"),
    )
    return report


def _read_metrics(path: Path, issues: list[CollectorIssue], progress: StepReporter | None) -> FileDumps:
    """The dumps of a metrics file that are Prometheus expositions, indexed (not held: one dump's text is
    in memory at a time); DoctorError when none is.

    A dump that is not an exposition at all (JSON, HTML, binary, empty) is bad input, never "healthy";
    one with a few unreadable lines is kept, and the lines dropped are counted in one issue.
    """
    problems = Problems("metrics dumps")
    scan, lines = scan_file(path, path.stat().st_mtime, problems, MAX_DUMP_BYTES)
    kept: list[DumpSpan] = []
    seen = dropped_lines = damaged = 0
    first_line: str | None = None
    lone: str | None = None  # the first dump's verdict, worded for a file of one dump until a second shows
    size_mb = path.stat().st_size / 1e6
    for span, text in scan:
        seen += 1
        if progress is not None and seen % PROGRESS_EVERY_DUMPS == 0:
            progress.step(
                f"reading {path.name}: {seen:,} dumps, {span.offset / 1e6:,.0f} of {size_mb:,.0f} MB"
            )
        if seen == 2 and lone is not None:
            problems.add("dump 1", f"{lone}; that dump is skipped")
            lone = None
        n = span.number
        if text is None:
            dump_mb = span.nbytes / 1e6
            problems.add(f"dump {n}", f"{dump_mb:.0f} MB, far past any vLLM /metrics; that dump is skipped")
            continue
        parsed = parse_dump(MetricsDump(span.t_unix, text))
        verdict = exposition_problem(parsed)
        if verdict is not None:
            if seen == 1:
                lone = verdict
            else:
                problems.add(f"dump {n}", f"{verdict}; that dump is skipped")
            continue
        kept.append(span)
        if parsed.unreadable_lines:
            damaged += 1
            dropped_lines += parsed.unreadable_lines
            first_line = first_line or f"dump {n}, {parsed.first_unreadable}"
    if lone is not None:
        problems.add("dump 1", lone)
    if lines.first_bad_byte is not None:
        issues.append(
            CollectorIssue(
                0.0,
                "input",
                f"{path.name} is not UTF-8 (byte {lines.first_bad_byte}); unreadable bytes replaced",
            )
        )
    if not kept:
        why = problems.first[0] if problems.first else "it is empty"
        raise DoctorError(
            f"{path} holds no Prometheus exposition ({why})",
            f"save vLLM's own `curl URL/metrics` output as {layout.METRICS[0]}",
        )
    _add(issues, problems.issue("input", f"{len(kept)} of {seen} dumps are used"))
    if dropped_lines:
        issues.append(
            CollectorIssue(
                0.0,
                "input",
                f"{path.name}: {dropped_lines} unreadable line{'s' if dropped_lines != 1 else ''} dropped in "
                f"{damaged} of {len(kept)} dumps (first: {first_line})",
                "the numbers are read from the other lines; check how the dumps were saved",
            )
        )
    if len(kept) > 1 and len({s.t_unix for s in kept}) == 1:
        issues.append(
            CollectorIssue(
                0.0,
                "input",
                f"{path.name}: all {len(kept)} dumps carry the same capture time: there is no window, "
                "so only gauges are judged",
                "save each dump after a `### capture t_unix=<seconds>` line with its own time",
            )
        )
    return FileDumps(path, kept)


def read_bundle(directory: str | Path, progress: StepReporter | None = None) -> Bundle:
    """Loads a bundle folder; raises DoctorError when there is nothing to diagnose in it, or when its
    /metrics file holds no Prometheus exposition at all (garbage must never read as "healthy").
    `progress` hears how far a long metrics file is read."""
    path = Path(directory)
    if not path.is_dir():
        raise DoctorError(
            f"no bundle folder at {path}", "pass the folder that `rerank-doctor collect --out` wrote"
        )
    bundle = Bundle()
    issues = bundle.issues
    issues_path = path / layout.ISSUES
    if issues_path.is_file():
        problems = Problems(layout.ISSUES)
        try:
            issues.extend(
                _issues_from_json(load_json(_read_text(issues_path, issues, "input"), problems), problems)
            )
        except BadValue as bad:
            problems.add("", str(bad))
        _add(issues, problems.issue("input", "the issues recorded during collection are partly lost"))

    metrics_path = _find(path, layout.METRICS)
    if metrics_path:
        bundle.dumps = _read_metrics(metrics_path, issues, progress)
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
        bundle.gpu, gpu_problems = parse_nvidia_smi_csv(_read_text(gpu_path, issues, "gpu"))
        if gpu_problems and not bundle.gpu:
            # Nothing read: the first problem is why the GPU is unknown (the diagnosis quotes it).
            issues.append(CollectorIssue(0.0, "gpu", f"{gpu_path.name}: {gpu_problems[0]}"))
        elif gpu_problems:
            more = f" (and {len(gpu_problems) - 3} more)" if len(gpu_problems) > 3 else ""
            issues.append(
                CollectorIssue(
                    0.0,
                    "input",
                    f"{gpu_path.name}: {len(gpu_problems)} unreadable value"
                    f"{'s' if len(gpu_problems) != 1 else ''} ({'; '.join(gpu_problems[:3])}{more})",
                    f"regenerate {gpu_path.name} or fix those lines by hand",
                )
            )
    gpu_procs = path / layout.GPU_PROCESSES
    if gpu_procs.is_file():
        bundle.gpu_processes = _read_gpu_processes(gpu_procs, issues)
    proc_path = _find(path, layout.PROCESSES)
    if proc_path:
        bundle.processes = _read_processes(proc_path, issues)
    if (path / layout.SOCKETS).is_file():
        bundle.sockets = _read_sockets(path / layout.SOCKETS, issues)
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
    bundle.stress = _read_report(path / layout.STRESS, "input", "the client's view", issues)
    bundle.bypass = _read_report(path / layout.BYPASS, "input", "the bypass comparison", issues)

    if not (bundle.dumps or bundle.gpu or bundle.processes or bundle.sockets or bundle.sockstat_text):
        raise DoctorError(
            f"{path} holds nothing rerank-doctor can read",
            f"expected {layout.METRICS[0]}, {layout.NVIDIA_SMI[0]}, {layout.PROCESSES[0]} "
            f"or {layout.SS_S[0]} "
            "(see `rerank-doctor collect --help`)",
        )
    return bundle
