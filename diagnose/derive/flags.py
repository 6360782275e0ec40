"""The vLLM command line as flags: what the rules compare their proposals against. Pure.

`--x 1 --y=2 --z` -> {'--x': '1', '--y': '2', '--z': 'true'}, from a flags.txt in any form people paste it
(a shell line, `ps` output, docker-compose or Kubernetes YAML): diagnose/bundle/launch.py reads the forms.
"""

from __future__ import annotations

from diagnose.bundle.launch import flags_from_argv, read_launch


def parse_flags(text: str) -> dict[str, str]:
    """'--x 1 --y=2 --z' -> {'--x': '1', '--y': '2', '--z': 'true'}, from any form `read_launch` reads."""
    return flags_from_argv(read_launch(text).argv)


def environment(text: str) -> dict[str, str]:
    """The `VAR=value` settings a flags.txt gives the server (VLLM_CPU_KVCACHE_SPACE=4, ...), redacted."""
    return read_launch(text).env


def env_float(env: dict[str, str], name: str) -> float | None:
    """A numeric environment setting (e.g. VLLM_CPU_KVCACHE_SPACE, in GiB); None if unset or not a number."""
    try:
        return float(env[name])
    except (KeyError, ValueError):
        return None
