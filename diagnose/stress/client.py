"""The async load generator: resolve the model, check the endpoint once, scrape /metrics, send, scrape again.

Only this module (and the progress display it drives) runs on an event loop; everything it produces is
handed to the pure `build_report`. Open loop: one task per call, launched at its intended time from a
precomputed schedule, never waiting for answers. Closed loop: `concurrency` workers, each sending its
next call when its last one answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import resource
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.stress import outcomes
from diagnose.stress.bodies import Body, BodySpec, build_bodies
from diagnose.stress.config import LoadConfig, Target
from diagnose.stress.http1 import Http1Pool, request_bytes
from diagnose.stress.recorder import Recorder
from diagnose.stress.report import LoadReport, build_report
from diagnose.stress.schedule import arrival_offsets
from diagnose.stress.server_view import ServerView, server_view

# The first arrival is this far after the clock starts, so setup work does not make it late.
_LEAD_S = 0.05
_CONTROL_TIMEOUT_S = 10.0  # GET /v1/models, /metrics and the one check call
# An open loop's in-flight calls are capped so a stalled server cannot exhaust the client's file
# descriptors; a call waiting for a slot still counts its wait (lag and latency are from intended).
_DEFAULT_MAX_IN_FLIGHT = 4096


def _max_in_flight() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _DEFAULT_MAX_IN_FLIGHT
    return max(16, min(_DEFAULT_MAX_IN_FLIGHT, soft - 64))


@dataclass(slots=True)
class _Control:
    session: aiohttp.ClientSession
    target: Target
    headers: dict[str, str]


async def _discover_model(ctl: _Control) -> str:
    url = f"{ctl.target.base_url}/v1/models"
    try:
        async with ctl.session.get(url, headers=ctl.headers) as resp:
            body = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        _, message = outcomes.kind_of_exception(exc)
        raise DoctorError(
            f"cannot reach {ctl.target.base_url} ({message})",
            "start vLLM there or fix --url",
            ExitStatus.UNREACHABLE,
        ) from None
    if status in (401, 403):
        raise _auth_error(ctl, "GET /v1/models", status)
    if status != 200:
        raise DoctorError(
            f"GET /v1/models answered {status}: {outcomes.server_message(body)}",
            "pass the served model name with --model",
            ExitStatus.UNREACHABLE,
        )
    try:
        import json

        return str(json.loads(body)["data"][0]["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise DoctorError(
            "GET /v1/models did not list a model",
            "pass the served model name with --model",
            ExitStatus.UNREACHABLE,
        ) from None


def _auth_error(ctl: _Control, what: str, status: int) -> DoctorError:
    fix = (
        "check the key given with --api-key"
        if "Authorization" in ctl.headers
        else "pass the key with --api-key"
    )
    return DoctorError(f"{what} answered {status}: the server wants an API key", fix, ExitStatus.UNREACHABLE)


async def _check_endpoint(ctl: _Control, body: Body) -> str | None:
    """Send one call before the clock starts: a wrong endpoint, model or key stops here with one line.

    Returns a note when the check call failed in a way the run will also see (400, 5xx) — those are
    findings for the report, not reasons to refuse. The check call is not in the results.
    """
    url = ctl.target.base_url + ctl.target.endpoint
    what = f"POST {ctl.target.endpoint}"
    try:
        async with ctl.session.post(url, data=body.data, headers=ctl.headers) as resp:
            data = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        kind, message = outcomes.kind_of_exception(exc)
        if kind == outcomes.TIMEOUT:
            return f"the check call before the run got no answer within {_CONTROL_TIMEOUT_S:g} s"
        raise DoctorError(
            f"cannot reach {ctl.target.base_url} ({message})",
            "start vLLM there or fix --url",
            ExitStatus.UNREACHABLE,
        ) from None
    if status in (401, 403):
        raise _auth_error(ctl, what, status)
    if status in (404, 405):
        raise DoctorError(
            f"{what} answered {status}: {outcomes.server_message(data)}",
            "check --endpoint (/v1/rerank, /rerank, /v2/rerank, /score, /v1/score) and --model; a reranker "
            "needs vLLM started with --runner pooling",
            ExitStatus.UNREACHABLE,
        )
    if not 200 <= status < 300:
        return f"the check call before the run answered {status}: {outcomes.server_message(data)}"
    return None


async def _scrape(ctl: _Control) -> tuple[str | None, float, str | None]:
    """(text, t_unix, problem): a plain GET of /metrics, as Prometheus would do it."""
    try:
        async with ctl.session.get(f"{ctl.target.base_url}/metrics", headers=ctl.headers) as resp:
            text = await resp.text(errors="replace")
            if resp.status != 200:
                return None, time.time(), f"GET /metrics answered {resp.status}"
            return text, time.time(), None
    except (aiohttp.ClientError, TimeoutError) as exc:
        return None, time.time(), f"GET /metrics failed: {outcomes.kind_of_exception(exc)[1]}"


class _Run:
    """The state of one load phase: the recorder, the stop signal and the in-flight tasks."""

    def __init__(self, config: LoadConfig, target: Target, bodies: list[Body], headers: dict[str, str]):
        self.config = config
        self.bodies = bodies
        # Whole requests, built before the clock starts (the API key lives only in these bytes).
        self.raw = [
            request_bytes(
                target.base_url, target.endpoint, b.data, headers, config.new_connection_per_request
            )
            for b in bodies
        ]
        self.recorder = Recorder()
        self.stop = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.body_index = itertools.count()
        self.t0 = 0.0
        self.send_end: float | None = None
        self.stopped_by = "duration"
        self.scheduled = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.drain_cut = 0  # calls cancelled because the drain's bound ran out
        self.cut_reason = "still in flight when the run was interrupted"

    def next_body(self) -> Body:
        return self.bodies[next(self.body_index) % len(self.bodies)]

    def halt(self, reason: str) -> None:
        if not self.stop.is_set():
            self.stopped_by = reason
            self.send_end = self.loop.time()
            self.stop.set()

    async def call(self, pool: Http1Pool, body: Body, intended: float) -> None:
        loop = self.loop
        rec = self.recorder
        record = rec.start(intended, loop.time(), body.docs)
        try:
            status, data = await pool.request(self.raw[body.index], self.config.timeout_s)
        except asyncio.CancelledError:
            rec.abandon(record, self.cut_reason)
            raise
        except Exception as exc:  # every failure is a finding for the report, never a crash of the run
            kind, message = outcomes.kind_of_exception(exc)
            rec.finish(record, loop.time(), kind, None, message)
            return
        kind = outcomes.kind_of_status(status)
        rec.finish(
            record, loop.time(), kind, status, "" if kind == outcomes.OK else outcomes.server_message(data)
        )

    async def open_loop(self, session: Http1Pool) -> None:
        config = self.config
        assert config.rate_per_s is not None
        cap = asyncio.Semaphore(_max_in_flight())
        limit = config.max_requests

        async def capped(body: Body, intended: float) -> None:
            async with cap:
                await self.call(session, body, intended)

        offsets = arrival_offsets(
            config.rate_per_s,
            config.duration_s,
            config.arrival,
            config.ramp_s,
            config.ramp_from_per_s,
            config.seed or 0,  # run_load fixed it (with_seed) before the run began
        )
        loop = self.loop
        for offset in offsets:
            intended = self.t0 + offset
            delay = intended - loop.time()
            if delay > 0.05:  # a long gap (low rate): wake early if the run is stopped meanwhile
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)
            elif delay > 0:
                await asyncio.sleep(delay)
            if self.stop.is_set():
                return
            task = loop.create_task(capped(self.next_body(), intended))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            self.scheduled += 1
            if limit is not None and self.scheduled >= limit:
                self.halt("max_requests")
                return
        self.halt("duration")

    async def closed_loop(self, session: Http1Pool) -> None:
        config = self.config
        assert config.concurrency is not None
        end = self.t0 + config.duration_s
        limit = config.max_requests
        sent = 0

        async def worker() -> None:
            nonlocal sent
            while not self.stop.is_set():
                if limit is not None and sent >= limit:
                    self.halt("max_requests")
                    return
                sent += 1
                await self.call(session, self.next_body(), self.loop.time())

        await asyncio.sleep(max(0.0, self.t0 - self.loop.time()))
        # Sending stops AT the end of the window, not when each worker's call in flight answers: those
        # calls are the drain's (bounded) business, as in the open loop.
        timer = self.loop.call_at(end, self.halt, "duration")
        for _ in range(config.concurrency):
            task = self.loop.create_task(worker())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        await self.stop.wait()
        timer.cancel()

    async def drain(self) -> None:
        """Wait for the calls still in flight, at most `drain_s`; cancel the rest (or all, on Ctrl-C)."""
        deadline = self.loop.time() + self.config.drain_s
        while self.tasks:
            left_s = deadline - self.loop.time()
            if self.stopped_by == "interrupt" or left_s <= 0:
                if self.stopped_by != "interrupt":
                    self.drain_cut = self.recorder.in_flight
                    self.cut_reason = f"still in flight {self.config.drain_s:g} s after sending stopped"
                for task in list(self.tasks):
                    task.cancel()
                await asyncio.gather(*list(self.tasks), return_exceptions=True)
                return
            await asyncio.wait(list(self.tasks), timeout=left_s)


async def _load(
    config: LoadConfig, target: Target, show_progress: bool, stop: threading.Event | None = None
) -> LoadReport:
    headers = {"Content-Type": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    control_timeout = aiohttp.ClientTimeout(total=min(_CONTROL_TIMEOUT_S, max(config.timeout_s, 1.0)))
    async with aiohttp.ClientSession(timeout=control_timeout) as control_session:
        ctl = _Control(control_session, target, headers)
        model = config.model or await _discover_model(ctl)
        spec = BodySpec(
            docs=config.docs,
            words=config.words,
            query_words=config.query_words,
            distinct=config.distinct_bodies,
            qwen3_template=config.qwen3_template,
            instruction=config.instruction,
            top_n=config.top_n,
            seed=config.seed or 0,  # fixed by with_seed before the run
        )
        bodies = build_bodies(spec, target.endpoint, model)
        check_note = await _check_endpoint(ctl, bodies[-1])
        before = await _scrape(ctl) if config.scrape_metrics else (None, time.time(), "not asked for")

        run = _Run(config, target, bodies, headers)
        # Connection reuse (keep-alive) is the default; force_close opens a fresh TCP connection per
        # call, as clients that churn sockets do (TIME_WAIT piles up on the server).
        load_session = Http1Pool(
            target.base_url,
            force_close=config.new_connection_per_request,
            connect_timeout_s=min(config.timeout_s, _CONTROL_TIMEOUT_S),
        )

        def on_sigint() -> None:
            # Stop at once: calls in flight are cancelled and reported as unfinished, the rest is kept.
            run.halt("interrupt")
            for task in list(run.tasks):
                task.cancel()

        handler_installed = False
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            run.loop.add_signal_handler(signal.SIGINT, on_sigint)
            handler_installed = True
        progress_task: asyncio.Task[None] | None = None
        stop_task: asyncio.Task[None] | None = None
        started_unix = time.time()
        try:
            run.t0 = run.loop.time() + _LEAD_S
            if show_progress:
                from diagnose.stress.progress import show

                progress_task = run.loop.create_task(show(run.recorder, run.stop, run.t0, config))
            if stop is not None:
                stop_task = run.loop.create_task(_stop_when_set(run, stop))
            if config.open_loop:
                await run.open_loop(load_session)
            else:
                await run.closed_loop(load_session)
            await run.drain()
        finally:
            end = run.loop.time()
            if handler_installed:
                run.loop.remove_signal_handler(signal.SIGINT)
            for task in (progress_task, stop_task):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            load_session.close()

        after = (
            await _scrape(ctl)
            if config.scrape_metrics and before[0] is not None
            else (None, time.time(), None)
        )
    view: ServerView | None = None
    problem = before[2] or after[2]
    if before[0] is not None and after[0] is not None:
        view = server_view(before[0], after[0], before[1], after[1])
    report = build_report(
        recorder=run.recorder,
        mode="open" if config.open_loop else "closed",
        target={
            "base_url": target.base_url,
            "endpoint": target.endpoint,
            "model": model,
            "auth": "bearer" if config.api_key else None,
        },
        settings=settings_of(config),
        started_unix=started_unix,
        t0=run.t0,
        send_end=run.send_end if run.send_end is not None else end,
        end=end,
        stopped_by=run.stopped_by,
        scheduled=run.scheduled if config.open_loop else None,
        target_rate_per_s=config.rate_per_s,
        bodies=_bodies_summary(bodies, spec),
        server=view,
        server_problem=problem,
    )
    if check_note:
        report.notes.append(check_note)
    if run.drain_cut:
        report.notes.append(
            f"{run.drain_cut} calls were still in flight {config.drain_s:g} s after sending stopped and were "
            "cancelled (--drain): they count as unfinished and are not in the latency above, so the real "
            "tail is longer than it shows"
        )
    if config.open_loop and run.scheduled > report.calls_sent:
        report.notes.append(
            f"{run.scheduled - report.calls_sent} scheduled calls were never sent (stopped first)"
        )
    return report


def settings_of(config: LoadConfig) -> dict[str, Any]:
    """The run's knobs for the report. The API key is deliberately absent (only `auth` says one was sent)."""
    return {
        "rate_per_s": config.rate_per_s,
        "arrival": config.arrival if config.open_loop else None,
        "ramp_s": config.ramp_s if config.open_loop else None,
        "ramp_from_per_s": config.ramp_from_per_s if config.open_loop and config.ramp_s else None,
        "concurrency": config.concurrency,
        "duration_s": config.duration_s,
        "max_requests": config.max_requests,
        "timeout_s": config.timeout_s,
        "docs": str(config.docs),
        "words": str(config.words),
        "query_words": config.query_words,
        "qwen3_template": config.qwen3_template,
        "top_n": config.top_n,
        "distinct_bodies": config.distinct_bodies,
        "seed": config.seed,
        "drain_s": config.drain_s,
        "new_connection_per_request": config.new_connection_per_request,
    }


def _bodies_summary(bodies: list[Body], spec: BodySpec) -> dict[str, Any]:
    docs = [b.docs for b in bodies]
    return {
        "distinct": len(bodies),
        "docs_per_call_mean": sum(docs) / len(docs),
        "docs_per_call_min": min(docs),
        "docs_per_call_max": max(docs),
        "words_per_doc_mean": sum(b.doc_words for b in bodies) / max(sum(docs), 1),
        "query_words": spec.query_words,
        "qwen3_template": spec.qwen3_template,
    }


async def _stop_when_set(run: _Run, stop: threading.Event) -> None:
    """Sending stops when another thread sets `stop` (the collection's window closed), within 0.1 s."""
    while not run.stop.is_set():
        if stop.is_set():
            run.halt("window")
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.stop.wait(), 0.1)


def run_load(config: LoadConfig, progress: bool = False, stop: threading.Event | None = None) -> LoadReport:
    """Run one bounded load against `config.url` and return its report (blocks; uses asyncio.run).
    `stop`, set from another thread, ends the sending early (the run still stops at its duration).

    Raises DoctorError (one line with a fix) for bad settings, a far-away target without
    `yes_really`, an unreachable server, a wrong endpoint or model, or a refused key.
    """
    target = config.validate()
    return asyncio.run(_load(config.with_seed(), target, progress, stop))
