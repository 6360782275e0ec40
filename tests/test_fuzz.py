"""Fuzzing the readers of everything that comes from outside: the exposition parser, the dump splitter and
every bundle file, mutated from a real recorded bundle (tests/fixtures/gpu-h200-0.6b-1api-closed).

The promise checked: a reader returns values or a stated problem. It never raises anything but
DoctorError (bad input, exit 4), and every number it hands on is finite (or None, unknown).

Deterministic: `derandomize=True` draws the same examples on every run and machine, and the examples
that once crashed a reader are pinned with @example. Bounded: the whole module stays well under a
minute on two busy cores (max_examples per test, no deadline so a slow machine is no failure).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from diagnose.bundle import read_bundle, split_dumps
from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.metrics.exposition import parse_text
from diagnose.readings import Bundle

RECORDED = Path(__file__).parent / "fixtures" / "gpu-h200-0.6b-1api-closed" / "bundle"


def _small_seed() -> Path:
    """The recorded bundle with its first two /metrics dumps only: every reader still has its real file,
    and an example costs milliseconds (the seven dumps would be most of the module's time)."""
    seed = Path(tempfile.mkdtemp(prefix="fuzz-seed-")) / "bundle"
    shutil.copytree(RECORDED, seed)
    text = (RECORDED / "metrics.prom").read_text()
    marks = [
        i for i in range(len(text)) if text.startswith("### capture", i) and (i == 0 or text[i - 1] == "\n")
    ]
    (seed / "metrics.prom").write_text(text[: marks[2]] if len(marks) > 2 else text)
    return seed


SEED = _small_seed()

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
FEW = settings(FUZZ, max_examples=30)
# The parser and the splitter need no bundle on disk: an example costs microseconds, so many more.
MANY = settings(FUZZ, max_examples=200)

# What a cell of a damaged CSV or a bad JSON value really looks like: not random unicode alone, but the
# numbers that break float()/int() and the words people type.
WEIRD_TOKENS = [
    "nan", "NaN", "inf", "-inf", "+Inf", "1e400", "-1e400", "1e308", "-1", "0", "", " ", "abc", "1.2.3",
    "99999999999999999999999", "0x10", "1_000", "[N/A]", "None", "null", "true", "\x00", "é", "1e-400",
    "-0", "4294967296", "65536", "3.5",
]  # fmt: skip
weird = st.sampled_from(WEIRD_TOKENS) | st.text(max_size=12)


def _finite_or_none(value: object, where: str) -> None:
    if isinstance(value, float):
        assert math.isfinite(value), f"{where} = {value!r}"


def assert_typed(bundle: Bundle) -> None:
    """Every number a reader hands on is finite; every int is a real int in range."""
    for name in ("dumps", "gpu", "gpu_processes", "processes", "sockets"):
        for i, record in enumerate(getattr(bundle, name)):
            for f in dataclasses.fields(record):
                value = getattr(record, f.name)
                _finite_or_none(value, f"{name}[{i}].{f.name}")
                if isinstance(value, dict):
                    for state, count in value.items():
                        assert isinstance(count, int) and 0 <= count < 2**63, f"{name}[{i}].{state}"
                if f.name in ("pid", "ppid", "index", "gpu_index", "port") and value is not None:
                    assert isinstance(value, int) and 0 <= value < 2**63, f"{name}[{i}].{f.name}={value!r}"
    server = bundle.server
    assert server.max_model_len is None or (
        isinstance(server.max_model_len, int) and server.max_model_len > 0
    )
    assert server.healthy in (None, True, False)
    assert all(isinstance(x, str) or x is None for x in (server.url, server.version, server.model_id))
    assert server.flags is None or isinstance(server.flags, str)
    assert all(isinstance(p, int) for p in server.pids)
    for issue in bundle.issues:
        assert isinstance(issue.reason, str) and isinstance(issue.collector, str)
        _finite_or_none(issue.t_unix, "issue.t_unix")
    for report in (bundle.stress, bundle.bypass):
        assert report is None or isinstance(report, dict)


def read_mutated(files: dict[str, bytes]) -> Bundle | None:
    """The seed bundle with `files` replaced; the bundle read, or None when it was refused as bad input."""
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = Path(tmp) / "b"
        shutil.copytree(SEED, bundle_dir)
        for name, content in files.items():
            (bundle_dir / name).write_bytes(content)
        try:
            bundle = read_bundle(bundle_dir)
        except DoctorError as err:
            assert err.status == ExitStatus.BAD_INPUT
            assert "\n" not in err.one_line()
            return None
    assert_typed(bundle)
    return bundle


def _seed_lines(name: str) -> list[str]:
    return (SEED / name).read_text().splitlines()


@st.composite
def mutated_csv(draw: st.DrawFn, name: str) -> bytes:
    """The seed's CSV with a few cells replaced by weird tokens, rows cut or columns dropped."""
    lines = _seed_lines(name)[:12]
    rows = [line.split(",") for line in lines]
    for _ in range(draw(st.integers(1, 6))):
        r = draw(st.integers(0, len(rows) - 1))
        if not rows[r]:
            continue
        c = draw(st.integers(0, len(rows[r]) - 1))
        action = draw(st.sampled_from(["cell", "cell", "cell", "drop", "cut"]))
        if action == "cell":
            rows[r][c] = draw(weird)
        elif action == "drop":
            del rows[r][c]
        else:
            rows[r] = rows[r][:c]
    return ("\n".join(",".join(row) for row in rows) + "\n").encode("utf-8", "surrogatepass")


CSV_FILES = ["processes.csv", "nvidia-smi.csv", "sockets.csv", "gpu-processes.csv"]


@pytest.mark.parametrize("name", CSV_FILES)
def test_mutated_csv_reads_as_finite_values_or_a_stated_problem(name: str) -> None:
    @FUZZ
    @given(content=mutated_csv(name))
    def check(content: bytes) -> None:
        read_mutated({name: content})

    check()


@pytest.mark.parametrize("name", CSV_FILES)
def test_arbitrary_bytes_as_a_csv_read_as_values_or_a_stated_problem(name: str) -> None:
    @FEW
    @given(content=st.binary(max_size=300))
    def check(content: bytes) -> None:
        read_mutated({name: content})

    check()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(WEIRD_TOKENS),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _json_with_keys(keys: list[str]) -> st.SearchStrategy[object]:
    """Objects with the reader's own keys, holding values of every JSON type (the wrong ones included)."""
    return st.dictionaries(st.sampled_from(keys), json_values, max_size=len(keys)) | json_values


SERVER_KEYS = ["url", "healthy", "version", "model_id", "max_model_len", "flags", "pids"]
ISSUE_KEYS = ["t_unix", "collector", "reason", "fix"]
STRESS_KEYS = ["latency", "count", "mean_s", "p95_s", "schema_version"]


def _dump(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@FUZZ
@given(value=_json_with_keys(SERVER_KEYS))
@example(value={"max_model_len": "abc", "pids": "x", "healthy": "yes", "flags": 7})
def test_server_json_of_any_shape_reads_as_typed_facts_or_a_stated_problem(value: object) -> None:
    read_mutated({"server.json": _dump(value)})


@FUZZ
@given(value=st.lists(_json_with_keys(ISSUE_KEYS), max_size=4) | json_values)
@example(value=[{"t_unix": "x", "collector": "vllm", "reason": 5}])
def test_issues_json_of_any_shape_reads_as_issues_or_a_stated_problem(value: object) -> None:
    read_mutated({"issues.json": _dump(value)})


@FUZZ
@given(value=st.dictionaries(st.just("latency"), _json_with_keys(STRESS_KEYS)) | json_values)
@example(value={"latency": "fast"})
def test_stress_json_of_any_shape_reads_or_states_a_problem(value: object) -> None:
    bundle = read_mutated({"stress.json": _dump(value)})
    if bundle is not None:
        from diagnose.derive.sections.client import StressSummary

        view = StressSummary.from_dict(bundle.stress)
        if view is not None:
            for number in (view.latency_mean_s, view.latency_p95_s, view.calls_per_s):
                assert number is None or (isinstance(number, float) and math.isfinite(number))


@FUZZ
@given(tail=st.lists(weird, min_size=1, max_size=4))
@example(tail=["--max-model-len", "1e400"])
def test_flags_with_weird_values_read_as_text(tail: list[str]) -> None:
    flags = (SEED / "flags.txt").read_text().strip() + " " + " ".join(tail) + "\n"
    server = json.loads((SEED / "server.json").read_text())
    server["flags"] = None
    read_mutated({"flags.txt": flags.encode("utf-8", "surrogatepass"), "server.json": _dump(server)})


# --- the dump splitter and the exposition parser ------------------------------------------------------

marker_times = (
    st.sampled_from(WEIRD_TOKENS) | st.floats().map(repr) | st.from_regex(r"[0-9.eE+-]{1,12}", fullmatch=True)
)


@MANY
@given(
    parts=st.lists(st.tuples(marker_times, st.text(max_size=40)), max_size=6),
    lead=st.text(max_size=20),
)
@example(parts=[("1.2.3", "x 1\n")], lead="")
@example(parts=[("1e400", "x 1\n")], lead="")
def test_split_dumps_gives_dumps_at_finite_times_or_a_stated_problem(
    parts: list[tuple[str, str]], lead: str
) -> None:
    text = lead + "".join(f"### capture t_unix={t}\n{body}\n" for t, body in parts)
    dumps = split_dumps(text, 100.0)
    for dump in dumps:
        assert math.isfinite(dump.t_unix)
        assert isinstance(dump.text, str)


@MANY
@given(text=st.text(max_size=400))
def test_split_dumps_never_raises_on_any_text(text: str) -> None:
    for dump in split_dumps(text, 1.0):
        assert math.isfinite(dump.t_unix)


REAL = (Path(__file__).parent / "fixtures" / "vllm-0.32-cpu-lab" / "metrics.prom").read_text()
REAL_LINES = REAL.splitlines()


@st.composite
def damaged_exposition(draw: st.DrawFn) -> str:
    lines = list(REAL_LINES[:120])
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        cut = draw(st.integers(0, len(line)))
        action = draw(st.sampled_from(["cut", "insert", "value", "replace"]))
        if action == "cut":
            lines[i] = line[:cut]
        elif action == "insert":
            lines[i] = (
                line[:cut] + draw(st.sampled_from(["{", "}", '"', "\\", " ", "=", ",", "#"])) + line[cut:]
            )
        elif action == "value" and " " in line:
            lines[i] = line.rsplit(" ", 1)[0] + " " + draw(weird)
        else:
            lines[i] = draw(st.text(max_size=30))
    return "\n".join(lines) + draw(st.sampled_from(["\n", ""]))


@MANY
@given(text=damaged_exposition())
def test_damaged_exposition_parses_with_every_unreadable_line_counted(text: str) -> None:
    parsed = parse_text(text)
    assert all(isinstance(p, str) for p in parsed.problems)
    assert parsed.unreadable_lines >= 0
    assert (parsed.unreadable_lines > 0) == (parsed.first_unreadable is not None)


@MANY
@given(text=st.text(max_size=600) | st.binary(max_size=600).map(lambda b: b.decode("utf-8", "replace")))
def test_parser_never_raises_on_any_text(text: str) -> None:
    parsed = parse_text(text)
    for series in parsed.samples.values():
        assert all(isinstance(v, float) for v in series.values())


@FEW
@given(content=damaged_exposition())
def test_a_bundle_of_damaged_dumps_reads_or_states_a_problem(content: str) -> None:
    body = "".join(f"### capture t_unix={1795451668.0 + 5 * i}\n{content}\n" for i in range(2))
    read_mutated({"metrics.prom": body.encode("utf-8", "surrogatepass")})


@MANY
@given(
    parts=st.lists(st.tuples(marker_times, st.text(alphabet='ab c#{}="1\n\r.', max_size=40)), max_size=6),
    lead=st.text(alphabet="ab 1\n", max_size=10),
)
def test_the_streaming_reader_yields_the_same_dumps_as_the_splitter(
    parts: list[tuple[str, str]], lead: str
) -> None:
    from diagnose.bundle.stream import FileDumps, scan_file
    from diagnose.bundle.values import Problems
    from diagnose.readings import MetricsDump

    text = lead + "".join(f"### capture t_unix={t}\n{body}\n" for t, body in parts)
    split = split_dumps(text, 100.0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metrics.prom"
        path.write_bytes(text.encode())
        scan, _ = scan_file(path, 100.0, Problems(path.name), None)
        spans = []
        for span, body in scan:
            assert body is not None
            spans.append(span)
            assert MetricsDump(span.t_unix, body) == split[len(spans) - 1]
        assert list(FileDumps(path, spans)) == sorted(split, key=lambda d: d.t_unix)
    assert len(spans) == len(split)


# The pasted text files (flags.txt in any form, `ss -s`, /proc/net/sockstat, `ss -tan`): whatever is
# pasted reads as values or a stated problem.
SOCKET_TEXTS = sorted((Path(__file__).parent / "fixtures" / "sockets").glob("*.txt"))


@st.composite
def damaged_text(draw: st.DrawFn, seeds: list[str]) -> str:
    lines = draw(st.sampled_from(seeds)).splitlines()[:40] or [""]
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(lines) - 1))
        words = lines[i].split(" ")
        j = draw(st.integers(0, len(words) - 1))
        words[j] = draw(weird)
        lines[i] = " ".join(words)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", ["flags.txt", "ss-s.txt", "sockstat.txt", "ss-tan.txt"])
def test_pasted_text_files_read_as_values_or_a_stated_problem(name: str) -> None:
    seeds = [(SEED / "flags.txt").read_text()] + [p.read_text(errors="replace") for p in SOCKET_TEXTS]

    @FEW
    @given(content=damaged_text(seeds) | st.text(max_size=200))
    def check(content: str) -> None:
        files = {name: content.encode("utf-8", "surrogatepass")}
        if name == "flags.txt":
            server = json.loads((SEED / "server.json").read_text())
            server["flags"] = None
            files["server.json"] = _dump(server)
        read_mutated(files)

    check()
