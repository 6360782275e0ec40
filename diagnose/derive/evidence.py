"""Evidence: every number the rules read, derived from one collection window (pure, no I/O).

This module only assembles: each section (diagnose/derive/sections/) declares its numbers once and has
its own pure deriver over its own readings. Counters and histograms come from the first and the last
/metrics dump of the window (deltas, reset-aware); gauges from every dump; GPU, per-process CPU and
sockets from the samples taken inside the window. Unknown is None, never 0, and every None has a reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from diagnose.derive import plausible
from diagnose.derive.dump_fold import fold_dumps
from diagnose.derive.section import Section, unknown
from diagnose.derive.sections.client import BypassOverhead, Client, StressSummary, derive_client
from diagnose.derive.sections.config import Config, derive_config
from diagnose.derive.sections.cpu import Cpu, CpuInputs, derive_cpu
from diagnose.derive.sections.disk import Disk, derive_disk
from diagnose.derive.sections.gpu import Gpu, derive_gpu
from diagnose.derive.sections.latency import Latency, derive_latency
from diagnose.derive.sections.scheduler import Scheduler, SchedulerGauges, derive_scheduler
from diagnose.derive.sections.shape import Shape, derive_shape
from diagnose.derive.sections.sockets import Sockets, derive_sockets
from diagnose.derive.sections.traffic import ADMIN_HANDLERS, Traffic, derive_traffic
from diagnose.derive.versions import server_version
from diagnose.metrics.exposition import ParsedDump
from diagnose.progress import StepReporter
from diagnose.readings import Bundle

__all__ = ["ADMIN_HANDLERS", "SECTIONS", "Evidence", "Ref", "StressSummary", "build_evidence", "ref_name"]

NO_ENGINE_METRICS = "no vllm: families in /metrics: the server runs with --disable-log-stats (or is not vLLM)"
# A sample this far outside the /metrics window still belongs to it (collectors start a beat apart).
WINDOW_SLACK_S = 1.0
ONE_SCRAPE = "one scrape: counters need two (a window of at least two /metrics dumps)"

# A reference to one number: a section's class attribute, e.g. `Latency.queue_p95_s` (a slot descriptor,
# so a misspelt name fails when the rule module is imported).
Ref = Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    window_s: float | None = None  # last /metrics dump time minus the first
    dumps: int = 0  # /metrics dumps in the window
    latency: Latency = field(default_factory=Latency)
    traffic: Traffic = field(default_factory=Traffic)
    shape: Shape = field(default_factory=Shape)
    scheduler: Scheduler = field(default_factory=Scheduler)
    gpu: Gpu = field(default_factory=Gpu)
    cpu: Cpu = field(default_factory=Cpu)
    sockets: Sockets = field(default_factory=Sockets)
    disk: Disk = field(default_factory=Disk)
    config: Config = field(default_factory=Config)
    client: Client = field(default_factory=Client)
    window_missing: str | None = None  # why window_s is None

    def sections(self) -> Iterator[Section]:
        for name in SECTIONS:
            yield getattr(self, name)

    def read(self, ref: Ref) -> Any:
        """The value of one number, by reference (`evidence.read(Latency.queue_p95_s)`)."""
        return ref.__get__(getattr(self, _SECTION_ATTR[ref.__objclass__]))

    def reason(self, ref: Ref) -> str:
        """Why a number is unknown (empty when it is known)."""
        return getattr(self, _SECTION_ATTR[ref.__objclass__]).missing.get(ref.__name__, "")

    @property
    def missing(self) -> dict[str, str]:
        """Why each unknown number is unknown, by field name."""
        out = {"window_s": self.window_missing or ONE_SCRAPE} if self.window_s is None else {}
        for section in self.sections():
            out.update(section.missing)
        return out

    def as_dict(self) -> dict[str, object]:
        """Every number, flat by field name (names are unique across sections), in declaration order:
        the report's `evidence` and the JSON output."""
        out: dict[str, object] = {"window_s": self.window_s, "dumps": self.dumps}
        for section in self.sections():
            out.update(section.values())
        return out


# The section attributes of Evidence, in order, and the section class each holds.
SECTIONS: dict[str, type[Section]] = {
    name: kind
    for name, kind in get_type_hints(Evidence).items()
    if isinstance(kind, type) and issubclass(kind, Section)
}
_SECTION_ATTR: dict[type, str] = {cls: name for name, cls in SECTIONS.items()}


def ref_name(ref: Ref) -> str:
    """The field name of a reference; TypeError when it is not a number of an Evidence section."""
    owner = getattr(ref, "__objclass__", None)
    if owner not in _SECTION_ATTR or ref.__name__ == "missing":
        raise TypeError(f"{ref!r} is not a number of an Evidence section")
    return str(ref.__name__)


def build_evidence(
    bundle: Bundle, client: StressSummary | None = None, progress: StepReporter | None = None
) -> Evidence:
    """All the numbers of one window. Pure: the same bundle always gives the same Evidence.

    The dumps are folded in one pass (derive/dump_fold.py): two parsed dumps are held however many the
    bundle has, and the scheduler's gauges are folded as they pass (or read from the metrics store's window
    statistics: fleet mode)."""
    gauges = SchedulerGauges.from_store(bundle.store_gauges)
    fold = fold_dumps(bundle.dumps, gauges.add, progress=progress, what="diagnosing the /metrics dumps")
    first, last, times = fold.first, fold.last, fold.times
    span = _span(times)
    inside = in_window(times)
    sections: dict[str, Section] = {}
    window_s: float | None = None
    window_missing: str | None = None
    pair: tuple[ParsedDump, ParsedDump] | None = None
    no_dumps = ONE_SCRAPE
    reported = server_version(bundle.server)  # "None" (a failed /version) or junk is no version
    version = reported.text if reported is not None else None

    if first is not None and span is None and len(times) > 1:
        window_missing = no_dumps = plausible.window_s(times).suspect or ONE_SCRAPE
    if first is None or last is None:
        no_dumps = _issue(bundle, "vllm") or "no /metrics dump"
        window_missing = no_dumps
        for name in ("latency", "traffic", "shape", "scheduler"):
            sections[name] = unknown(SECTIONS[name], no_dumps)
        sections["config"] = derive_config(
            None, bundle.server.flags, bundle.server.max_model_len, no_dumps, version
        )
    elif not fold.engine_metrics:
        window_s, no_dumps = span, NO_ENGINE_METRICS
        for name in ("latency", "shape", "scheduler"):
            sections[name] = unknown(SECTIONS[name], NO_ENGINE_METRICS)
        # The HTTP instrumentator still reports.
        sections["traffic"] = derive_traffic(first, last, span, no_engine=NO_ENGINE_METRICS)
        sections["config"] = derive_config(
            None, bundle.server.flags, bundle.server.max_model_len, NO_ENGINE_METRICS, version
        )
    else:
        if span is None:
            for name in ("latency", "traffic", "shape"):
                sections[name] = unknown(SECTIONS[name], no_dumps)
            sections["scheduler"] = derive_scheduler(gauges, first, last, counters=no_dumps)
        else:
            window_s = span
            pair = (first, last)
            traffic = derive_traffic(first, last, span)
            sections["traffic"] = traffic
            sections["latency"] = derive_latency(first, last, traffic.http_handler, bundle.store_quantiles)
            sections["shape"] = derive_shape(first, last, span)
            sections["scheduler"] = derive_scheduler(gauges, first, last)
        sections["config"] = derive_config(
            last, bundle.server.flags, bundle.server.max_model_len, ONE_SCRAPE, version
        )

    gpu_samples = [s for s in bundle.gpu if inside(s.t_unix)] or bundle.gpu
    sections["gpu"] = derive_gpu(
        gpu_samples, _issue(bundle, "gpu") or "needs NVML: no GPU samples in the bundle"
    )
    bounds = (times[0], times[-1] + 1.0) if span is not None else (None, None)
    sections["cpu"] = derive_cpu(
        CpuInputs(
            bundle.processes,
            bounds,
            _issue(bundle, "host"),
            pair,
            window_s,
            no_dumps=no_dumps,
            host_cores=bundle.server.host_cores,
        )
    )
    census = [s for s in bundle.sockets if inside(s.t_unix)] or bundle.sockets
    sections["sockets"] = derive_sockets(census, _issue(bundle, "sockets"), bundle.host_tcp)
    sections["disk"] = derive_disk()
    stress = client if client is not None else StressSummary.from_dict(bundle.stress)
    sections["client"] = derive_client(stress, BypassOverhead.best_of(bundle.bypass))
    return Evidence(
        window_s=window_s,
        dumps=fold.count,
        window_missing=window_missing,
        **sections,  # type: ignore[arg-type]
    )


def _span(times: list[float]) -> float | None:
    """First to last dump; None without two distinct capture times (plausible.window_s)."""
    checked = plausible.window_s(times)
    return checked.value if checked.value else None


def in_window(times: Sequence[float]) -> Callable[[float], bool]:
    """Is a sample time inside the metrics window (with 1 s slack at both ends)? Always, without one.
    `times` are the dumps' capture times in order."""
    if len(times) < 2 or times[0] <= 0:
        return lambda t: True
    lo, hi = times[0] - WINDOW_SLACK_S, times[-1] + WINDOW_SLACK_S
    return lambda t: lo <= t <= hi


def _issue(bundle: Bundle, collector: str) -> str | None:
    for issue in bundle.issues:
        if issue.collector == collector:
            return issue.reason + (f" ({issue.fix})" if issue.fix else "")
    return None
