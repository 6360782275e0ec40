"""A small, fast parser of the Prometheus text exposition format (version 0.0.4), as vLLM serves it.

Why not prometheus_client's parser: the collector samples /metrics at 1 Hz and all collectors together
must cost <= 5 ms of CPU per sample, while `text_string_to_metric_families` takes ~16 ms on vLLM's
54 KB exposition (benchmarks/parse.py measures both). This parser keeps only what the diagnosis reads
(sample name -> label set -> value, family types, HELP text) and caches the parsed "name{labels}" part
of each line: from one scrape to the next almost every series string repeats, so the second parse of a
server's /metrics does one dict lookup and one float() per line.

It never raises on bad input. Each line it cannot read becomes one line in `ParsedDump.problems`
(capped, with a count of what was left out) and parsing goes on. tests/test_exposition.py checks it
against prometheus_client's parser on every real dump in the captures.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from diagnose.readings import MetricsDump

LabelSet = tuple[tuple[str, str], ...]  # sorted by label name

# A 50 MB garbage body must not become a 50 MB problem list: keep the first few, count the rest.
MAX_PROBLEMS = 20
_SNIPPET_CHARS = 100

# The series cache: "name{labels}" text -> (name, LabelSet). Bounded so that a server whose label
# values never repeat (a request id in a label, say) cannot grow it without limit; it is cleared and
# rebuilt when full, which costs one slow parse per series.
_SERIES_CACHE_MAX = 50_000
_series_cache: dict[str, tuple[str, LabelSet]] = {}

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
# One label pair, from `pos`: name = "value" (escapes \\ \" \n inside the quotes), then ',' or '}'.
_LABEL_PAIR = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"[ \t]*([,}])')
_LABELS_END = re.compile(r"[ \t]*}")
_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_KNOWN_TYPES = frozenset(
    {"counter", "gauge", "histogram", "summary", "untyped", "info", "stateset", "gaugehistogram", "unknown"}
)
_JSON_START = re.compile(r'[\[{]\s*("[^"\n]*"\s*:|[\[{\]}])')
_HELP_ESCAPE = re.compile(r"\\[\\n]")


@dataclass(frozen=True, slots=True)
class ParsedDump:
    t_unix: float
    types: dict[str, str]  # family -> counter|gauge|histogram|summary|info|untyped
    samples: dict[str, dict[LabelSet, float]]  # SAMPLE name -> labels -> value
    problems: list[str]  # one line per unparseable line (parsing goes on)
    # HELP text per family. Kept because it is the only place some facts are written down: the old
    # `gpu_prefix_cache_queries` counted blocks or tokens depending on the vLLM version; its HELP says which.
    help: dict[str, str] = field(default_factory=dict)
    # How many lines were dropped as unreadable, and the first of them ("line 57: ..."): what the report
    # tells the user about a partly unreadable exposition. `problems` is capped; this count is not.
    unreadable_lines: int = 0
    first_unreadable: str | None = None
    # Why this text is not a Prometheus exposition at all (no sample could be read), or None.
    verdict: str | None = None


def _unescape(text: str) -> str:
    # Unknown escapes are kept as written, as prometheus_client does; only \\ \" \n have a meaning.
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), text)


def _parse_series(line: str) -> tuple[str, LabelSet, int] | str:
    """Parse "name{a="x",b="y"}" at the start of `line`.

    Returns (name, labels, index just past the closing brace), or a reason (str) when it cannot.
    """
    brace = line.find("{")
    name = line[:brace].rstrip()
    if not _METRIC_NAME.match(name):
        return f"invalid metric name {name!r}" if name else "no metric name before '{'"
    pos = brace + 1
    pairs: dict[str, str] = {}
    match_pair = _LABEL_PAIR.match
    while True:
        m = match_pair(line, pos)
        if m is None:
            end = _LABELS_END.match(line, pos)  # `name{}`, or a trailing comma before '}'
            if end is not None:
                break
            if line.find("}", pos) < 0:
                return "labels are not closed with '}'"
            return f"malformed label at column {pos + 1}"
        label, raw, sep = m.group(1, 2, 3)
        if label in pairs:
            return f"label {label!r} given twice"
        pairs[label] = _unescape(raw) if "\\" in raw else raw
        pos = m.end()
        if sep == "}":
            return name, tuple(sorted(pairs.items())), pos
    return name, tuple(sorted(pairs.items())), end.end()


def _parse_value(token: str) -> float | None:
    # float() also takes "1_000"; the exposition format does not (neither Go's nor Python's reference parser).
    if "_" in token:
        return None
    try:
        return float(token)  # NaN, +Inf, -Inf, 1e-05 ... all as Prometheus writes them
    except ValueError:
        return None


class _Problems:
    __slots__ = ("dropped", "first_unreadable", "lines", "unreadable")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.dropped = 0
        self.unreadable = 0
        self.first_unreadable: str | None = None

    def drop_line(self, message: str) -> None:
        """A line whose data is lost (unlike a repeated series, which is read with a remark)."""
        self.unreadable += 1
        if self.first_unreadable is None:
            self.first_unreadable = message
        self.add(message)

    def add(self, message: str) -> None:
        if len(self.lines) < MAX_PROBLEMS:
            self.lines.append(message)
        else:
            self.dropped += 1

    def result(self) -> list[str]:
        if self.dropped:
            return [*self.lines, f"... and {self.dropped} more problem lines not listed"]
        return self.lines


def _snippet(line: str) -> str:
    cut = line if len(line) <= _SNIPPET_CHARS else line[:_SNIPPET_CHARS] + "..."
    # Binary garbage must not reach a terminal as control characters: escape it all then.
    return repr(cut) if cut.isprintable() else ascii(cut)


def _not_an_exposition(text: str) -> str | None:
    """A cheap look at the first characters: an HTML page or a JSON body is not worth parsing line by line."""
    head = text[:200].lstrip()
    if head.startswith("<"):
        return (
            "not a Prometheus exposition: the text starts with '<' (an HTML page: a proxy or login page?);"
            " point the URL at vLLM's /metrics endpoint"
        )
    if _JSON_START.match(head):
        return (
            "not a Prometheus exposition: the text is JSON (an API error or a different endpoint);"
            " point the URL at vLLM's /metrics endpoint"
        )
    return None


# Past 2^53 a float no longer counts in ones: no real counter or gauge of vLLM's is there, and sums of
# such values overflow to infinity in the window math. With `finite_only`, values beyond are unknown.
MAX_MAGNITUDE = 2.0**53


def parse_text(text: str, t_unix: float = 0.0, *, finite_only: bool = False) -> ParsedDump:
    """Parse one /metrics exposition. Never raises; unreadable lines are listed in `problems`.

    `finite_only` (what the diagnosis reads, via parse_dump) drops NaN, infinite and absurd values as
    unreadable lines: a counter that reads NaN is unknown, never "nan preemptions". Without it the
    parse is faithful to the format (prometheus_client keeps NaN), as the parser tests compare.
    """
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    samples: dict[str, dict[LabelSet, float]] = {}
    problems = _Problems()

    verdict = _not_an_exposition(text)
    if verdict is not None:
        lines_lost = sum(1 for line in text.split("\n") if line.strip())
        # The problem line keeps the advice; the verdict says what answered (messages add their own fix).
        short = verdict.partition(";")[0]
        return ParsedDump(t_unix, types, samples, [verdict], helps, lines_lost, f"line 1: {short}", short)

    cache = _series_cache
    lines = text.split("\n")
    last = len(lines) - 1
    truncated = not text.endswith("\n") and text != ""

    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if line[0] == "#":
            if line.startswith("# TYPE "):
                parts = line.split()
                if len(parts) != 4:
                    problems.drop_line(f"line {number}: TYPE line needs a name and a type: {_snippet(line)}")
                    continue
                kind = parts[3].lower()
                if kind not in _KNOWN_TYPES:
                    problems.add(f"line {number}: unknown metric type {parts[3]!r}")
                types[parts[2]] = kind
            elif line.startswith("# HELP "):
                parts = line.split(None, 3)
                if len(parts) >= 3:
                    doc = parts[3] if len(parts) == 4 else ""
                    if "\\" in doc:  # HELP escapes only \\ and \n (a quote needs no escape there)
                        doc = _HELP_ESCAPE.sub(lambda m: _ESCAPES[m.group(0)[1]], doc)
                    helps[parts[2]] = doc
            # Any other comment (including the bundle's `### capture t_unix=` markers) carries no data.
            continue

        at_cut = truncated and number - 1 == last  # the unterminated last line of a cut-off response
        if "{" in line:
            rb = line.rfind("}")
            hit = cache.get(line[: rb + 1]) if rb > 0 else None
            if hit is not None:
                name, labels = hit
                rest = line[rb + 1 :]
            else:
                parsed = _parse_series(line)
                if isinstance(parsed, str):
                    _report(problems, number, parsed, line, at_cut)
                    continue
                name, labels, end = parsed
                if len(cache) >= _SERIES_CACHE_MAX:
                    cache.clear()
                cache[line[:end]] = (name, labels)
                rest = line[end:]
            tokens = rest.split()
        else:
            tokens = line.split()
            name = tokens[0]
            labels = ()
            if name not in samples and not _METRIC_NAME.match(name):
                _report(problems, number, f"invalid metric name {name!r}", line, at_cut)
                continue
            tokens = tokens[1:]

        if not tokens:
            _report(problems, number, "no value", line, at_cut)
            continue
        value = _parse_value(tokens[0])
        if value is None:
            _report(problems, number, f"value {tokens[0]!r} is not a number", line, at_cut)
            continue
        if finite_only and not -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:  # False for NaN too
            _report(problems, number, f"value {tokens[0]!r} is not a plausible reading", line, at_cut)
            continue
        # An optional timestamp (ms) may follow. We keep the scrape time instead, but a non-number there
        # means the line is not what it seems. " # {...}" after the value is an OpenMetrics exemplar: ignored.
        if len(tokens) > 1 and tokens[1] != "#" and (len(tokens) > 2 or _parse_value(tokens[1]) is None):
            _report(problems, number, "unexpected text after the value", line, at_cut)
            continue

        series = samples.get(name)
        if series is None:
            samples[name] = {labels: value}
        else:
            if labels in series:
                problems.add(f"line {number}: series given twice, the last value wins: {_snippet(line)}")
            series[labels] = value

    verdict = _no_samples_verdict(samples, types, problems, blank=not text.strip())
    return ParsedDump(
        t_unix,
        types,
        samples,
        problems.result(),
        helps,
        problems.unreadable,
        problems.first_unreadable,
        verdict,
    )


def _no_samples_verdict(
    samples: dict[str, dict[LabelSet, float]], types: dict[str, str], problems: _Problems, *, blank: bool
) -> str | None:
    """Why no sample could be read (and the problem line saying so), or None when some were."""
    if samples:
        return None
    if blank:
        return "not a Prometheus exposition: the text is empty"
    if not types and not problems.lines:
        verdict = "not a Prometheus exposition: no metrics found in the text (only comments)"
    else:
        verdict = "not a Prometheus exposition: no sample could be read"
        if problems.first_unreadable:
            verdict += f" ({problems.first_unreadable})"
    problems.add(f"{verdict}: is this vLLM's /metrics endpoint?")
    return verdict


def exposition_problem(parsed: ParsedDump) -> str | None:
    """Why a parsed text is not vLLM's /metrics at all (JSON, HTML, binary, empty), or None when it is."""
    return parsed.verdict


def unreadable_summary(parsed: ParsedDump) -> str | None:
    """'4 unreadable lines dropped (first: line 57: ...)' for a partly unreadable exposition, else None."""
    if not parsed.unreadable_lines or parsed.verdict is not None:
        return None
    n = parsed.unreadable_lines
    return f"{n} unreadable line{'s' if n != 1 else ''} dropped (first: {parsed.first_unreadable})"


def _report(problems: _Problems, number: int, reason: str, line: str, on_truncated_last_line: bool) -> None:
    hint = " (the text ends mid-line: truncated response?)" if on_truncated_last_line else ""
    problems.drop_line(f"line {number}: {reason}{hint}: {_snippet(line)}")


def parse_dump(dump: MetricsDump) -> ParsedDump:
    """A dump as the diagnosis reads it: values that cannot be readings (NaN, inf, 1e308) are unknown.
    A PreParsedDump arrived parsed (fleet mode's PromQL answers): it is handed back as it is."""
    if isinstance(dump, PreParsedDump):
        return dump.parsed
    return parse_text(dump.text, dump.t_unix, finite_only=True)


def parsed_from_samples(t_unix: float, samples: Iterable[tuple[str, LabelSet, float]]) -> ParsedDump:
    """The ParsedDump that parse_dump would make of these samples written as an exposition (no TYPE or
    HELP lines), without the text: fleet mode has them from PromQL's JSON already, parsed once by its
    client. The same policy as a parsed text's: a value that cannot be a reading is an unreadable line,
    a series given again keeps the last value. `labels` must be sorted by label name, as the parser's."""
    out: dict[str, dict[LabelSet, float]] = {}
    problems = _Problems()
    for name, labels, value in samples:
        if not name:
            problems.drop_line(f"no metric name: {_snippet(_series_text(name, labels))}")
            continue
        if not -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:  # False for NaN too
            problems.drop_line(
                f"value {value!r} is not a plausible reading: {_snippet(_series_text(name, labels))}"
            )
            continue
        series = out.get(name)
        if series is None:
            out[name] = {labels: value}
        else:
            series[labels] = value
    verdict = _no_samples_verdict(out, {}, problems, blank=False)
    return ParsedDump(
        t_unix, {}, out, problems.result(), {}, problems.unreadable, problems.first_unreadable, verdict
    )


def exposition_text(parsed: ParsedDump) -> str:
    """The samples of a parsed dump written back as an exposition (no TYPE or HELP lines): what
    parse_dump reads to the same samples."""
    return "".join(
        f"{_series_text(name, labels)} {_value_text(v)}\n"
        for name, series in parsed.samples.items()
        for labels, v in series.items()
    )


def _series_text(name: str, labels: LabelSet) -> str:
    pairs = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
    return f"{name}{{{pairs}}}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value == math.inf else ("-Inf" if value == -math.inf else repr(value))


class PreParsedDump(MetricsDump):
    """A /metrics dump that arrived as samples rather than text (fleet mode rebuilds each replica's
    dumps from PromQL answers): parse_dump hands its ParsedDump back instead of parsing a text written
    only to be read again. `text` is written on demand, for a reader that wants the exposition."""

    __slots__ = ("parsed",)
    parsed: ParsedDump

    def __init__(self, parsed: ParsedDump) -> None:
        # MetricsDump is frozen: set its fields as its own __init__ does.
        object.__setattr__(self, "t_unix", parsed.t_unix)
        object.__setattr__(self, "parsed", parsed)

    @property  # type: ignore[override]
    def text(self) -> str:
        return exposition_text(self.parsed)

    def __reduce__(self) -> tuple[type[PreParsedDump], tuple[ParsedDump]]:
        return (PreParsedDump, (self.parsed,))
