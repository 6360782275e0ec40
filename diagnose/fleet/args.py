"""The fleet flags `check` and `watch` share. Light on imports: `--help` loads this module."""

from __future__ import annotations

import argparse


def add_prometheus_arguments(parser: argparse.ArgumentParser) -> None:
    """The fleet flags `check` and `watch` share (`--prometheus` itself is in each command's source group)."""
    group = parser.add_argument_group("fleet mode (with --prometheus; Thanos and Mimir serve the same API)")
    group.add_argument(
        "--selector",
        metavar="'{LABEL=\"VALUE\"}'",
        help="""narrow every vLLM series, e.g. '{namespace="rerank"}' (default: every vLLM series)""",
    )
    group.add_argument("--since", help="window ending now, e.g. 10m (default 10m)")
    group.add_argument("--start", help="window start: unix seconds or RFC 3339 (with --end)")
    group.add_argument("--end", help="window end: unix seconds or RFC 3339 (default: now)")
    group.add_argument(
        "--replica-label",
        default="pod",
        help="the label that names a replica (default pod; series without it fall back to instance)",
    )
    group.add_argument(
        "--header",
        action="append",
        metavar="'NAME: VALUE'",
        help="HTTP header for every query, repeatable (e.g. 'Authorization: Bearer TOKEN', "
        "'X-Scope-OrgID: TENANT'); values are never printed",
    )
    group.add_argument("--ca-cert", metavar="FILE", help="CA bundle that signed the Prometheus certificate")
    group.add_argument(
        "--query-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="total time for all queries of one diagnosis (default 60)",
    )
