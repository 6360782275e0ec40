"""flags.txt as people paste it: the vLLM argv and environment in it, and the argv as flags. Pure.

A flags.txt is whatever people paste (DESIGN §5), so `read_launch` finds the argv and the environment in it,
one reader per form: a shell command (with `#` comments, `\\` continuations, `VAR=value` lines or prefixes,
`export VAR=value`, `sh -c "..."`), a `ps -ef` / `ps auxww` line, or YAML — a docker-compose service
(`entrypoint:` + `command:`), a Kubernetes container (`command:` + `args:`, `env:`), or a bare YAML list.
`flags_from_argv` reads one argv as flags: `--x 1 --y=2 --z` -> {'--x': '1', '--y': '2', '--z': 'true'};
underscores read as dashes; the short forms vLLM accepts (-tp, -dp, -asc) read as their long names. A
secret's value never comes through, even from a command line that arrived unredacted.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import yaml

from diagnose.redact import redact_command_line

_SECRET = re.compile(r"(key|token|secret|password)$", re.IGNORECASE)  # not --max-num-batched-tokens
_SHORT = {"-dp": "--data-parallel-size", "-tp": "--tensor-parallel-size", "-asc": "--api-server-count"}


@dataclass(frozen=True, slots=True)
class LaunchCommand:
    """The vLLM process as a flags.txt describes it: its argv and the environment set for it.

    `form` says which reader found it: "shell", "ps", "yaml" or "none" (no command in the text).
    `env` values are redacted (HF_TOKEN=***); `argv` is as given — redact before showing it.
    """

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    form: str = "none"

    @property
    def command_line(self) -> str:
        """The argv as one display string, secrets replaced by `***`."""
        return redact_command_line(list(self.argv))


def flags_from_argv(tokens: Sequence[str]) -> dict[str, str]:
    """The flags of one argv (each element one argument, as the shell or a YAML list gives them)."""
    out: dict[str, str] = {}
    # The interpreter's own options before the entry point (`python3 -u -X dev -m vllm...`) are not vLLM's.
    entry = next((n for n, token in enumerate(tokens) if _ENTRY_POINT.search(token)), None)
    i = 0 if entry is None else entry + 1
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("-") or token == "-m":
            continue
        name, eq, value = token.partition("=")
        name = _SHORT.get(name, name)
        name = "--" + name.lstrip("-").replace("_", "-")
        if eq and _SECRET.search(name):
            value = "<redacted>"
        if eq:
            out[name] = value
        elif _SECRET.search(name):
            # The command line should arrive redacted; never let a key through if it did not.
            out[name] = "<redacted>"
            i += 1
        elif i < len(tokens) and not tokens[i].startswith("--") and not _is_short_flag(tokens[i]):
            out[name] = tokens[i]
            i += 1
        else:
            out[name] = "true"
    return out


# `vllm` (the console script, by any path) or `vllm.entrypoints.openai.api_server` (python -m).
_ENTRY_POINT = re.compile(r"^(?:\S*/)?vllm$|^vllm\.entrypoints\.")


def _is_short_flag(token: str) -> bool:
    # "-1" is a value; "-tp" is a flag.
    return token.startswith("-") and not token[1:2].isdigit() and token != "-"


# ------------------------------------------------------------------------------------------------
# Finding the command in a pasted text: which form is it?

# A YAML key that holds a command: docker-compose `command:` / `entrypoint:`, Kubernetes `args:`.
_YAML_COMMAND_KEY = re.compile(r"^\s*(?:-\s+)?(?:command|args|entrypoint)\s*:", re.MULTILINE)
_YAML_LIST_ITEM = re.compile(r"^\s*-\s+\S")
_YAML_FLAG_ITEM = re.compile(r"^\s*-\s+[\"']?--[a-z]", re.MULTILINE)  # `- --max-model-len`, `- "--port"`


def read_launch(text: str) -> LaunchCommand:
    """The vLLM argv and environment from a pasted flags.txt, whatever its form (see the module doc)."""
    if _YAML_COMMAND_KEY.search(text) or _YAML_FLAG_ITEM.search(text) or _is_yaml_list(text):
        found = _from_yaml(text)
        if found is not None:
            return found
    return _from_shell(text)


def _is_yaml_list(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return bool(lines) and all(_YAML_LIST_ITEM.match(line) for line in lines)


# --- YAML: docker-compose and Kubernetes --------------------------------------------------------


def _from_yaml(text: str) -> LaunchCommand | None:
    try:
        # A manifest often holds several documents (`---`: Deployment, Service, ...).
        data = list(yaml.safe_load_all(textwrap.dedent(text)))
    except yaml.YAMLError:
        return None
    if len(data) == 1:
        data = data[0]
    if _is_arg_list(data):
        return LaunchCommand(argv=tuple(str(item) for item in data), form="yaml")
    best: LaunchCommand | None = None
    for node in _mappings(data):
        candidates = [_yaml_container(node)]
        # Any other list of arguments, e.g. a compose anchor such as `x-vllm-command: &cmd [...]`.
        candidates += [
            LaunchCommand(argv=tuple(str(item) for item in value), form="yaml")
            for value in node.values()
            if _is_arg_list(value)
        ]
        for launch in candidates:
            if launch is not None and (best is None or _score(launch.argv) > _score(best.argv)):
                best = launch
    return best if best is not None and _score(best.argv) > 0 else None


def _is_arg_list(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str | int | float) for v in value)


def _mappings(node: object) -> Iterable[dict]:
    """Every mapping in a YAML document, depth first (a compose file's services, a pod's containers)."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _mappings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _mappings(value)


def _yaml_argv(value: object) -> list[str]:
    # A list is one argument per item; a string is split as the shell would (compose's string form).
    if isinstance(value, list):
        return [str(item) for item in value if item is not None]
    if isinstance(value, str):
        return _split(value)
    return []


def _yaml_container(node: dict) -> LaunchCommand | None:
    """One compose service (entrypoint + command) or Kubernetes container (command + args)."""
    if not any(key in node for key in ("command", "args", "entrypoint")):
        return None
    argv = [
        *_yaml_argv(node.get("entrypoint")),
        *_yaml_argv(node.get("command")),
        *_yaml_argv(node.get("args")),
    ]
    if not argv:
        return None
    inner = _inside_shell(argv)
    if inner is not None:  # command: ["/bin/sh", "-c"], args: ["vllm serve ..."] (vLLM's own k8s docs)
        env = {**_yaml_env(node.get("env", node.get("environment"))), **inner.env}
        return LaunchCommand(argv=inner.argv, env=env, form="yaml")
    return LaunchCommand(
        argv=tuple(argv), env=_yaml_env(node.get("env", node.get("environment"))), form="yaml"
    )


def _yaml_env(value: object) -> dict[str, str]:
    pairs: list[tuple[str, str]] = []
    if isinstance(value, dict):  # compose: environment: {KEY: value}
        pairs = [(str(k), "" if v is None else str(v)) for k, v in value.items()]
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and "name" in item:  # Kubernetes: env: [{name, value}]
                if "value" in item:  # a valueFrom (secretKeyRef...) has no value to show
                    pairs.append((str(item["name"]), str(item["value"])))
            elif isinstance(item, str) and "=" in item:  # compose: environment: ["KEY=value"]
                key, _, val = item.partition("=")
                pairs.append((key, val))
    return _redacted_env(pairs)


# --- shell: a command line, ps output, comments, continuations, VAR=value lines -----------------

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# `ps -ef`: UID PID PPID C STIME TTY TIME CMD; STIME "18:40" or "Dec01", TIME "00:01:02" or "1-02:03:04".
_PS_EF = re.compile(r"^\S+\s+\d+\s+\d+\s+\d+\s+\S+\s+\S+\s+(?:\d+-)?\d+:\d+(?::\d+)?\s+(?P<cmd>\S.*)$")
# `ps aux`: USER PID %CPU %MEM VSZ RSS TTY STAT START TIME COMMAND.
_PS_AUX = re.compile(
    r"^\S+\s+\d+\s+[\d.]+\s+[\d.]+\s+\d+\s+\d+\s+\S+\s+\S+\s+\S+\s+\d+:\d+(?:[.:]\d+)?\s+(?P<cmd>\S.*)$"
)
_PS_HEADER = re.compile(r"^\s*(?:UID|USER)\s+PID\s")


def _from_shell(text: str) -> LaunchCommand:
    env: list[tuple[str, str]] = []
    commands: list[tuple[list[str], str]] = []
    for line in _logical_lines(text):
        if _PS_HEADER.match(line):
            continue
        ps = _PS_EF.match(line) or _PS_AUX.match(line)
        form = "ps" if ps else "shell"
        tokens = _split(ps.group("cmd") if ps else line)
        if tokens[:1] == ["export"] or tokens[:1] == ["env:"]:
            # `export VAR=value`; the H200 captures' "env: VAR=value ... (note)" line.
            env += [_pair(t) for t in tokens[1:] if _ASSIGNMENT.match(t)]
            continue
        while tokens and _ASSIGNMENT.match(tokens[0]):  # `VAR=value cmd ...` or a `VAR=value` line
            env.append(_pair(tokens.pop(0)))
        if tokens[:1] == ["env"]:  # `env VAR=value cmd ...`
            tokens.pop(0)
            while tokens and _ASSIGNMENT.match(tokens[0]):
                env.append(_pair(tokens.pop(0)))
        inner = _inside_shell(tokens)
        if inner is not None:  # `sh -c "vllm serve ..."`, as ps shows a container's entrypoint
            env += list(inner.env.items())
            tokens = list(inner.argv)
        if tokens:
            commands.append((tokens, form))
    if not commands:
        return LaunchCommand(argv=(), env=_redacted_env(env))
    argv, form = max(commands, key=lambda c: _score(c[0]))
    if _score(argv) <= 0:
        return LaunchCommand(argv=(), env=_redacted_env(env))
    return LaunchCommand(argv=tuple(argv), env=_redacted_env(env), form=form)


_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ash"})


def _inside_shell(argv: Sequence[str]) -> LaunchCommand | None:
    """The command a `sh -c SCRIPT` runs, read as shell text; None when argv is not a shell's."""
    if not argv or argv[0].rsplit("/", 1)[-1] not in _SHELLS or "-c" not in argv[1:]:
        return None
    rest = list(argv[argv.index("-c") + 1 :])
    if not rest:
        return None
    # From YAML the script is one argument; from ps it arrives already split on spaces.
    return _from_shell(rest[0] if len(rest) == 1 else " ".join(rest))


def _logical_lines(text: str) -> list[str]:
    """Lines with `#` comment lines dropped and `\\`-continued lines joined."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    if pending.strip():
        lines.append(pending.strip())
    return lines


def _score(argv: Sequence[str]) -> int:
    """How much a line looks like the vLLM server: its flags, and more if it names vLLM.

    `ps -ef | grep vllm` also lists EngineCore (no flags) and the grep itself, and a capture's flags.txt
    has "load: concurrency=8" lines after the command: the line with the most flags wins.
    """
    if argv and argv[0] in ("grep", "egrep", "pgrep", "rg"):
        return 0
    flags = sum(1 for token in argv if token.startswith("--"))
    names_vllm = any("vllm" in token.lower() for token in argv)
    return flags + (100 if names_vllm and flags else 0)


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote: ps output does not quote arguments
        return line.split()


def _pair(assignment: str) -> tuple[str, str]:
    key, _, value = assignment.partition("=")
    return key, value


def _redacted_env(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in pairs:
        # redact.py decides which names are secrets (HF_TOKEN, VLLM_API_KEY, ...): one place per policy.
        shown = redact_command_line(f"{key}={value}")
        out[key] = shown.partition("=")[2]
    return out
