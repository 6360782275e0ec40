"""File names of a bundle (DESIGN.md §5), and the other names the same content is found under.

A bundle is a plain folder of the outputs people already gather by hand during an incident, so a folder of
hand-run `curl /metrics`, `nvidia-smi --query-gpu ... -l 1` and `ss -s` outputs loads too. The first name of
each tuple is the one `collect` writes; the others are read as well (the 0.26 H200 captures use them).
"""

METRICS = ("metrics.prom", "metrics_series_5s.txt", "metrics.txt")
NVIDIA_SMI = ("nvidia-smi.csv", "nvidia_smi_1s.csv")
PROCESSES = ("processes.csv", "proc_cpu_1s.csv")
SOCKSTAT = ("sockstat.txt",)
SS_S = ("ss-s.txt",)
SS_TAN = ("ss-tan.txt", "ss-tanp.txt")  # `ss -tan` / `ss -tanp`: read as a census on the serving port
FLAGS = ("flags.txt", "server_flags_and_load.txt")

# Written by rerank-doctor only; optional when reading.
GPU_PROCESSES = "gpu-processes.csv"  # t_unix,gpu_index,pid,used_mib
# t_unix,port,scope,state,count — scope "port" (serving port), "host", or "port_recent" (TIME_WAIT on the
# port closed in the last readings.RECENT_CLOSE_S, from the netlink census's timers)
SOCKETS = "sockets.csv"
SERVER = "server.json"  # ServerInfo: /health, /version, /v1/models
ISSUES = "issues.json"  # CollectorIssue list: why something is missing
STRESS = "stress.json"  # the client's view from `rerank-doctor stress` over the same window
BYPASS = "bypass.json"  # `rerank-doctor bypass --save`: the model run directly vs served
MANIFEST = "bundle.json"  # schema version, tool version, how it was collected

# One /metrics dump per marker line; a file with no marker is a single dump taken at an unknown time.
CAPTURE_MARKER = "### capture t_unix="

BUNDLE_SCHEMA_VERSION = 1
