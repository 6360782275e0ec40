"""The Grafana dashboard (dashboards/): generated from code, provisioned by a fixed datasource uid, and
every query valid PromQL that accepts both vLLM spellings. (That every query returns data from a live
Prometheus is tests/test_monitoring_e2e.py.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from test_alerts import load_generator, need

REPO = Path(__file__).resolve().parent.parent
DASHBOARDS = REPO / "dashboards"
BOARD = DASHBOARDS / "rerank-doctor-overview.json"


def board() -> dict:
    return json.loads(BOARD.read_text())


def grafana_to_promql(expr: str, rate_interval: str = "1m") -> str:
    """What Grafana sends Prometheus: its variables replaced."""
    return expr.replace("$__rate_interval", rate_interval).replace("$__interval", "15s")


def test_committed_dashboard_is_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(DASHBOARDS / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool has no bare `query --parse` in 2.42: each query becomes a recording rule and is checked."""
    queries = load_generator("dashboards").queries(board())
    assert len(queries) >= 20
    rules = tmp_path / "dashboard-queries.yml"
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, (_, expr) in enumerate(queries):
        lines += [
            f"      - record: dashboard:query_{i}",
            f"        expr: {json.dumps(grafana_to_promql(expr))}",
        ]
    rules.write_text("\n".join(lines) + "\n")
    result = subprocess.run([need("promtool"), "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_every_vllm_query_accepts_both_spellings() -> None:
    for title, expr in load_generator("dashboards").queries(board()):
        for regex in re.findall(r'__name__=~"([^"]+)"', expr):
            names = set(regex.split("|"))
            for name in names:
                if name.startswith("vllm:"):
                    assert "vllm_" + name[5:] in names, f"{title}: {name} without its vllm_ spelling"
        assert not re.findall(r"(?<![\w\"|])vllm[:_]\w+", expr), f"{title}: a vLLM name outside the regex"


def test_panels_cover_the_overview() -> None:
    titles = " | ".join(p["title"] for p in board()["panels"]).lower()
    for words in (
        "verdict timeline",
        "queue time p50 / p95 / p99",
        "end-to-end latency",
        "calls/s and pairs/s",
        "4xx / 5xx",
        "errors and aborts",
        "generation tokens",
        "running and waiting",
        "kv cache",
        "prefix-cache hit ratio",
        "gpu utilization",
        "gpu memory",
        "gpu power",
        "api server vs engine core",
        "time_wait",
    ):
        assert words in titles, words


def test_every_panel_uses_the_provisioned_datasource_uid() -> None:
    provisioned = (DASHBOARDS / "provisioning" / "datasources" / "prometheus.yml").read_text()
    uid = re.search(r"^\s+uid: (\S+)", provisioned, re.MULTILINE)
    assert uid is not None
    for p in board()["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == uid.group(1), p["title"]
        assert all(t["datasource"]["uid"] == uid.group(1) for t in p["targets"]), p["title"]


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    panels = board()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine


def test_dashboard_provider_reads_the_folder_compose_mounts() -> None:
    provider = (DASHBOARDS / "provisioning" / "dashboards" / "rerank-doctor.yml").read_text()
    path = re.search(r"path: (\S+)", provider)
    assert path is not None
    compose = (REPO / "docker-compose.yml").read_text()
    assert (
        f"./dashboards/rerank-doctor-overview.json:{path.group(1)}/rerank-doctor-overview.json:ro" in compose
    )
