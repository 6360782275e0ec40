"""The vLLM command line as flags: what the rules compare their proposals against. Pure.

`--x 1 --y=2 --z` -> {'--x': '1', '--y': '2', '--z': 'true'}, from a flags.txt in any form people paste it
(a shell line, `ps` output, docker-compose or Kubernetes YAML): diagnose/bundle/launch.py reads the forms.
"""

from __future__ import annotations

from functools import lru_cache

from diagnose.bundle.launch import flags_from_argv, read_launch


def parse_flags(text: str) -> dict[str, str]:
    """'--x 1 --y=2 --z' -> {'--x': '1', '--y': '2', '--z': 'true'}, from any form `read_launch` reads."""
    return dict(_read(text)[0])


def environment(text: str) -> dict[str, str]:
    """The `VAR=value` settings a flags.txt gives the server (VLLM_CPU_KVCACHE_SPACE=4, ...), redacted."""
    return dict(_read(text)[1])


# A fleet's replicas share one command line: it is tokenised once (shlex took 0.7 ms a replica), and
# callers get their own dicts.
@lru_cache(maxsize=64)
def _read(text: str) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    launch = read_launch(text)
    return tuple(flags_from_argv(launch.argv).items()), tuple(launch.env.items())


def env_float(env: dict[str, str], name: str) -> float | None:
    """A numeric environment setting (e.g. VLLM_CPU_KVCACHE_SPACE, in GiB); None if unset or not a number."""
    try:
        return float(env[name])
    except (KeyError, ValueError):
        return None
