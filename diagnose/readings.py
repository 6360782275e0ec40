"""Raw readings: what the collectors hand back and what a bundle stores.

These are plain records with no behaviour. Collectors produce them, `diagnose.bundle` saves and loads
them, `diagnose.derive` turns them into numbers. Unknown is `None`, never 0: a GPU whose power NVML
cannot read has `power_w=None`, not a power of zero watts.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload


@dataclass(frozen=True, slots=True)
class MetricsDump:
    """One GET of vLLM's /metrics: the exposition text as received, and when."""

    t_unix: float  # seconds since the epoch, taken when the response arrived
    text: str


class TimeOrderedDumps(Sequence[MetricsDump]):
    """Dumps already in capture-time order, held outside memory (a bundle's metrics file, read one dump at
    a time: diagnose/bundle/stream.py). A list of dumps is the other kind of `Bundle.dumps`."""

    @abstractmethod
    def __len__(self) -> int: ...

    @overload
    def __getitem__(self, index: int) -> MetricsDump: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[MetricsDump]: ...
    @abstractmethod
    def __getitem__(self, index: int | slice) -> MetricsDump | Sequence[MetricsDump]: ...

    @abstractmethod
    def __iter__(self) -> Iterator[MetricsDump]: ...


def time_ordered(dumps: Sequence[MetricsDump]) -> Sequence[MetricsDump]:
    """The dumps by capture time: a TimeOrderedDumps as it is (sorted once, when it was indexed), a list
    sorted (references only, no text is copied)."""
    if isinstance(dumps, TimeOrderedDumps):
        return dumps
    return sorted(dumps, key=lambda d: d.t_unix)


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One GPU at one instant (NVML, or a row of `nvidia-smi --query-gpu ... --format=csv`)."""

    t_unix: float
    index: int
    util_pct: float | None  # NVML "utilization.gpu": share of time a kernel was running, not SM occupancy
    memory_used_mib: float | None
    memory_total_mib: float | None
    power_w: float | None
    sm_clock_mhz: float | None
    name: str | None = None
    # Where the sample stands for an interval (fleet mode: a range step), the highest reading inside it;
    # None: the sample is one reading.
    util_max_pct: float | None = None
    power_max_w: float | None = None


@dataclass(frozen=True, slots=True)
class GpuProcessMemory:
    """GPU memory held by one process on one GPU (NVML running compute processes)."""

    t_unix: float
    gpu_index: int
    pid: int
    used_mib: float | None


# The row name a process sample uses for the host as a whole (as in the captures' proc_cpu_1s.csv).
HOST_TOTAL = "HOST_TOTAL"


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """CPU of one process over the interval that ends at `t_unix` (psutil `cpu_percent`).

    `cpu_percent` is in percent of ONE core (200 = two cores busy), as psutil and `top` report it.
    The host row (`name == HOST_TOTAL`, pid 0) is in percent of ALL cores, and its `rss_mb` is the
    host's used memory.
    """

    t_unix: float
    pid: int
    ppid: int
    name: str
    cpu_percent: float | None
    rss_mb: float | None
    cmd: str  # command line, secrets redacted
    # Where the sample stands for a longer interval than one reading (fleet mode: the exporter's window,
    # whose mean is `cpu_percent`): the highest one-second reading inside it. None: one reading.
    cpu_max_percent: float | None = None


@dataclass(frozen=True, slots=True)
class SocketCensus:
    """TCP sockets by state at one instant: on the serving port, and on the whole host.

    State names are the kernel's (`TIME_WAIT`, `ESTABLISHED`, `CLOSE_WAIT`, `SYN_RECV`, ...).
    `port_states` counts sockets whose local OR remote port is the serving port, so both the server's
    accepted sockets and a local client's sockets to it are seen. Empty when the port is unknown.
    """

    t_unix: float
    port: int | None
    port_states: dict[str, int] = field(default_factory=dict)
    host_states: dict[str, int] = field(default_factory=dict)
    # TIME_WAIT sockets on the port closed in the last RECENT_CLOSE_S (their 60 s timer has more than
    # 60 - RECENT_CLOSE_S left): connections closed per RECENT_CLOSE_S, so an ongoing flood is told from
    # one that ended before the window. None where the census cannot see timers (/proc, `ss -tan` files).
    port_time_wait_recent: int | None = None


# The look-back of SocketCensus.port_time_wait_recent: the census runs every 5 s, so consecutive censuses
# cover the whole window without a gap.
RECENT_CLOSE_S = 5.0


@dataclass(frozen=True, slots=True)
class TcpTotals:
    """Host-wide TCP counts from /proc/net/sockstat or `ss -s`. None where the source does not say.

    Every process on the host counts here, not only vLLM: a census on the serving port is better evidence.
    """

    time_wait: int | None  # sockstat "tw", ss "timewait"
    established: int | None = None  # ss "estab" (sockstat has no such count)
    orphaned: int | None = None  # sockstat "orphan", ss "orphaned": closed by the app, not yet by the peer
    in_use: int | None = None  # sockstat "inuse": TCP sockets other than TIME_WAIT
    total: int | None = None  # ss "TCP: N" (includes TIME_WAIT and closed)
    source: str = ""  # "ss -s" or "/proc/net/sockstat"


@dataclass(frozen=True, slots=True)
class CollectorIssue:
    """Why a collector produced nothing (or stopped): a value, not an exception.

    `collector` is one of "vllm", "gpu", "host", "sockets", "server".
    `fix` is one line telling the user what to do about it.
    """

    t_unix: float
    collector: str
    reason: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class StoreQuantile:
    """A histogram's quantile over the window as the metrics store computed it (fleet mode: PromQL's
    `histogram_quantile(q, sum(increase(x_bucket[window])))`), where its buckets were not fetched.

    `value` is None when the histogram saw no observation in the window (PromQL's NaN).
    `first_bucket_le` is the histogram's first bucket bound, the same for every replica it came from:
    the one first-bucket policy (derive/quantiles.py) needs it."""

    concept: str  # a histogram concept of diagnose/metrics/names.py, e.g. "queue_time"
    q: float
    value: float | None
    first_bucket_le: float


@dataclass(frozen=True, slots=True)
class StoreGauge:
    """A gauge's highest value and mean over every scrape of the window as the metrics store computed
    them (fleet mode: PromQL's `max_over_time` / `avg_over_time`), where its samples were not fetched.

    `gauge` names what the scheduler folds (derive/sections/scheduler.py's WINDOW_GAUGES). With several
    series in the replica (engines, API servers) both are sums of the series' own: the mean exact, the
    maximum an upper bound of the sum's (one series, the rule, makes it exact)."""

    gauge: str  # e.g. "waiting", "waiting_capacity"
    max: float
    mean: float


@dataclass(slots=True)
class ServerInfo:
    """What the server says about itself: /health, /v1/models, /version, and its command line."""

    url: str | None = None
    healthy: bool | None = None
    version: str | None = None
    model_id: str | None = None
    max_model_len: int | None = None
    flags: str | None = None  # the vLLM command line, secrets redacted
    env: dict[str, str] = field(default_factory=dict)  # VAR=value set for the server (flags.txt), redacted
    pids: list[int] = field(default_factory=list)  # the vLLM processes found (API servers, engine core...)
    host_cores: int | None = None  # logical CPUs of the serving host, where it was sampled (psutil)


@dataclass(slots=True)
class Bundle:
    """Everything collected over one window; what `collect` writes and `check --from` reads."""

    # In any order as a list (the sampler's, fleet mode's); a bundle file's as TimeOrderedDumps, so memory
    # stays flat however many it holds. Read them through `time_ordered`.
    dumps: Sequence[MetricsDump] = field(default_factory=list)
    gpu: list[GpuSample] = field(default_factory=list)
    gpu_processes: list[GpuProcessMemory] = field(default_factory=list)
    processes: list[ProcessSample] = field(default_factory=list)
    sockets: list[SocketCensus] = field(default_factory=list)
    server: ServerInfo = field(default_factory=ServerInfo)
    issues: list[CollectorIssue] = field(default_factory=list)
    # Host-wide socket totals from a hand-run `ss -s` / /proc/net/sockstat, when that is all there is.
    sockstat_text: str | None = None
    # The same, parsed (diagnose/bundle/sockstat.py): the host-wide census when no per-port one exists.
    host_tcp: TcpTotals | None = None
    # The client's view of the same window, when a `stress` run drove it: LoadReport.to_dict() (stress.json).
    stress: dict[str, Any] | None = None
    # The bypass step over the same model and pairs: BypassReport.to_dict() (bypass.json), when it ran.
    bypass: dict[str, Any] | None = None
    # Quantiles the metrics store computed (fleet mode), by histogram concept: their buckets were not
    # fetched, so the dumps hold those histograms' +Inf bucket, _count and _sum only.
    store_quantiles: dict[str, StoreQuantile] = field(default_factory=dict)
    # The scheduler's gauges over the window as the metrics store computed them (fleet mode), by
    # StoreGauge.gauge: the dumps then do not carry those gauges.
    store_gauges: dict[str, StoreGauge] = field(default_factory=dict)
