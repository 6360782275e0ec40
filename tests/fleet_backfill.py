"""Recorded bundles as one Prometheus TSDB: each recording one replica, for fleet-mode tests and benchmarks.

How the data is made (no hand-written series): every `/metrics` dump of a real recording becomes that
dump's samples at its own (shifted) time, with the labels Kubernetes service discovery would add
(`namespace`, `pod`, `instance`, `job`). The GPU samples become dcgm-exporter's series
(`DCGM_FI_DEV_GPU_UTIL` %, `DCGM_FI_DEV_POWER_USAGE` W, `DCGM_FI_DEV_FB_USED`/`_FREE` MiB,
`DCGM_FI_DEV_SM_CLOCK` MHz), as dcgm-exporter with its pod mapping labels them. The per-process CPU and
socket readings become what our own exporter, deployed beside vLLM, serves after each window: the
exporter's real `families()` over the readings between two dumps.

`promtool tsdb create-blocks-from openmetrics` turns the text into blocks (it keeps `vllm:x` names with
the colon; a scraping Prometheus 2.x would store `vllm_x`; fleet mode reads both).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from diagnose.bundle import read_bundle
from diagnose.exporter.collector import families
from diagnose.exporter.snapshot import build_snapshot
from diagnose.exporter.state import StateView
from diagnose.metrics.exposition import parse_dump
from diagnose.pipeline import diagnose
from diagnose.readings import Bundle

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
# The repo's real recordings that `check --from` reads as they are (the H200 0.26 captures are added
# from tests/conftest.py's captures_dir when present).
RECORDINGS = (
    *(FIXTURES / name / "bundle" for name in sorted(p.name for p in FIXTURES.glob("gpu-h200-*-*api-*"))),
    FIXTURES / "vllm-0.32-cpu-lab",
    FIXTURES / "vllm-0.32-cpu-lab-disable-log-stats",
    FIXTURES / "vllm-0.7-era",
)
NAMESPACE = "rerank"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _series(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _value(v: float) -> str:
    return repr(float(v)) if v == v and abs(v) != float("inf") else ("NaN" if v != v else "+Inf")


@dataclass(frozen=True, slots=True)
class Recording:
    """One recording's samples as (offset from its first dump in s, "name{labels}" minus the pod labels,
    value): made once, stamped out once per replica."""

    source: Path
    samples: tuple[tuple[float, str, dict[str, str], float], ...]
    span_s: float


def load_recording(path: Path) -> Recording:
    return recording_from_bundle(read_bundle(path), path)


def recording_from_bundle(bundle: Bundle, source: Path) -> Recording:
    dumps = sorted(bundle.dumps, key=lambda d: d.t_unix)
    t0 = dumps[0].t_unix
    out: list[tuple[float, str, dict[str, str], float]] = []
    for dump in dumps:
        parsed = parse_dump(dump)
        for name, series in parsed.samples.items():
            if name.endswith("_created"):
                continue  # a start time, not a reading; dropped as Prometheus 2.42 scrapes do by default
            for labels, v in series.items():
                out.append((dump.t_unix - t0, name, {"job": "vllm", **dict(labels)}, v))
    t_end = dumps[-1].t_unix
    for g in bundle.gpu:
        if not (t0 - 1.0 <= g.t_unix <= t_end + 1.0):
            continue
        gpu_labels = {
            "job": "dcgm-exporter",
            "gpu": str(g.index),
            "modelName": g.name or "",
            "container": "vllm",
        }
        free = (
            g.memory_total_mib - g.memory_used_mib
            if g.memory_total_mib is not None and g.memory_used_mib is not None
            else None
        )
        for name, v in (
            ("DCGM_FI_DEV_GPU_UTIL", g.util_pct),
            ("DCGM_FI_DEV_POWER_USAGE", g.power_w),
            ("DCGM_FI_DEV_FB_USED", g.memory_used_mib),
            ("DCGM_FI_DEV_FB_FREE", free),
            ("DCGM_FI_DEV_SM_CLOCK", g.sm_clock_mhz),
        ):
            if v is not None:
                out.append((g.t_unix - t0, name, gpu_labels, v))
    out.extend(_exporter_samples(bundle, dumps, t0))
    out.sort(key=lambda s: s[0])
    return Recording(source, tuple(out), t_end - t0)


def _exporter_samples(
    bundle: Bundle, dumps: list, t0: float
) -> list[tuple[float, str, dict[str, str], float]]:
    """What `rerank-doctor export` beside this server would have served after each window between dumps."""
    if not bundle.processes and not bundle.sockets:
        return []
    out: list[tuple[float, str, dict[str, str], float]] = []
    for i in range(1, len(dumps)):
        lo, hi = dumps[i - 1].t_unix, dumps[i].t_unix
        window = Bundle(
            dumps=[dumps[i - 1], dumps[i]],
            gpu=[g for g in bundle.gpu if lo < g.t_unix <= hi],
            processes=[p for p in bundle.processes if lo < p.t_unix <= hi],
            sockets=[s for s in bundle.sockets if lo < s.t_unix <= hi + 1.0],
            server=bundle.server,
        )
        report = diagnose(window)
        snap = build_snapshot(window, report, window_end_t_unix=hi, collection_s=0.0)
        view = StateView(snap, True, hi, None, dict(snap.collector_up), i, 0)
        for family in families(view, now=hi):
            for sample in family.samples:
                labels = {"job": "rerank-doctor", **{k: str(v) for k, v in sample.labels.items()}}
                out.append((hi - t0, sample.name, labels, float(sample.value)))
    return out


def replica_name(index: int) -> str:
    return f"rr-{index}"


def write_openmetrics(
    replicas: Sequence[tuple[str, Recording]],
    path: Path,
    t0_unix: float,
    *,
    namespace: str = NAMESPACE,
    underscore_names: bool = False,
) -> None:
    """Every replica's samples, its first dump at `t0_unix`, in time order (promtool wants them so).

    `underscore_names` stores `vllm:x` as `vllm_x`, as Prometheus 2.x does when it scrapes
    prometheus_client >= 0.23 without the relabel rule (DESIGN §2)."""
    rows: list[tuple[float, str]] = []
    for pod, rec in replicas:
        for offset, name, labels, v in rec.samples:
            if underscore_names and name.startswith("vllm:"):
                name = "vllm_" + name[5:]
            port = {"vllm": "8000", "rerank-doctor": "9464"}.get(labels.get("job", ""), "9400")
            extra = {"namespace": namespace, "pod": pod, "instance": f"{pod}:{port}"}
            t = round(t0_unix + offset, 3)
            rows.append((t, f"{_series(name, {**labels, **extra})} {_value(v)} {t:.3f}"))
    rows.sort(key=lambda r: r[0])
    with path.open("w") as out:
        for _, line in rows:
            out.write(line)
            out.write("\n")
        out.write("# EOF\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_blocks(openmetrics: Path, data_dir: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        raise RuntimeError("promtool is not installed (apt-get install prometheus)")
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(data_dir)],
        check=True,
        capture_output=True,
        timeout=600,
    )


@contextmanager
def prometheus_over(
    data_dir: Path,
    *,
    extra_args: Sequence[str] = (),
    scrape_configs: Sequence[dict[str, object]] = (),
    scrape_interval_s: float = 15.0,
) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 over `data_dir` (by default no scrape targets); yields its URL.

    `scrape_configs` are Prometheus' own `scrape_configs` entries (job_name, static_configs, ...)."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed (apt-get install prometheus)")
    config = data_dir.parent / f"{data_dir.name}-prometheus.yml"
    interval = f"{scrape_interval_s:g}s"
    # JSON is YAML: no YAML writer needed for the config.
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": interval, "scrape_timeout": interval},
                "scrape_configs": list(scrape_configs),
            }
        )
    )
    port = free_port()
    log = data_dir.parent / f"{data_dir.name}-prometheus.log"
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=30d",
            *extra_args,
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60.0
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {log.read_text()[-2000:]}")
            try:
                if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready after 60 s: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
