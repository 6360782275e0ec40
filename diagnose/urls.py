"""The one grammar for a vLLM server's address (`--url`), and the one loopback check.

Every command that takes `--url` reads it here, so what `collect` accepts, `check --stress` and `stress`
accept too. Accepted, as people paste it:

    localhost:8000   127.0.0.1:8000   [::1]:8000   http://h:8000   https://h/prefix
    http://h:8000/v1   http://h:8000/metrics   http://h:8000/v1/rerank   (an endpoint path is split off)

Credentials in the URL (`http://user:pw@h`) are never kept: the key goes in `--api-key`, and the base URL
ends up in reports and bundles. A URL that is shown (an error message) goes through diagnose/redact.py.
Pure string work, no I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from diagnose.errors import DoctorError
from diagnose.exit_status import ExitStatus
from diagnose.redact import redact_command_line

EXAMPLE = "--url http://127.0.0.1:8000 (or localhost:8000)"

# Paths vLLM serves that people paste with the address; split off so the base is the server root.
# Longest first, so /v1/rerank is not read as /v1 + rerank.
KNOWN_PATHS = tuple(
    sorted(
        (
            "/v1/rerank",
            "/v2/rerank",
            "/rerank",
            "/v1/score",
            "/score",
            "/v1/models",
            "/metrics",
            "/health",
            "/version",
            "/v1",
        ),
        key=len,
        reverse=True,
    )
)


@dataclass(frozen=True, slots=True)
class ServerUrl:
    scheme: str  # "http" or "https"
    host: str  # no brackets, lower case: "127.0.0.1", "::1", "vllm.internal"
    port: int | None  # as written; None when the URL gave none (see `effective_port`)
    prefix: str  # path before the known vLLM path, no trailing slash ("" for the server root)
    path: str | None  # the known vLLM path split off (one of KNOWN_PATHS), or None

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else (443 if self.scheme == "https" else 80)

    @property
    def base(self) -> str:
        """scheme://host[:port][/prefix]: no credentials, no trailing slash, no vLLM path."""
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            netloc += f":{self.port}"
        return urlunsplit((self.scheme, netloc, self.prefix, "", ""))

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)


def shown(url: str) -> str:
    """`url` as it may appear in a message: userinfo and secret query values masked."""
    return redact_command_line(url.strip())


def _bad(url: str, why: str, what: str) -> DoctorError:
    return DoctorError(f"{what} {shown(url)!r} {why}", f"pass e.g. {EXAMPLE}", ExitStatus.USAGE)


def parse_server_url(url: str, what: str = "--url") -> ServerUrl:
    """Parse `--url`; a DoctorError (exit 2, usage) naming the fix when it is not a server address."""
    text = url.strip()
    if not text:
        raise DoctorError(f"{what} is empty", f"pass e.g. {EXAMPLE}", ExitStatus.USAGE)
    if any(c.isspace() for c in text):
        raise _bad(url, "has a space in it", what)
    if "://" not in text:
        # `localhost:8000` would otherwise read as scheme "localhost"; no scheme means plain HTTP.
        text = "http://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _bad(url, f"is not http(s) (scheme {scheme!r})", what)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if netloc.count(":") > 1 and not netloc.startswith("["):
        raise _bad(url, "has an IPv6 address without brackets", what)
    try:
        host = parts.hostname
        port = parts.port
    except ValueError as err:  # "Port out of range", "Port could not be cast", bad brackets
        raise _bad(url, f"has a bad port or host ({err})", what) from None
    if not host:
        raise _bad(url, "has no host", what)
    if netloc.endswith(":"):
        raise _bad(url, "ends in ':' with no port", what)
    if port == 0:
        raise _bad(url, "has port 0", what)
    prefix = parts.path.rstrip("/")
    known: str | None = None
    for candidate in KNOWN_PATHS:
        if prefix.endswith(candidate):
            known = candidate
            prefix = prefix[: -len(candidate)]
            break
    return ServerUrl(scheme=scheme, host=host.lower(), port=port, prefix=prefix, path=known)


def base_url(url: str, what: str = "--url") -> str:
    """'localhost:8000', 'http://h:8000/v1', 'http://h:8000/metrics' -> 'http://h:8000'."""
    return parse_server_url(url, what).base


def is_loopback_host(host: str) -> bool:
    """True for localhost, *.localhost, 127.0.0.0/8, ::1 and ::ffff:127.x — this machine, by address.

    A host NAME other than localhost is not trusted to be this machine: it may resolve anywhere.
    """
    host = host.strip().strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id (fe80::1%eth0)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
