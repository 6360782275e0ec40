"""The vLLM server: /metrics, /health, /version and /v1/models over plain HTTP.

Thin I/O: it returns the exposition text as received (parsing is `diagnose.metrics`, pure) or a
CollectorIssue saying what went wrong and what to do. Every request is bounded twice: a connect/read
timeout, and a total deadline while streaming, so a server that accepts and then drips or never answers
cannot hang a collection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

from diagnose.readings import CollectorIssue, MetricsDump, ServerInfo
from diagnose.urls import base_url  # the one --url grammar; re-exported for callers of this module

DEFAULT_TIMEOUT_S = 5.0
# vLLM 0.32's exposition is ~54 KB (92 families); multi-model or multi-engine servers are larger.
# Far past that it is not vLLM's /metrics: stop reading rather than fill memory.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class _Failure(Exception):
    def __init__(self, reason: str, fix: str):
        super().__init__(reason)
        self.reason, self.fix = reason, fix


class VllmSource:
    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.url = base_url(url)
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._session = session or requests.Session()
        # The key goes in a header only; it is never logged, saved or put in a message.
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._clock = clock
        self._warned_no_vllm = False

    def _get(self, path: str) -> tuple[int, str, str]:
        """(status, content type, body text) or _Failure; bounded by timeout_s in total."""
        url = self.url + path
        deadline = time.monotonic() + self.timeout_s
        try:
            with self._session.get(
                url, headers=self._headers, timeout=(min(self.timeout_s, 3.0), self.timeout_s), stream=True
            ) as resp:
                chunks: list[bytes] = []
                size = 0
                truncated = False
                # read1 returns what has arrived (iter_content would wait to fill each chunk, and a
                # server dripping bytes would hold us far past the deadline).
                while chunk := resp.raw.read1(65536, decode_content=True):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > self.max_bytes:
                        truncated = True
                        break
                    if time.monotonic() > deadline:
                        raise _Failure(
                            f"{url} was still sending after {self.timeout_s:g} s ({size} bytes so far)",
                            "the server is overloaded or the link is slow; raise --timeout",
                        )
                raw = b"".join(chunks)
                if truncated:
                    raise _Failure(
                        f"{url} sent more than {self.max_bytes // (1024 * 1024)} MiB; not vLLM's /metrics",
                        "point --url at the vLLM server itself",
                    )
                text = raw.decode(resp.encoding or "utf-8", errors="replace")
                return resp.status_code, resp.headers.get("content-type", ""), text
        except requests.exceptions.ConnectTimeout:
            raise _Failure(
                f"no connection to {self.url} within {min(self.timeout_s, 3.0):g} s",
                "check the host and port in --url and any firewall between",
            ) from None
        except requests.exceptions.ReadTimeout:
            raise _Failure(
                f"{url} accepted the connection but sent no answer within {self.timeout_s:g} s",
                "the server is hung or overloaded; check its log, or raise --timeout",
            ) from None
        except requests.exceptions.ConnectionError as err:
            refused = "refused" in str(err).lower()
            raise _Failure(
                f"connection {'refused' if refused else 'failed'} at {self.url}",
                "is vLLM running there? check --url (vLLM listens on port 8000 by default)",
            ) from None
        except requests.exceptions.RequestException as err:
            raise _Failure(f"request to {url} failed: {type(err).__name__}", "check --url") from None

    def scrape(self) -> MetricsDump | CollectorIssue:
        """One GET /metrics: the text as received, or why there is none."""
        try:
            status, content_type, text = self._get("/metrics")
        except _Failure as fail:
            return CollectorIssue(self._clock(), "vllm", fail.reason, fail.fix)
        now = self._clock()
        if status == 401 or status == 403:
            return CollectorIssue(
                now,
                "vllm",
                f"{self.url}/metrics answered {status}: the server requires an API key (--api-key)",
                "pass --api-key KEY (or set VLLM_API_KEY)",
            )
        if status == 404:
            return CollectorIssue(
                now,
                "vllm",
                f"{self.url}/metrics does not exist (404)",
                "point --url at the vLLM server root, e.g. http://127.0.0.1:8000",
            )
        if status >= 400:
            return CollectorIssue(
                now, "vllm", f"{self.url}/metrics answered HTTP {status}", "check the server's log"
            )
        head = text.lstrip()[:200].lower()
        if "html" in content_type or head.startswith("<"):
            return CollectorIssue(
                now,
                "vllm",
                f"{self.url}/metrics returned HTML, not Prometheus metrics",
                "a proxy or web UI answered: point --url at the vLLM server itself",
            )
        return MetricsDump(t_unix=now, text=text)

    def has_engine_metrics(self, dump: MetricsDump) -> CollectorIssue | None:
        """vLLM started with --disable-log-stats exposes no `vllm:` families: say so once, don't guess."""
        if "vllm:" in dump.text or "\nvllm_" in dump.text or dump.text.startswith("vllm_"):
            return None
        if self._warned_no_vllm:
            return None
        self._warned_no_vllm = True
        return CollectorIssue(
            dump.t_unix,
            "vllm",
            "no vllm: engine metrics in /metrics: the server runs with --disable-log-stats, or is not vLLM",
            "restart vLLM without --disable-log-stats to get queue, KV-cache and prefix-cache evidence",
        )

    def _json(self, path: str) -> Any:
        status, _, text = self._get(path)
        if status >= 400:
            raise _Failure(f"{self.url}{path} answered HTTP {status}", "")
        import json

        try:
            return json.loads(text)
        except ValueError:
            raise _Failure(f"{self.url}{path} did not return JSON", "") from None

    def server_info(self) -> tuple[ServerInfo, list[CollectorIssue]]:
        """/health, /version and /v1/models; each one missing is noted, none is fatal."""
        info = ServerInfo(url=self.url)
        issues: list[CollectorIssue] = []
        try:
            status, _, _ = self._get("/health")
            info.healthy = status == 200
        except _Failure as fail:
            issues.append(CollectorIssue(self._clock(), "server", fail.reason, fail.fix))
            return info, issues  # unreachable: the other two would only repeat it
        try:
            info.version = str(self._json("/version").get("version"))
        except (_Failure, AttributeError) as fail:
            issues.append(CollectorIssue(self._clock(), "server", f"vLLM version unknown: {fail}"))
        try:
            models = self._json("/v1/models").get("data") or []
            if models:
                info.model_id = models[0].get("id")
                length = models[0].get("max_model_len")
                info.max_model_len = int(length) if length is not None else None
        except (_Failure, AttributeError, TypeError, ValueError) as fail:
            issues.append(
                CollectorIssue(
                    self._clock(),
                    "server",
                    f"/v1/models unreadable: {fail}",
                    "pass --api-key if the server requires one",
                )
            )
        return info, issues
