"""Remove secrets from command lines, URLs, headers and messages before they are stored or shown.

The one redactor: every output path (terminal, bundle files, JSON, error messages, exporter labels)
goes through `redact_command_line`, `redact_url`, `redact_headers` or `redact_text`.

The doctor records the vLLM command line (flags.txt, processes.csv, the report) because the flags are
half the diagnosis. Those command lines can carry an `--api-key`, a Hugging Face token, an
`Authorization` header or a URL with a password in it; none of that may reach a bundle that users send
around. The secret is replaced by `***`; the name of the flag stays, because "an API key is set" is
itself useful to know.

Pure string work, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MASK = "***"

# A flag whose NAME ends in one of these words carries a secret: --api-key, --hf-token, --token,
# --db-password. Whole words only, so --max-num-batched-tokens and --tokenizer are left alone.
_SECRET_WORD = r"(?:api[-_]?key|token|secret|password|passwd|credentials?)"
_SECRET_FLAG_NAME = rf"--?(?:[A-Za-z0-9]+[-_])*?{_SECRET_WORD}"

# `--api-key VALUE` / `--api-key=VALUE` inside one string. A separated value that starts with "-" is the
# next flag (e.g. vLLM's `--hf-token` may be given with no value), so it is not taken as the secret.
_FLAG_IN_TEXT = re.compile(
    rf"""(?P<flag>(?<![^\s"'])(?:{_SECRET_FLAG_NAME}))(?:(?P<eq>=)|(?P<ws>\s+))"""
    rf"""(?P<val>"[^"]*"|'[^']*'|(?(eq)\S*|(?!-)\S+))""",
    re.IGNORECASE,
)
_FLAG_ALONE = re.compile(rf"{_SECRET_FLAG_NAME}", re.IGNORECASE)
_FLAG_WITH_VALUE = re.compile(rf"(?P<flag>{_SECRET_FLAG_NAME})=(?P<val>.*)", re.IGNORECASE | re.DOTALL)

# `Authorization: Bearer abc`, `authorization=Basic abc`, and a bare `Bearer abc`.
_AUTH_HEADER = re.compile(
    r"(?P<head>\b(?:proxy-)?authorization\s*[:=]\s*(?:(?:bearer|basic|token|digest)\s+)?)(?P<val>[^\s'\"]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<head>\bbearer\s+)(?P<val>(?!\*\*\*)[^\s'\"]+)", re.IGNORECASE)

# Environment assignments such as `HF_TOKEN=hf_abc`, `VLLM_API_KEY=abc`, `OPENAI_API_KEY=abc`,
# `HUGGING_FACE_HUB_TOKEN=abc`, `AWS_SECRET_ACCESS_KEY=abc`. Upper case only, as environment names are;
# `MAX_TOKENS=5` does not end in a secret word and is kept.
_ENV_ASSIGN = re.compile(
    r"(?P<head>(?<![\w-])[A-Z0-9_]*(?:API_KEY|APIKEY|TOKEN|SECRET|SECRET_ACCESS_KEY|PASSWORD|PASSWD)=)"
    r"(?P<val>\"[^\"]*\"|'[^']*'|[^\s'\"]*)"
)

# JSON passed as a flag value (e.g. a connector config): "api_key": "abc".
_JSON_SECRET = re.compile(
    r"(?P<head>[\"'](?:[A-Za-z0-9]+[-_])*?(?:api[-_]?key|token|secret|password|passwd)[\"']\s*:\s*[\"'])"
    r"(?P<val>[^\"']*)",
    re.IGNORECASE,
)

# URL userinfo: scheme://user:pass@host -> scheme://user:***@host; scheme://token@host -> scheme://***@host.
_URL_USERINFO = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^\s/@'\"]+)@", re.IGNORECASE)

# Secret-looking URL query parameters: ?token=abc&x=1 -> ?token=***&x=1 (also x_token, auth, sig...).
_URL_QUERY = re.compile(
    r"(?P<head>[?&](?:[\w.-]*[-_])?(?:api[-_]?key|apikey|access[-_]token|token|key|secret|password|passwd"
    r"|auth|sig|signature|credentials?)=)"
    r"(?P<val>[^&#\s'\"]*)",
    re.IGNORECASE,
)

# vLLM's --api-key takes several keys (argparse nargs="+"): every value up to the next flag is a key.
_API_KEYS = re.compile(
    r"""(?P<flag>(?<![^\s"'])--api[-_]key)(?P<vals>(?:\s+(?!-)(?:"[^"]*"|'[^']*'|\S+))+)""",
    re.IGNORECASE,
)
_ONE_VALUE = re.compile(r"""(?P<ws>\s+)(?P<val>"[^"]*"|'[^']*'|\S+)""")

# Header and key:value / key=value forms in free text: `X-Api-Key: abc`, `token: abc`, `api_key=abc`,
# `password = abc`. The name ends in a secret word (so `max_tokens=5` and `tokenizer: x` are kept).
_KEY_VALUE = re.compile(
    r"(?P<head>(?<![\w-])(?:[A-Za-z0-9]+[-_])*(?:api[-_]?key|apikey|key|token|secret|password|passwd"
    r"|credentials?)\s*[:=]\s*)(?P<val>\"[^\"]*\"|'[^']*'|(?!\*\*\*)[^\s'\",;&]+)",
    re.IGNORECASE,
)

# A header carries a secret when its name says so: Authorization, Cookie, *-key, anything with "token".
_SECRET_HEADER = re.compile(
    r"^(?:(?:proxy-)?authorization|cookie|set-cookie|.*[-_]key|.*token.*|.*secret.*|.*password.*|api[-_]?key)$",
    re.IGNORECASE,
)


def _mask_val(match: re.Match[str]) -> str:
    value = match.group("val")
    if not value:
        return match.group(0)
    quote = value[0] if value[0] in "\"'" and len(value) >= 2 and value[-1] == value[0] else ""
    start, end = match.span("val")
    whole_start = match.start(0)
    return (
        match.group(0)[: start - whole_start] + f"{quote}{MASK}{quote}" + match.group(0)[end - whole_start :]
    )


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    user, sep, _password = userinfo.partition(":")
    masked = f"{user}:{MASK}" if sep else MASK
    return f"{match.group('head')}{masked}@"


def _mask_api_keys(match: re.Match[str]) -> str:
    def one(m: re.Match[str]) -> str:
        value = m.group("val")
        quote = value[0] if value[0] in "\"'" and len(value) >= 2 and value[-1] == value[0] else ""
        return f"{m.group('ws')}{quote}{MASK}{quote}"

    values = _ONE_VALUE.sub(one, match.group("vals"))
    return match.group("flag") + values


def _redact_text(text: str) -> str:
    """Every pattern that can be judged inside one string (a whole command line, or one argument)."""
    text = _API_KEYS.sub(_mask_api_keys, text)
    text = _FLAG_IN_TEXT.sub(_mask_val, text)
    text = _AUTH_HEADER.sub(_mask_val, text)
    text = _BEARER.sub(_mask_val, text)
    text = _ENV_ASSIGN.sub(_mask_val, text)
    text = _JSON_SECRET.sub(_mask_val, text)
    text = _URL_USERINFO.sub(_mask_userinfo, text)
    return _URL_QUERY.sub(_mask_val, text)


def _redact_args(args: Sequence[str]) -> list[str]:
    """argv form: the value of `--api-key VALUE` is the next argument, whatever it contains; after
    `--api-key` every argument up to the next flag is a key (vLLM takes several)."""
    out: list[str] = []
    secret_next = False
    keys_follow = False
    for arg in args:
        if keys_follow and not arg.startswith("-"):
            out.append(MASK)
            continue
        keys_follow = False
        if secret_next:
            secret_next = False
            # vLLM's --hf-token takes an optional value: a following flag is not the secret.
            if not arg.startswith("-"):
                out.append(MASK)
                continue
        if _FLAG_ALONE.fullmatch(arg):
            secret_next = True
            keys_follow = arg.lower().replace("_", "-") == "--api-key"
            out.append(arg)
            continue
        with_value = _FLAG_WITH_VALUE.fullmatch(arg)
        if with_value:
            out.append(f"{with_value.group('flag')}={MASK}")
            continue
        out.append(_redact_text(arg))
    return out


def redact_command_line(cmd: str | Sequence[str]) -> str:
    """The command line as one display string with every secret replaced by `***`.

    `cmd` is either one string (as `ps` shows it, or a flags.txt line) or an argv list (as psutil's
    `cmdline()` returns it; joined with single spaces, as `ps` does).
    """
    if isinstance(cmd, str):
        return _redact_text(cmd)
    return " ".join(_redact_args(list(cmd)))


def redact_url(url: str) -> str:
    """A URL fit to show: `http://user:pw@h/?token=t` -> `http://user:***@h/?token=***`."""
    return _URL_QUERY.sub(_mask_val, _URL_USERINFO.sub(_mask_userinfo, url))


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers fit to show or save: Authorization, X-Api-Key, any *-key and *token* header masked."""
    return {k: (MASK if _SECRET_HEADER.match(k.strip()) else redact_text(v)) for k, v in headers.items()}


def redact_text(text: str) -> str:
    """Free text (an error message, a log line, a label): command-line forms, URLs, headers and
    `key: value` / `key=value` forms whose key names a secret."""
    return _KEY_VALUE.sub(_mask_val, _redact_text(text))
