"""LOCALTEST stand-in for vLLM, to dry-run tests/gpu/run_h200.sh where there is no GPU: NOT vLLM.

It is diagnose.stress.local_server's trivial app (fixed answers, a small delay) plus /health, with /metrics
answering the text of a real 0.26 H200 capture (metrics_series_5s.txt dumps, in turn), so collect and
stress see a well-formed exposition. Nothing it serves goes into a fixture.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aiohttp import web

from diagnose.bundle import split_dumps
from diagnose.stress.local_server import Behaviour, Seen, make_app

CAPTURE = Path("/tmp/caps/s3_gpu_saturated_c64_d80_w300/metrics_series_5s.txt")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--model", default="fake")
    ap.add_argument("--delay", type=float, default=0.05)
    a = ap.parse_args()
    texts = [d.text for d in split_dumps(CAPTURE.read_text())] if CAPTURE.is_file() else ["# none\n"]

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="")

    async def serve() -> None:
        app = make_app(Behaviour(model=a.model, delay_s=a.delay, metrics=texts), Seen())
        app.router.add_get("/health", health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", a.port, backlog=1024).start()
        print(f"fake vLLM on {a.port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
