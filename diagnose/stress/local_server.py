"""A trivial reranker-shaped HTTP server on 127.0.0.1, for the stress tests and benchmarks/loadgen.py.

It is NOT vLLM and computes nothing: it answers the rerank/score endpoints with a fixed body so the
load generator can be tested and timed on its own. Behaviours that tests need (a stall, an error
status, a required key, recorded /metrics text) are switched on by `Behaviour`. Runs in a thread
(`LocalServer`) or as a process: `python -m diagnose.stress.local_server --port 0` prints its URL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from diagnose.stress.config import ENDPOINTS

_OK_BODY = json.dumps({"id": "local", "results": [{"index": 0, "relevance_score": 0.5}]}).encode()


@dataclass
class Behaviour:
    model: str = "local-reranker"
    delay_s: float = 0.0  # every call waits this long before answering
    stall_at_call: int | None = None  # the N-th call (1-based) starts a server-wide stall ...
    stall_s: float = 1.0  # ... during which every call, running or new, waits until it ends
    status: int = 200
    error_body: bytes = b""
    api_key: str | None = None  # when set, a call without `Authorization: Bearer <key>` gets 401
    metrics: list[str] = field(default_factory=list)  # /metrics answers, in order; the last repeats
    endpoints: tuple[str, ...] = ENDPOINTS
    keep_bodies: bool = False


@dataclass
class Seen:
    """What the server received (for tests)."""

    calls: int = 0
    bodies: list[bytes] = field(default_factory=list)
    authorization: set[str] = field(default_factory=set)
    peers: set[tuple[str, int]] = field(default_factory=set)  # client (host, port): one per connection
    metrics_gets: int = 0


def make_app(behaviour: Behaviour, seen: Seen) -> web.Application:
    stall_until = 0.0

    async def call(request: web.Request) -> web.Response:
        nonlocal stall_until
        data = await request.read()
        seen.calls += 1
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            seen.peers.add((peer[0], peer[1]))
        auth = request.headers.get("Authorization")
        if auth:
            seen.authorization.add(auth)
        if behaviour.keep_bodies:
            seen.bodies.append(data)
        if behaviour.api_key is not None and auth != f"Bearer {behaviour.api_key}":
            return web.json_response({"error": "Unauthorized"}, status=401)
        if behaviour.stall_at_call is not None and seen.calls == behaviour.stall_at_call:
            stall_until = time.monotonic() + behaviour.stall_s
        if behaviour.delay_s:
            await asyncio.sleep(behaviour.delay_s)
        wait = stall_until - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if behaviour.status != 200:
            return web.Response(
                status=behaviour.status, body=behaviour.error_body, content_type="application/json"
            )
        return web.Response(body=_OK_BODY, content_type="application/json")

    async def models(request: web.Request) -> web.Response:
        if (
            behaviour.api_key is not None
            and request.headers.get("Authorization") != f"Bearer {behaviour.api_key}"
        ):
            return web.json_response({"error": "Unauthorized"}, status=401)
        return web.json_response({"object": "list", "data": [{"id": behaviour.model, "object": "model"}]})

    async def metrics(request: web.Request) -> web.Response:
        if not behaviour.metrics:
            raise web.HTTPNotFound()
        text = behaviour.metrics[min(seen.metrics_gets, len(behaviour.metrics) - 1)]
        seen.metrics_gets += 1
        return web.Response(text=text, content_type="text/plain")

    app = web.Application()
    for path in behaviour.endpoints:
        app.router.add_post(path, call)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/metrics", metrics)
    return app


class LocalServer:
    """Serves `make_app` from a background thread on a free 127.0.0.1 port. Use as a context manager."""

    def __init__(self, behaviour: Behaviour | None = None):
        self.behaviour = behaviour or Behaviour()
        self.seen = Seen()
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._runner: web.AppRunner | None = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
        self._loop.close()

    async def _start(self) -> None:
        self._runner = web.AppRunner(make_app(self.behaviour, self.seen), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> LocalServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the local server did not start within 10 s")
        return self

    def __exit__(self, *exc: Any) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description="A trivial local reranker-shaped server (not vLLM).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()

    async def serve() -> None:
        runner = web.AppRunner(make_app(Behaviour(delay_s=args.delay), Seen()), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"listening http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
