"""`rerank-doctor export`: the diagnosis as Prometheus metrics, for dashboards and alerts.

- `snapshot`: what one finished collection window produced (report, GPU, per-role CPU, sockets), pure.
- `collector`: a prometheus_client custom collector that turns the latest snapshot into metric families
  at scrape time; it never does I/O, so a scrape never waits on vLLM.
- `loop`: the background thread that collects windows back to back and keeps the last good snapshot.
- `promql`: PromQL selectors that accept every vLLM name and both spellings (used by the dashboard and
  alert-rule generators in dashboards/ and alerts/).
"""
