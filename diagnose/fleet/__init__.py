"""Fleet mode: every vLLM replica diagnosed through Prometheus (or Thanos / Mimir, same HTTP API).

One Evidence, two sources: `collect` builds a Bundle from one server; this package builds one Bundle per
replica from a handful of PromQL queries over the window, then calls the same `diagnose.pipeline.diagnose`,
so every rule judges fleet data unchanged.

- `window`: the time range (`--since` or `--start/--end`).
- `queries`: the PromQL, one query per evidence family, grouped `by` the replica label (never one query
  per replica), built from the name table in diagnose/metrics/names.py.
- `client`: the only I/O — bounded total time and response size; Prometheus failures as one-line errors.
- `fetch`: runs the plan through the client (the histograms' first bounds, the queries in parallel, the
  charted replicas' window step by step for the HTML page).
- `assemble`: pure, query results -> per-replica Bundles; `sidecars`: the exporters beside vLLM (ours,
  dcgm-exporter) -> their GPU, process and socket readings.
- `parallel`: each replica's diagnosis, over the machine's cores (this process and forked children).
- `summary`: pure, per-replica reports -> the fleet view (imbalance, stale replicas, versions, headroom).
- `render`: rich text and JSON.
- `run`: the `check --prometheus` / `watch --prometheus` entry.
"""
