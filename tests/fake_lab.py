"""A lab directory whose "vLLM" is a stand-in (NOT vLLM), for tests of how commands start and wait for it.

`fake_lab(tmp_path, healthy_after_s)` writes `venv/bin/python` (a shell script that runs this file's server
with this interpreter), a complete venv marker and a built-model marker, so `ensure_lab` and `LabServer`
take it as a ready lab. The server logs a line a second like vLLM does while starting, answers /health only
after `healthy_after_s`, and serves diagnose.stress.local_server's fixed rerank answers plus the /metrics
dumps of the recorded CPU lab run (tests/fixtures/vllm-0.32-cpu-lab/metrics.prom: before, then after).
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def fake_lab(lab_dir: Path, healthy_after_s: float = 3.0) -> Path:
    from diagnose.lab import build_model
    from diagnose.lab.venv import MARKER_NAME, RECIPE_VERSION

    python = lab_dir / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True, exist_ok=True)
    python.write_text(
        "#!/bin/sh\n"
        f'exec "{sys.executable}" "{Path(__file__).resolve()}" --healthy-after {healthy_after_s} "$@"\n'
    )
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    marker = {"recipe_version": RECIPE_VERSION, "steps_done": [], "complete": True, "how": "fake"}
    (lab_dir / "venv" / MARKER_NAME).write_text(json.dumps(marker))
    model = lab_dir / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    (model / build_model.MARKER).write_text(json.dumps({"recipe_version": build_model.RECIPE_VERSION}))
    return lab_dir


def _serve(argv: list[str]) -> None:
    import argparse
    import asyncio
    import time

    sys.path.insert(0, str(REPO))
    from aiohttp import web

    from diagnose.bundle import split_dumps
    from diagnose.stress.local_server import Behaviour, Seen, make_app

    ap = argparse.ArgumentParser()
    ap.add_argument("--healthy-after", type=float, default=3.0)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--served-model-name", default="lab-reranker")
    args, _ = ap.parse_known_args(argv)  # the -m vllm... and every other vLLM flag are ignored
    dumps = split_dumps((HERE / "fixtures" / "vllm-0.32-cpu-lab" / "metrics.prom").read_text())
    # The load's opening scrape and the window's first see "before"; the rest see "after".
    texts = [dumps[0].text, dumps[0].text, dumps[-1].text]
    t0 = time.monotonic()

    async def health(_: web.Request) -> web.Response:
        return web.Response(status=200 if time.monotonic() - t0 >= args.healthy_after else 503)

    async def serve() -> None:
        app = make_app(Behaviour(model=args.served_model_name, metrics=texts), Seen())
        app.router.add_get("/health", health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.port).start()
        n = 0
        while True:
            n += 1
            print(f"(APIServer pid=1) INFO [fake.py:1] fake start-up step {n}", flush=True)
            await asyncio.sleep(1.0)

    asyncio.run(serve())


if __name__ == "__main__":
    _serve(sys.argv[1:])
