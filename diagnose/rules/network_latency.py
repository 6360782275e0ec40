"""Step 1, `network`: the client sees much more latency than the server measures.

The server's HTTP histogram starts when the request is read and stops when the response is written;
whatever the client sees beyond that is spent outside the server: connection setup, proxies, the
network, or a client too busy to read responses. Needs a stress report (the client's view).
"""

from __future__ import annotations

from diagnose.derive.evidence import Evidence
from diagnose.derive.sections.client import Client
from diagnose.derive.sections.latency import Latency
from diagnose.derive.sections.sockets import Sockets
from diagnose.report import Finding, Severity, Suggestion
from diagnose.rules.base import Rule, ladder, pick, secs, times
from diagnose.thresholds import Thresholds


class NetworkLatencyRule(Rule):
    id = "network-latency"
    step = 1
    label = "network"
    needs = (Client.client_mean_s, Latency.http_mean_s)

    def evaluate(self, ev: Evidence, thresholds: Thresholds) -> Finding | None:
        t = thresholds.of(self.id)
        client, server = ev.client.client_mean_s, ev.latency.http_mean_s
        if client is None or server is None or server <= 0:
            return None
        queue = thresholds.of("queueing")["queue_warning_s"]
        if ev.latency.queue_mean_s is not None and ev.latency.queue_mean_s >= queue:
            # Not the network: a server past capacity leaves calls unread in its socket backlog, time its
            # HTTP histogram never sees (seen on the lab in overload); `queueing` names that cause.
            return None
        ratio, gap = client / server, client - server
        severity = ladder(ratio, t["client_over_server_warning"], t["client_over_server_critical"])
        if severity == Severity.OK or gap < t["min_gap_s"]:
            return None  # the client sees what the server measures: no time lost in between
        return self.finding(
            severity=severity,
            title=f"Time lost between client and server: client {secs(client)} vs server {secs(server)}",
            detail=f"The client's mean latency is {secs(client)} but the server's HTTP mean is "
            f"{secs(server)} "
            f"({times(ratio)}, {secs(gap)} per call outside the server): connection setup, proxies, the "
            f"network, or a client too busy to read its responses.",
            numbers=pick(
                ev,
                Client.client_mean_s,
                Client.client_p95_s,
                Latency.http_mean_s,
                Latency.http_p95_s,
                Sockets.time_wait_on_port_max,
            ),
            suggestions=[
                Suggestion(
                    "client: HTTP keep-alive",
                    "enable",
                    None,
                    "one pooled session",
                    "removes per-call connection setup; also check proxies and the client's own CPU",
                )
            ],
            confidence="medium",
        )


RULE = NetworkLatencyRule()
