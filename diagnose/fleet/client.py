"""The only I/O of fleet mode: Prometheus' HTTP API (`/api/v1/query`, `/api/v1/query_range`).

Thanos and Mimir serve the same API. Every call shares one deadline (`total_s`) and one cap on the
bytes read (`max_bytes`), so a hung gateway or a runaway answer costs a bounded time and memory. Each
failure becomes one DoctorError that names the fix; Thanos' partial-response warnings are kept and
shown with the report, never dropped. Header values (bearer tokens, tenant ids) never reach a message.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, overload

import requests

from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.redact import redact_command_line

DEFAULT_TOTAL_S = 60.0
DEFAULT_MAX_BYTES = 512 * 2**20  # a 1,000-replica fleet answers in ~30 MB; 512 MB means something is wrong
_CHUNK = 1 << 20
_NOT_SERVED = object()  # an optional API the server does not have (HTTP 404)

_AUTH_FIX = (
    "pass credentials with --header 'Authorization: Bearer TOKEN'"
    " (Mimir: also --header 'X-Scope-OrgID: TENANT')"
)
_LIMIT_FIX = "narrow --selector or shorten --since (Prometheus caps one query with --query.max-samples)"


@dataclass(frozen=True, slots=True)
class Series:
    labels: dict[str, str]  # including __name__ when the query kept it
    points: tuple[tuple[float, float], ...]  # (t_unix, value); one point for an instant query


@dataclass(slots=True)
class PrometheusClient:
    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    ca_cert: str | None = None
    total_s: float = DEFAULT_TOTAL_S
    max_bytes: int = DEFAULT_MAX_BYTES
    session: Any = None  # requests.Session; a fake in tests
    queries: int = 0  # queries sent
    bytes_read: int = 0
    warnings: list[str] = field(default_factory=list)
    # Ask Prometheus for its own query statistics (`stats=all`, Prometheus 2.35+) and add up its
    # evaluation time: what the fleet's queries cost the server (benchmarks/fleet.py reports it).
    ask_stats: bool = False
    eval_s: float = 0.0
    _deadline: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)  # fetch() runs queries from threads

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise DoctorError(
                f"--prometheus {self.shown_url()!r} is not an http(s) URL",
                "e.g. --prometheus http://prometheus:9090",
                ExitStatus.USAGE,
            )
        if self.session is None:
            self.session = requests.Session()

    def shown_url(self) -> str:
        return redact_command_line(self.base_url)

    def instant(self, expr: str, t_unix: float) -> list[Series]:
        return self._get("/api/v1/query", {"query": expr, "time": f"{t_unix:.3f}"}, "vector")

    def range(self, expr: str, start_unix: float, end_unix: float, step_s: float) -> list[Series]:
        params = {
            "query": expr,
            "start": f"{start_unix:.3f}",
            "end": f"{end_unix:.3f}",
            "step": f"{step_s:g}",
        }
        return self._get("/api/v1/query_range", params, "matrix")

    def label_values(self, label: str, match: str, start_unix: float, end_unix: float) -> list[str] | None:
        """The values `label` takes on the series `match` selects in the window (`/api/v1/label/.../values`:
        answered from the index, no samples read). None where the API is not served (HTTP 404: a gateway
        that proxies the query endpoints only)."""
        params = {"match[]": match, "start": f"{start_unix:.3f}", "end": f"{end_unix:.3f}"}
        data = self._get(f"/api/v1/label/{label}/values", params, None)
        if data is _NOT_SERVED:
            return None
        if not isinstance(data, list) or not all(isinstance(v, str) for v in data):
            raise DoctorError(
                f"{self.shown_url()} answered label values that are not a list of strings",
                "point --prometheus at a Prometheus-compatible query API",
                ExitStatus.UNREACHABLE,
            )
        return data

    # ------------------------------------------------------------------------------------------
    def _remaining_s(self) -> float:
        with self._lock:
            if self._deadline is None:
                self._deadline = time.monotonic() + self.total_s
            return self._deadline - time.monotonic()

    @overload
    def _get(self, path: str, params: dict[str, str], result_type: str) -> list[Series]: ...
    @overload
    def _get(self, path: str, params: dict[str, str], result_type: None) -> Any: ...

    def _get(self, path: str, params: dict[str, str], result_type: str | None) -> Any:
        """One API call. `result_type` "vector"/"matrix" decodes a query's series; None returns `data`."""
        remaining = self._remaining_s()
        where = self.shown_url()
        slow = DoctorError(
            f"Prometheus at {where} did not answer within {self.total_s:g} s",
            "check that it is up, or narrow --selector / shorten --since",
            ExitStatus.UNREACHABLE,
        )
        if remaining <= 0:
            raise slow
        verify: bool | str = self.ca_cert if self.ca_cert else True
        if self.ask_stats and result_type is not None:
            params = {**params, "stats": "all"}
        with self._lock:
            self.queries += 1
        try:
            response = self.session.get(
                self.base_url + path,
                params=params,
                headers=dict(self.headers),
                timeout=(min(10.0, remaining), remaining),
                verify=verify,
                stream=True,
            )
            body = self._read(response, where)
        except requests.exceptions.SSLError:
            raise DoctorError(
                f"TLS to {where} failed: its certificate is not trusted",
                "pass the CA that signed it with --ca-cert FILE",
                ExitStatus.UNREACHABLE,
            ) from None
        except requests.exceptions.Timeout:
            raise slow from None
        except requests.exceptions.ConnectionError:
            raise DoctorError(
                f"cannot connect to Prometheus at {where}",
                "check --prometheus (e.g. http://prometheus:9090) and that Prometheus runs",
                ExitStatus.UNREACHABLE,
            ) from None
        except requests.exceptions.RequestException as err:
            raise DoctorError(
                f"Prometheus at {where}: {type(err).__name__}",
                "check --prometheus and the network",
                ExitStatus.UNREACHABLE,
            ) from None
        if time.monotonic() > (self._deadline or 0.0):
            raise slow
        return self._decode(response.status_code, response.headers.get("Content-Type", ""), body, result_type)

    def _read(self, response: Any, where: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(_CHUNK):
                size += len(chunk)
                if size > self.max_bytes:
                    raise DoctorError(
                        f"Prometheus at {where} answered more than {self.max_bytes // 2**20} MB"
                        " for one query",
                        _LIMIT_FIX.replace("--query.max-samples", "its limits"),
                        ExitStatus.UNREACHABLE,
                    )
                if self._remaining_s() <= 0:
                    raise requests.exceptions.Timeout()
                chunks.append(chunk)
        finally:
            response.close()
        with self._lock:
            self.bytes_read += size
        return b"".join(chunks)

    def _decode(self, status: int, content_type: str, body: bytes, result_type: str | None) -> Any:
        where = self.shown_url()
        head = body[:200].lstrip()
        if result_type is None and status == 404:
            return _NOT_SERVED
        if status in (401, 403):
            raise DoctorError(
                f"Prometheus at {where} refused us (HTTP {status})", _AUTH_FIX, ExitStatus.UNREACHABLE
            )
        if "html" in content_type.lower() or head.startswith(b"<"):
            raise DoctorError(
                f"{where} answered with an HTML page (HTTP {status}), not the Prometheus API: a login proxy?",
                "point --prometheus at the Prometheus/Thanos/Mimir query API, or "
                + _AUTH_FIX.replace("pass", "pass its"),
                ExitStatus.UNREACHABLE,
            )
        try:
            doc = json.loads(body)
        except ValueError:
            raise DoctorError(
                f"{where} answered HTTP {status} with a body that is not JSON",
                "point --prometheus at the Prometheus query API (the URL that serves /api/v1/query)",
                ExitStatus.UNREACHABLE,
            ) from None
        if not isinstance(doc, dict):
            raise DoctorError(
                f"{where} answered JSON that is not a Prometheus API reply",
                "point --prometheus at the Prometheus query API (the URL that serves /api/v1/query)",
                ExitStatus.UNREACHABLE,
            )
        for warning in doc.get("warnings") or []:
            text = f"Prometheus warned: {warning}"
            with self._lock:
                if text not in self.warnings:
                    self.warnings.append(text)
        if doc.get("status") != "success":
            raise _api_error(where, status, str(doc.get("errorType", "")), str(doc.get("error", "")))
        if result_type is None:
            return doc.get("data")
        data = doc.get("data") or {}
        if self.ask_stats:
            spent = ((data.get("stats") or {}).get("timings") or {}).get("evalTotalTime")
            if isinstance(spent, int | float):
                with self._lock:
                    self.eval_s += float(spent)
        if data.get("resultType") != result_type:
            raise DoctorError(
                f"{where} answered a {data.get('resultType')!r} result where {result_type!r} was asked for",
                "point --prometheus at a Prometheus-compatible query API",
                ExitStatus.UNREACHABLE,
            )
        out: list[Series] = []
        for item in data.get("result") or []:
            if result_type == "vector":
                t, v = item["value"]
                points: tuple[tuple[float, float], ...] = ((float(t), float(v)),)
            else:
                points = tuple([(float(t), float(v)) for t, v in item["values"]])  # a list: 2x a genexpr
            out.append(Series(item.get("metric") or {}, points))
        return out


def _api_error(where: str, status: int, error_type: str, error: str) -> DoctorError:
    short = error if len(error) <= 200 else error[:200] + "..."
    lowered = error.lower()
    if "too many samples" in lowered or "max-samples" in lowered or "exceeded" in lowered or status == 422:
        return DoctorError(
            f"Prometheus at {where} could not run a fleet query (HTTP {status}, {error_type}): {short}",
            _LIMIT_FIX,
            ExitStatus.UNREACHABLE,
        )
    if error_type == "bad_data" or status == 400:
        return DoctorError(
            f"Prometheus at {where} rejected the query: {short}",
            """check --selector and --replica-label, e.g. --selector '{namespace="rerank"}'""",
            ExitStatus.USAGE,
        )
    if status in (502, 503, 504) or error_type in ("timeout", "canceled", "unavailable"):
        return DoctorError(
            f"Prometheus at {where} is unavailable (HTTP {status} {error_type}): {short}",
            "retry, or narrow --selector / shorten --since if it times out",
            ExitStatus.UNREACHABLE,
        )
    return DoctorError(
        f"Prometheus at {where} failed (HTTP {status} {error_type}): {short}",
        "check --prometheus points at a Prometheus-compatible query API",
        ExitStatus.UNREACHABLE,
    )


def parse_headers(values: list[str] | None) -> dict[str, str]:
    """`--header 'Name: value'` (repeatable) -> {Name: value}; the value is never echoed back."""
    out: dict[str, str] = {}
    for text in values or []:
        name, sep, value = text.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            raise DoctorError(
                f"--header {name.strip()[:40]!r}... is not 'Name: value'",
                "e.g. --header 'Authorization: Bearer TOKEN' or --header 'X-Scope-OrgID: tenant-1'",
                ExitStatus.USAGE,
            )
        out[name.strip()] = value.strip()
    return out
