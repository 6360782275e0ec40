"""The fault catalogue: what a broken server or a damaged bundle can hand rerank-doctor, and what must happen.

Each case runs the real command line (`diagnose.cli.main`, in this process, output captured) against a
fake server on 127.0.0.1 (tests/http_servers.py) or a copy of a recorded bundle with one file damaged.
A case passes when the exit status is one of those it allows, nothing leaked (the URL password, the query
token and every API key carry the word LEAK, which no output may contain) and there was no internal error.

Used by tests/test_faults.py (one test per case) and by `python tests/fault_cases.py`, which prints the
table of cases, exit statuses, leaks and crashes (the table in the branch's closing note).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from http_servers import Route, closed_port_url, serve, silent_listener  # noqa: E402

# A real bundle, recorded by `rerank-doctor collect` on an H200 (see its README).
SEED_BUNDLE = HERE / "fixtures" / "gpu-h200-0.6b-1api-closed" / "bundle"
# A real vLLM 0.32 /metrics from the CPU lab (see its README).
_LAB = (HERE / "fixtures" / "vllm-0.32-cpu-lab" / "metrics.prom").read_text()
REAL_EXPOSITION = _LAB[_LAB.rindex("### capture") :].split("\n", 1)[1].encode()  # its second dump

SECRET = "LEAK"  # in every password, token and key the cases pass; never in any output
PASSWORD, QUERY_TOKEN, API_KEY, SECOND_KEY = "pw-LEAK-1", "tok-LEAK-2", "key-LEAK-3", "key-LEAK-4"

# How each exit status reads in the table.
EXIT_NAMES = {
    0: "ok",
    1: "findings",
    2: "usage",
    3: "unreachable",
    4: "bad input",
    70: "INTERNAL",
    130: "int",
}


@dataclass
class Outcome:
    status: int
    output: str  # stdout and stderr together, plus every file the command wrote
    leaked: bool
    crashed: bool  # exit 70, or a traceback in the output


@dataclass
class Case:
    name: str
    what: str
    allowed: tuple[int, ...]
    run: Callable[[], tuple[int, str]]
    must_say: tuple[str, ...] = ()  # words the output must contain (case-insensitive)
    must_not_say: tuple[str, ...] = ()
    tags: set[str] = field(default_factory=set)


def run_cli(argv: list[str]) -> tuple[int, str]:
    """The command line in this process: (exit status, stdout + stderr)."""
    from diagnose.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            status = main(argv)
        except SystemExit as exit_:  # argparse's usage errors
            status = int(exit_.code or 0)
    return status, buffer.getvalue()


def _written(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("*")) if p.is_file())


# --- live servers -------------------------------------------------------------------------------------

_SERVER_ROUTES = {
    "/health": Route(body=b""),
    "/version": Route(body=b'{"version":"0.32.0"}', content_type="application/json"),
    "/v1/models": Route(
        body=b'{"data":[{"id":"qwen3-reranker","max_model_len":2048}]}', content_type="application/json"
    ),
}


def _secret_url(base: str, path: str = "") -> str:
    host = base.removeprefix("http://")
    return f"http://admin:{PASSWORD}@{host}{path}?token={QUERY_TOKEN}"


@contextlib.contextmanager
def _server(metrics: Route | list[Route] | None) -> Iterator[str]:
    routes: dict[str, Route | list[Route]] = dict(_SERVER_ROUTES)
    if metrics is not None:
        routes["/metrics"] = metrics
    with serve(routes) as url:
        yield url


def _live_check(metrics: Route | list[Route] | None, *extra: str) -> Callable[[], tuple[int, str]]:
    def run() -> tuple[int, str]:
        with _server(metrics) as url:
            argv = ["check", "--url", _secret_url(url), "--duration", "0.5", "--no-gpu", "--quiet"]
            return run_cli([*argv, "--api-key", API_KEY, *extra])

    return run


def _collect_from(
    make_url: Callable[[], contextlib.AbstractContextManager[str]],
) -> Callable[[], tuple[int, str]]:
    """`collect --timeout 1` (check has no --timeout: a stalled server would cost 5 s a case)."""

    def run() -> tuple[int, str]:
        with make_url() as url, tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "bundle"
            status, text = run_cli(
                [
                    *("collect", "--url", _secret_url(url), "--duration", "0.5", "--timeout", "1"),
                    *("--no-gpu", "--quiet", "--out", str(out), "--api-key", API_KEY),
                ]
            )
            return status, text + "\n" + (_written(out) if out.exists() else "")

    return run


def _live_collect(metrics: Route | list[Route] | None) -> Callable[[], tuple[int, str]]:
    return _collect_from(lambda: _server(metrics))


@contextlib.contextmanager
def _refused() -> Iterator[str]:
    yield closed_port_url()


_RANDOM = bytes((i * 7919 + 13) % 256 for i in range(4096))  # fixed "random" bytes: the same every run
_GARBLED = REAL_EXPOSITION.replace(b"vllm:num_requests_running{", b"vllm:num_requests_running{{", 1) + (
    b"this line is not a sample\n" * 3
)


def live_cases() -> list[Case]:
    ok = Route(body=REAL_EXPOSITION)
    cases = [
        Case("live-ok", "a real vLLM 0.32 exposition", (0, 1), _live_check(ok)),
        Case("live-ok-json", "the same, --json", (0, 1), _live_check(ok, "--json")),
        Case("live-collect-ok", "collect from a real exposition: the bundle files", (0,), _live_collect(ok)),
        Case(
            "live-stall-after-headers",
            "headers, then silence",
            (3,),
            _live_collect(Route(body=REAL_EXPOSITION, stall_after_headers_s=3.0)),
        ),
        Case(
            "live-close-mid-body",
            "Content-Length says 54 KB, the connection drops at 1 KB",
            (3,),
            _live_check(Route(body=REAL_EXPOSITION, close_after_bytes=1024)),
        ),
        Case(
            "live-gzip-lie",
            "Content-Encoding: gzip on a plain body",
            (3,),
            _live_check(Route(body=REAL_EXPOSITION, headers={"Content-Encoding": "gzip"})),
        ),
        Case(
            "live-json-body",
            "/metrics answers JSON",
            (3,),
            _live_check(Route(body=b'{"object":"list","data":[]}', content_type="application/json")),
            must_say=("json",),
        ),
        Case("live-empty-body", "/metrics answers 200 and no bytes", (3,), _live_check(Route(body=b""))),
        Case(
            "live-random-bytes",
            "/metrics answers 4 KB of binary",
            (3,),
            _live_check(Route(body=_RANDOM, content_type="application/octet-stream")),
        ),
        Case(
            "live-html",
            "/metrics answers a login page",
            (3,),
            _live_check(Route(body=b"<html><body>login</body></html>", content_type="text/html")),
        ),
        Case("live-401", "the key is wrong", (3,), _live_check(Route(status=401, body=b"{}"))),
        Case("live-404", "no /metrics there", (3,), _live_check(None)),
        Case("live-500", "the server errors", (3,), _live_check(Route(status=500, body=b"oops"))),
        Case(
            "live-partly-garbled",
            "a real exposition with 4 unreadable lines",
            (0, 1),
            _live_check(Route(body=_GARBLED)),
            must_say=("unreadable",),
        ),
        Case(
            "live-later-scrape-fails",
            "first scrape fine, the closing one drops mid-body",
            (0, 1),
            _live_check([Route(body=REAL_EXPOSITION), Route(body=REAL_EXPOSITION, close_after_bytes=512)]),
            must_say=("scrape",),
        ),
        Case("live-hung", "accepts, never answers", (3,), _collect_from(silent_listener)),
        Case("live-refused", "nothing listens", (3,), _collect_from(_refused)),
    ]
    for case in cases:
        case.tags.add("live")
    return cases


# --- damaged bundles ----------------------------------------------------------------------------------


def _edit(name: str, change: Callable[[str], str]) -> Callable[[Path], None]:
    def apply(bundle: Path) -> None:
        path = bundle / name
        path.write_text(change(path.read_text() if path.exists() else ""))

    return apply


def _csv_cell(name: str, column: str, value: str, row: int = 2) -> Callable[[Path], None]:
    """Replaces one cell (1-based data row) of a CSV file in the bundle."""

    def change(text: str) -> str:
        lines = text.splitlines()
        header = [h.strip() for h in lines[0].split(",")]
        cells = lines[row].split(",")
        cells[header.index(column)] = value
        lines[row] = ",".join(cells)
        return "\n".join(lines) + "\n"

    return _edit(name, change)


def _json_file(name: str, payload: object) -> Callable[[Path], None]:
    return _edit(name, lambda _: json.dumps(payload) if not isinstance(payload, str) else payload)


def _every_vllm_value(value: str) -> Callable[[Path], None]:
    def change(text: str) -> str:
        out = []
        for line in text.splitlines():
            if line.startswith("vllm:") and " " in line:
                line = line.rsplit(" ", 1)[0] + " " + value
            out.append(line)
        return "\n".join(out) + "\n"

    return _edit("metrics.prom", change)


def _bundle_check(
    *mutations: Callable[[Path], None], extra: tuple[str, ...] = ()
) -> Callable[[], tuple[int, str]]:
    def run() -> tuple[int, str]:
        with tempfile.TemporaryDirectory() as tmp:
            bundle = Path(tmp) / "bundle"
            shutil.copytree(SEED_BUNDLE, bundle)
            for mutate in mutations:
                mutate(bundle)
            return run_cli(["check", "--from", str(bundle), *extra])

    return run


def _secret_flags(text: str) -> str:
    return text.strip() + f" --api-key {API_KEY} {SECOND_KEY} --hf-token hf_LEAK_5\n"


def _secret_server(text: str) -> str:
    data = json.loads(text)
    data["url"] = f"http://admin:{PASSWORD}@127.0.0.1:8000"
    data["flags"] = _secret_flags(data["flags"])
    return json.dumps(data)


def bundle_cases() -> list[Case]:
    P, S, K, G = "processes.csv", "nvidia-smi.csv", "sockets.csv", "gpu-processes.csv"
    cases = [
        Case("bundle-ok", "the recorded bundle as it is", (0, 1), _bundle_check()),
        Case("bundle-ok-json", "the same, --json", (0, 1), _bundle_check(extra=("--json",))),
        Case("processes-pid-nan", "pid nan", (0, 1), _bundle_check(_csv_cell(P, "pid", "nan"))),
        Case("processes-pid-1e400", "pid 1e400", (0, 1), _bundle_check(_csv_cell(P, "pid", "1e400"))),
        Case("processes-ppid-inf", "ppid inf", (0, 1), _bundle_check(_csv_cell(P, "ppid", "inf", 3))),
        Case(
            "processes-cpu-1e400",
            "cpu_percent 1e400",
            (0, 1),
            _bundle_check(_csv_cell(P, "cpu_percent", "1e400", 3)),
        ),
        Case("processes-t-nan", "t_unix nan", (0, 1), _bundle_check(_csv_cell(P, "t_unix", "nan", 3))),
        Case("nvidia-smi-index-nan", "GPU index nan", (0, 1), _bundle_check(_csv_cell(S, "index", " nan"))),
        Case(
            "nvidia-smi-util-inf",
            "utilization inf",
            (0, 1),
            _bundle_check(_csv_cell(S, "utilization.gpu [%]", " inf %")),
        ),
        Case("nvidia-smi-t-1e400", "t_unix 1e400", (0, 1), _bundle_check(_csv_cell(S, "t_unix", " 1e400"))),
        Case("sockets-count-nan", "count nan", (0, 1), _bundle_check(_csv_cell(K, "count", "nan"))),
        Case("sockets-port-1e400", "port 1e400", (0, 1), _bundle_check(_csv_cell(K, "port", "1e400"))),
        Case("sockets-count-inf", "count inf", (0, 1), _bundle_check(_csv_cell(K, "count", "inf"))),
        Case("gpu-processes-pid-nan", "pid nan", (0, 1), _bundle_check(_csv_cell(G, "pid", "nan"))),
        Case(
            "gpu-processes-index-inf",
            "gpu_index inf",
            (0, 1),
            _bundle_check(_csv_cell(G, "gpu_index", "inf")),
        ),
        Case(
            "server-json-types",
            "max_model_len 'abc', pids 'x'",
            (0, 1),
            _bundle_check(
                _json_file("server.json", {"max_model_len": "abc", "pids": "x", "healthy": "yes", "flags": 7})
            ),
        ),
        Case(
            "server-json-list",
            "a list, not an object",
            (0, 1),
            _bundle_check(_json_file("server.json", [1, 2])),
        ),
        Case(
            "server-json-len-1e400",
            "max_model_len 1e400",
            (0, 1),
            _bundle_check(_json_file("server.json", '{"max_model_len": 1e400}')),
        ),
        Case(
            "stress-json-types",
            "latency is a string",
            (0, 1),
            _bundle_check(_json_file("stress.json", {"latency": "fast"})),
        ),
        Case(
            "stress-json-count-str",
            "latency.count 'many'",
            (0, 1),
            _bundle_check(
                _json_file("stress.json", {"latency": {"count": "many", "mean_s": "x", "p95_s": [1]}})
            ),
        ),
        Case(
            "stress-json-nan",
            "latency NaN",
            (0, 1),
            _bundle_check(
                _json_file("stress.json", '{"latency": {"count": 5, "mean_s": NaN, "p95_s": Infinity}}')
            ),
        ),
        Case(
            "issues-json-numbers",
            "a list of numbers",
            (0, 1),
            _bundle_check(_json_file("issues.json", [1, 2])),
        ),
        Case(
            "issues-json-types",
            "t_unix 'x', reason 5",
            (0, 1),
            _bundle_check(_json_file("issues.json", [{"t_unix": "x", "collector": "vllm", "reason": 5}])),
        ),
        Case("issues-json-object", "an object", (0, 1), _bundle_check(_json_file("issues.json", {"a": 1}))),
        Case(
            "flags-1e400",
            "--max-model-len 1e400",
            (0, 1),
            _bundle_check(
                _edit("flags.txt", lambda t: t.strip() + " --max-model-len 1e400\n"),
                _edit(
                    "server.json",
                    lambda t: json.dumps({**json.loads(t), "flags": None, "max_model_len": None}),
                ),
            ),
        ),
        Case("gauge-1e308", "every vllm: value 1e308", (0, 1), _bundle_check(_every_vllm_value("1e308"))),
        Case(
            "all-nan",
            "every vllm: value NaN",
            (0, 1),
            _bundle_check(_every_vllm_value("NaN")),
            must_not_say=("nan preemptions", "nan tokens"),
        ),
        Case(
            "marker-not-float",
            "### capture t_unix=1.2.3",
            (0, 1, 4),
            _bundle_check(
                _edit(
                    "metrics.prom", lambda t: t.replace("### capture t_unix=", "### capture t_unix=1.2.", 1)
                )
            ),
        ),
        Case(
            "marker-1e400",
            "### capture t_unix=1e400",
            (0, 1, 4),
            _bundle_check(
                _edit(
                    "metrics.prom",
                    lambda t: t.replace("### capture t_unix=", "### capture t_unix=1e400 #", 1),
                )
            ),
        ),
        Case(
            "metrics-json",
            "metrics.prom holds JSON",
            (4,),
            _bundle_check(_edit("metrics.prom", lambda _: '{"error": "unauthorized"}\n')),
        ),
        Case(
            "metrics-empty", "metrics.prom is empty", (4,), _bundle_check(_edit("metrics.prom", lambda _: ""))
        ),
        Case(
            "metrics-random",
            "metrics.prom holds binary",
            (4,),
            _bundle_check(lambda b: (b / "metrics.prom").write_bytes(_RANDOM)),
        ),
        Case(
            "metrics-partly-garbled",
            "4 unreadable lines in a dump",
            (0, 1),
            _bundle_check(
                _edit(
                    "metrics.prom",
                    lambda t: (
                        t.replace("vllm:num_requests_running{", "vllm:num_requests_running{{", 1)
                        + "garbage line\n" * 3
                    ),
                )
            ),
            must_say=("unreadable",),
        ),
        Case(
            "secrets-in-flags",
            "several keys after one --api-key",
            (0, 1),
            _bundle_check(_edit("flags.txt", _secret_flags), _edit("server.json", _secret_server)),
        ),
        Case(
            "secrets-in-flags-json",
            "the same, --json",
            (0, 1),
            _bundle_check(
                _edit("flags.txt", _secret_flags), _edit("server.json", _secret_server), extra=("--json",)
            ),
        ),
    ]
    for case in cases:
        case.tags.add("bundle")
    return cases


def _deep_pairs() -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as tmp:
        pairs = Path(tmp) / "pairs.json"
        pairs.write_text("[" * 100_000 + "]" * 100_000)
        return run_cli(["bypass", "--pairs", str(pairs), "--url", "http://127.0.0.1:1", "--model", tmp])


def usage_cases() -> list[Case]:
    cases = [
        Case(
            "stress-top-n-0",
            "stress --top-n 0",
            (2,),
            lambda: run_cli(["stress", "--url", "http://127.0.0.1:1", "--top-n", "0"]),
        ),
        Case(
            "check-port-99999",
            "check --url with port 99999",
            (2,),
            lambda: run_cli(["check", "--url", "http://127.0.0.1:99999", "--duration", "0.2", "--no-gpu"]),
        ),
        Case(
            "stress-port-99999",
            "stress --url with port 99999",
            (2,),
            lambda: run_cli(["stress", "--url", "http://127.0.0.1:99999"]),
        ),
    ]
    cases.append(
        Case("pairs-deeply-nested", "bypass --pairs with [[[[...]]]] 100,000 deep", (4,), _deep_pairs)
    )
    for case in cases:
        case.tags.add("usage")
    return cases


def all_cases() -> list[Case]:
    return live_cases() + bundle_cases() + usage_cases()


def judge(case: Case) -> Outcome:
    status, output = case.run()
    crashed = status == 70 or "Traceback (most recent call last)" in output
    return Outcome(status, output, SECRET.lower() in output.lower(), crashed)


def problems(case: Case, outcome: Outcome) -> list[str]:
    """What is wrong with one outcome; empty when the case passes."""
    found = []
    if outcome.status not in case.allowed:
        found.append(f"exit {outcome.status}, expected {' or '.join(map(str, case.allowed))}")
    if outcome.crashed:
        found.append("internal error")
    if outcome.leaked:
        at = outcome.output.lower().index(SECRET.lower())
        found.append(f"leaked: ...{outcome.output[max(0, at - 60) : at + 10]!r}")
    low = outcome.output.lower()
    found += [f"does not say {word!r}" for word in case.must_say if word not in low]
    found += [f"says {word!r}" for word in case.must_not_say if word in low]
    return found


def main() -> int:
    rows = []
    for case in all_cases():
        outcome = judge(case)
        rows.append((case, outcome, problems(case, outcome)))
    print("| case | input | exit (allowed) | leak | crash | problems |\n|---|---|---|---|---|---|")
    for case, outcome, found in rows:
        allowed = "/".join(map(str, case.allowed))
        status = f"{outcome.status} {EXIT_NAMES.get(outcome.status, '')}"
        print(
            f"| {case.name} | {case.what} | {status} ({allowed}) "
            f"| {'LEAK' if outcome.leaked else '-'} | {'CRASH' if outcome.crashed else '-'} "
            f"| {'; '.join(found)[:140] or 'ok'} |"
        )
    failing = sum(1 for *_, found in rows if found)
    print(
        f"\n{len(rows)} cases: {failing} failing, "
        f"{sum(o.crashed for _, o, _ in rows)} crashes, {sum(o.leaked for _, o, _ in rows)} leaks, "
        f"{sum(o.status not in c.allowed for c, o, _ in rows)} wrong exit statuses"
    )
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
