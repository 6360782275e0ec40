"""What `collect` prints: what the bundle holds, and what is missing and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from diagnose.readings import Bundle


def collection_summary(bundle: Bundle, out: Path | None, outcome: Any) -> Group:
    """A pure builder: the renderable, for the CLI to print and tests to render to a string."""
    from diagnose.derive.processes import cpu_by_role

    table = Table(title="Collected", show_header=True, header_style="bold", title_justify="left")
    table.add_column("source")
    table.add_column("what", overflow="fold")
    server = bundle.server
    table.add_row(
        "server",
        f"{server.url or '?'}  vLLM {server.version or '?'}  model {server.model_id or '?'}  "
        f"max_model_len {server.max_model_len if server.max_model_len is not None else '?'}  "
        f"healthy {'yes' if server.healthy else 'no' if server.healthy is False else '?'}",
    )
    span = bundle.dumps[-1].t_unix - bundle.dumps[0].t_unix if len(bundle.dumps) > 1 else 0.0
    table.add_row("/metrics", f"{len(bundle.dumps)} scrapes over {span:.1f} s")
    gpus = sorted({g.index for g in bundle.gpu})
    table.add_row("GPU (NVML)", f"{len(bundle.gpu)} samples of {len(gpus)} GPU(s)" if gpus else "none")
    # By role, not per pid: in multi-API-server mode the `vllm serve` launcher is no API server.
    roles = cpu_by_role(bundle.processes)
    found = ", ".join(f"{cpu.process_count} {role}" for role, cpu in sorted(roles.items()) if role != "host")
    table.add_row("processes", f"{len(bundle.processes)} samples: {found or 'no vLLM process found'}")
    if bundle.sockets:
        tw = max(c.port_states.get("TIME_WAIT", 0) for c in bundle.sockets)
        table.add_row(
            "sockets", f"{len(bundle.sockets)} censuses of port {bundle.sockets[0].port}; TIME_WAIT max {tw}"
        )
    else:
        table.add_row("sockets", "none")
    if server.flags:
        table.add_row("flags", server.flags)
    parts: list[Any] = [table]
    for issue in bundle.issues:
        line = Text(f"! {issue.collector}: {issue.reason}", style="yellow")
        if issue.fix:
            line.append(f" — {issue.fix}", style="dim")
        parts.append(line)
    if getattr(outcome, "stopped_early", None):
        parts.append(Text(f"stopped early: {outcome.stopped_early}", style="red"))
    if out is not None:
        parts.append(Text(f"bundle written to {out}  (diagnose it: rerank-doctor check --from {out})"))
    return Group(*parts)


def print_collection_summary(bundle: Bundle, out: Path | None, outcome: Any) -> None:
    Console().print(collection_summary(bundle, out, outcome))
