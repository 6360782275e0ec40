"""Writing a bundle, appended as it is collected so that a crash or Ctrl-C keeps what was gathered."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from diagnose import __version__
from diagnose.bundle import layout
from diagnose.bundle.nvidia_smi import HEADER as NVIDIA_SMI_HEADER
from diagnose.bundle.nvidia_smi import format_nvidia_smi_csv
from diagnose.errors import DoctorError
from diagnose.readings import (
    Bundle,
    CollectorIssue,
    GpuProcessMemory,
    GpuSample,
    MetricsDump,
    ProcessSample,
    ServerInfo,
    SocketCensus,
)
from diagnose.redact import redact_command_line, redact_url

PROCESS_COLUMNS = ("t_unix", "pid", "ppid", "name", "cpu_percent", "rss_mb", "cmd")


def _opt(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


class BundleWriter:
    """Appends readings to the bundle's files as they arrive and flushes each write.

    Files are opened lazily, so a bundle holds only what was really collected (no empty GPU log on a
    host without a GPU).
    """

    def __init__(
        self, directory: str | Path, *, url: str | None = None, settings: dict[str, Any] | None = None
    ):
        self.dir = Path(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DoctorError(
                f"cannot create the bundle folder {self.dir}: {err.strerror}", "choose another --out folder"
            ) from err
        self._files: dict[str, IO[str]] = {}
        self._manifest = {
            "schema_version": layout.BUNDLE_SCHEMA_VERSION,
            "tool": f"rerank-doctor {__version__}",
            "created_t_unix": time.time(),
            "url": redact_url(url) if url else url,
            "settings": settings or {},
        }
        self._write_json(layout.MANIFEST, self._manifest)

    def _open(self, name: str, header: str | None = None) -> IO[str]:
        handle = self._files.get(name)
        if handle is None:
            # Held open across the window and closed in close(): appending keeps what arrived.
            handle = open(self.dir / name, "w", encoding="utf-8", newline="")  # noqa: SIM115
            if header:
                handle.write(header + "\n")
            self._files[name] = handle
        return handle

    def _write_json(self, name: str, payload: Any) -> None:
        path = self.dir / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        tmp.replace(path)

    def add_dump(self, dump: MetricsDump) -> None:
        handle = self._open(layout.METRICS[0])
        handle.write(f"{layout.CAPTURE_MARKER}{dump.t_unix:.6f}\n")
        handle.write(dump.text if dump.text.endswith("\n") else dump.text + "\n")
        handle.flush()

    def add_gpu(self, samples: Iterable[GpuSample]) -> None:
        body = format_nvidia_smi_csv(samples).split("\n", 1)[1]
        if body:
            handle = self._open(layout.NVIDIA_SMI[0], NVIDIA_SMI_HEADER)
            handle.write(body)
            handle.flush()

    def add_gpu_processes(self, rows: Iterable[GpuProcessMemory]) -> None:
        rows = list(rows)
        if rows:
            handle = self._open(layout.GPU_PROCESSES, "t_unix,gpu_index,pid,used_mib")
            for r in rows:
                handle.write(f"{r.t_unix:.3f},{r.gpu_index},{r.pid},{_opt(r.used_mib)}\n")
            handle.flush()

    def add_processes(self, samples: Iterable[ProcessSample]) -> None:
        samples = list(samples)
        if samples:
            handle = self._open(layout.PROCESSES[0], ",".join(PROCESS_COLUMNS))
            writer = csv.writer(handle, lineterminator="\n")
            for s in samples:
                writer.writerow(
                    # Redacted again here: whoever built the sample, no secret reaches the file.
                    (
                        f"{s.t_unix:.3f}",
                        s.pid,
                        s.ppid,
                        s.name,
                        _opt(s.cpu_percent),
                        _opt(s.rss_mb),
                        redact_command_line(s.cmd),
                    )
                )
            handle.flush()

    def add_sockets(self, census: SocketCensus) -> None:
        handle = self._open(layout.SOCKETS, "t_unix,port,scope,state,count")
        port = "" if census.port is None else str(census.port)
        for scope, states in (("port", census.port_states), ("host", census.host_states)):
            for state, count in sorted(states.items()):
                handle.write(f"{census.t_unix:.3f},{port},{scope},{state},{count}\n")
        if census.port_time_wait_recent is not None:
            # Scope "port_recent": TIME_WAIT on the port closed in the last RECENT_CLOSE_S (layout.SOCKETS).
            handle.write(f"{census.t_unix:.3f},{port},port_recent,TIME_WAIT,{census.port_time_wait_recent}\n")
        handle.flush()

    def set_sockstat_text(self, text: str) -> None:
        name = layout.SS_S[0] if text.lstrip().startswith("Total:") else layout.SOCKSTAT[0]
        (self.dir / name).write_text(text, encoding="utf-8")

    def set_server(self, server: ServerInfo) -> None:
        info = asdict(server)
        if server.url:
            info["url"] = redact_url(server.url)
        if server.flags:
            info["flags"] = redact_command_line(server.flags)
            (self.dir / layout.FLAGS[0]).write_text(info["flags"] + "\n", encoding="utf-8")
        self._write_json(layout.SERVER, info)

    def set_issues(self, issues: Iterable[CollectorIssue]) -> None:
        self._write_json(layout.ISSUES, [asdict(i) for i in issues])

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        self._manifest["finished_t_unix"] = time.time()
        self._write_json(layout.MANIFEST, self._manifest)

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_stress_report(directory: str | Path, report: dict[str, Any]) -> None:
    """Saves a stress run's report (LoadReport.to_dict(), no secrets in it) beside the server's view."""
    path = Path(directory) / layout.STRESS
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def write_bundle(bundle: Bundle, directory: str | Path) -> Path:
    """Writes a whole in-memory bundle (e.g. one read from elsewhere, or built by a test) to a folder."""
    with BundleWriter(directory, url=bundle.server.url) as writer:
        for dump in bundle.dumps:
            writer.add_dump(dump)
        writer.add_gpu(bundle.gpu)
        writer.add_gpu_processes(bundle.gpu_processes)
        writer.add_processes(bundle.processes)
        for census in bundle.sockets:
            writer.add_sockets(census)
        if bundle.sockstat_text:
            writer.set_sockstat_text(bundle.sockstat_text)
        writer.set_server(bundle.server)
        writer.set_issues(bundle.issues)
    if bundle.stress is not None:
        write_stress_report(directory, bundle.stress)
    if bundle.bypass is not None:
        (Path(directory) / layout.BYPASS).write_text(
            json.dumps(bundle.bypass, indent=2) + "\n", encoding="utf-8"
        )
    return Path(directory)
