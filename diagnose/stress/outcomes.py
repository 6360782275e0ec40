"""What one call came to: ok, or an error kind with the server's own message.

Kinds: `ok`, `timeout` (no full answer within --timeout), `connection` (refused, reset, closed
mid-answer), `4xx` and `5xx` (with the server's message, e.g. vLLM's "This model's maximum context
length is ..." text), `other` (anything else the client raised), `unfinished` (still in flight when
the run was interrupted: its latency is unknown, not zero).
"""

from __future__ import annotations

import asyncio
import json

OK = "ok"
TIMEOUT = "timeout"
CONNECTION = "connection"
HTTP_4XX = "4xx"
HTTP_5XX = "5xx"
OTHER = "other"
UNFINISHED = "unfinished"

ERROR_KINDS = (TIMEOUT, CONNECTION, HTTP_4XX, HTTP_5XX, OTHER, UNFINISHED)
_MAX_MESSAGE = 240


def kind_of_status(status: int) -> str:
    if 200 <= status < 300:
        return OK
    if 400 <= status < 500:
        return HTTP_4XX
    if status >= 500:
        return HTTP_5XX
    return OTHER  # 1xx/3xx: vLLM never redirects a rerank call, so this is a proxy in the way


def server_message(body: bytes) -> str:
    """The human part of an error body, one line, at most 240 characters.

    vLLM >= 0.10 answers {"error": {"message": ..., "type": ..., "code": ...}}; older versions put
    "message" at the top level; FastAPI's own 404/405 say {"detail": "Not Found"}.
    """
    text = body.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    message = None
    if isinstance(doc, dict):
        inner = doc.get("error")
        if isinstance(inner, dict):
            message = inner.get("message")
        elif isinstance(inner, str):
            message = inner
        message = message or doc.get("message") or doc.get("detail")
        if message is not None and not isinstance(message, str):
            message = json.dumps(message)
    line = " ".join(str(message if message else text).split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 1] + "…"


def kind_of_exception(exc: BaseException) -> tuple[str, str]:
    """(kind, one-line message) for an exception raised while calling the server."""
    from diagnose.stress import http1

    # aiohttp's ServerTimeoutError is both a TimeoutError and a ClientConnectionError: timeout first.
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return TIMEOUT, "no complete answer within --timeout"
    if isinstance(exc, http1.ConnectFailed):
        return CONNECTION, f"cannot connect: {exc}"
    if isinstance(exc, http1.Disconnected | http1.BadResponse):
        return CONNECTION, str(exc)

    import aiohttp  # the control calls' client; imported here so this module stays light

    if isinstance(exc, aiohttp.ClientConnectorError):
        return CONNECTION, f"cannot connect: {_os_reason(exc)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return CONNECTION, "server closed the connection before answering"
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError | ConnectionError):
        return CONNECTION, f"{type(exc).__name__}: {_os_reason(exc)}"
    return OTHER, f"{type(exc).__name__}: {exc}"[:_MAX_MESSAGE]


def _os_reason(exc: BaseException) -> str:
    err = getattr(exc, "os_error", None) or exc
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(reason).split())[:_MAX_MESSAGE]
