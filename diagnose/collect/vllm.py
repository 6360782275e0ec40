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
import urllib3.exceptions

from diagnose.bundle.values import MAX_DUMP_BYTES
from diagnose.metrics.exposition import exposition_problem, parse_text, unreadable_summary
from diagnose.readings import CollectorIssue, MetricsDump, ServerInfo
from diagnose.urls import base_url  # the one --url grammar; re-exported for callers of this module

DEFAULT_TIMEOUT_S = 5.0
# Far past vLLM's ~54 KB it is not vLLM's /metrics: stop reading rather than fill memory (the same cap
# as a bundle's dump).
DEFAULT_MAX_BYTES = MAX_DUMP_BYTES


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
        self.url = base_url(url)  # no credentials: this is what messages and bundles show
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._session = session or requests.Session()
        # The key goes in a header only; it is never logged, saved or put in a message.
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._clock = clock
        self._warned_no_vllm = False
        self._warned_unreadable = False
        self._last_unreadable: tuple[MetricsDump | None, str | None] = (None, None)

    def _get(self, path: str) -> tuple[int, str, str]:
        """(status, content type, body text) or _Failure; bounded by timeout_s in total."""
        url = self.url + path
        deadline = time.monotonic() + self.timeout_s
        try:
            with self._session.get(
                url,
                headers=self._headers,
                timeout=(min(self.timeout_s, 3.0), self.timeout_s),
                stream=True,
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
        # Reading the body goes below requests (read1), so urllib3's own errors arrive here unwrapped:
        # a server that sends headers and then stalls, drops the connection mid-body, or marks a plain
        # body as gzip. Each is the server's fault, said in one line, never an internal error.
        except urllib3.exceptions.ReadTimeoutError:
            raise _Failure(
                f"{url} sent its headers, then nothing for {self.timeout_s:g} s",
                "the server is hung or overloaded; check its log, or raise --timeout",
            ) from None
        except urllib3.exceptions.DecodeError:
            raise _Failure(
                f"{url} marked its body as compressed but it does not decompress",
                "a proxy between is rewriting the response: point --url at the vLLM server itself",
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as err:
            cut = "ended before the whole body arrived" if "IncompleteRead" in repr(err) else "broke off"
            raise _Failure(
                f"{url}: the connection {cut} ({type(err).__name__})",
                "the server restarted or a proxy dropped the connection; try again",
            ) from None

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
        # JSON, an empty body or binary is not vLLM's /metrics: bad input, never a "healthy" window.
        parsed = parse_text(text, now, finite_only=True)
        verdict = exposition_problem(parsed)
        if verdict is not None:
            what = f"{len(text.encode())} bytes of {content_type or 'no content type'}"
            return CollectorIssue(
                now,
                "vllm",
                f"{self.url}/metrics answered {what}: {verdict}",
                "point --url at the vLLM server itself (its /metrics serves Prometheus text)",
            )
        dump = MetricsDump(t_unix=now, text=text)
        self._last_unreadable = (dump, unreadable_summary(parsed))  # dump_issues reads it: parse once
        return dump

    def dump_issues(self, dump: MetricsDump) -> list[CollectorIssue]:
        """What is wrong with a dump that did arrive, each said once: lines that could not be read
        (dropped, counted), or no `vllm:` engine metrics at all."""
        found = []
        last, summary = self._last_unreadable
        if last is not dump:
            summary = unreadable_summary(parse_text(dump.text, dump.t_unix, finite_only=True))
        if summary is not None and not self._warned_unreadable:
            self._warned_unreadable = True
            found.append(
                CollectorIssue(
                    dump.t_unix,
                    "input",
                    f"{self.url}/metrics: {summary}",
                    "the numbers are read from the other lines; a proxy may be rewriting the response",
                )
            )
        engine = self.has_engine_metrics(dump)
        if engine is not None:
            found.append(engine)
        return found

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
