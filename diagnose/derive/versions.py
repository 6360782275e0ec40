"""The server's vLLM version, comparable, and the advice that depends on it. Pure.

The facts (DESIGN §2): vLLM 0.20 to 0.26 preprocess (tokenize) all documents of one rerank/score request on
one thread (vLLM issue #43444); 0.27 added a renderer thread pool, `--renderer-num-workers` (PR #49153),
which defaults to 1 through 0.34 (vllm/config/model.py `renderer_num_workers: int = 1`).
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from diagnose.readings import ServerInfo

SINGLE_THREAD_RENDER_FIRST = Version("0.20")
RENDERER_WORKERS_SINCE = Version("0.27")
RENDERER_WORKERS_FLAG = "--renderer-num-workers"


@dataclass(frozen=True, slots=True)
class ServerVersion:
    """The version the server reported, parsed; `source` says where the text came from."""

    version: Version
    text: str  # as reported, e.g. "0.32.0+cpu"
    source: str  # "/version" (live, or server.json in a bundle)

    @property
    def release(self) -> Version:
        """The release without local/dev parts: "0.32.0+cpu" and "0.27.0rc1" compare as 0.32.0 and 0.27.0."""
        return Version(self.version.base_version)


def parse_version(text: str | None, source: str = "/version") -> ServerVersion | None:
    """A comparable version from "0.34.0", "v0.26.0", "0.32.0+cpu", "0.11.1rc2.dev3"; None if not one."""
    if not text:
        return None
    cleaned = text.strip().removeprefix("v").removeprefix("V")
    try:
        return ServerVersion(Version(cleaned), text.strip(), source)
    except InvalidVersion:
        return None


def server_version(server: ServerInfo) -> ServerVersion | None:
    """The version the server reported on /version (live, or kept in a bundle's server.json).

    vLLM's /metrics carries no version (no `vllm:` info family has one, 0.26 to 0.34), so a hand-made
    bundle without server.json has none: None, and the caller says `curl URL/version` would tell.
    """
    return parse_version(server.version, "/version" if server.url else "server.json")


@dataclass(frozen=True, slots=True)
class RendererAdvice:
    """What to change when one API server is busy tokenizing: the knob, its proposed value, and why."""

    upgrade_to: str | None  # "0.27" when the running version has no renderer pool; None when it has one
    flag: str  # --renderer-num-workers
    current: int  # the workers the server runs with (1: the only one there is before 0.27, and the default)
    proposed: int
    why: str


def renderer_advice(
    version: ServerVersion | None, flags: dict[str, str], proposed_workers: int
) -> RendererAdvice | None:
    """The advice for an API server bound by preprocessing, by version; None where it does not apply.

    None when the version is unknown (the caller says the version is needed), before 0.20 (not that code
    path), or when `--renderer-num-workers` is already at or above `proposed_workers`.
    """
    if version is None or version.release < SINGLE_THREAD_RENDER_FIRST:
        return None
    if version.release < RENDERER_WORKERS_SINCE:
        return RendererAdvice(
            upgrade_to=str(RENDERER_WORKERS_SINCE),
            flag=RENDERER_WORKERS_FLAG,
            current=1,
            proposed=proposed_workers,
            why=(
                f"vLLM {version.text} preprocesses all documents of a rerank/score request on one thread "
                f"(vLLM issue #43444); upgrade to ≥{RENDERER_WORKERS_SINCE} and set "
                f"{RENDERER_WORKERS_FLAG} {proposed_workers} (PR #49153)"
            ),
        )
    current = _int(flags.get(RENDERER_WORKERS_FLAG)) or 1
    if current >= proposed_workers:
        return None
    return RendererAdvice(
        upgrade_to=None,
        flag=RENDERER_WORKERS_FLAG,
        current=current,
        proposed=proposed_workers,
        why=(
            f"vLLM {version.text} tokenizes on {current} renderer thread(s) per API server "
            f"({RENDERER_WORKERS_FLAG} defaults to 1); set {RENDERER_WORKERS_FLAG} {proposed_workers}"
        ),
    )


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None
