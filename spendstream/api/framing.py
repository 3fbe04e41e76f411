"""Checks on a request's head the guard makes before any route runs: message framing (request
smuggling), the ``Host`` header (DNS rebinding), and the security headers every answer gets.

Framing: the API is served by uvicorn on h11, which reads a request carrying both
``Content-Length`` and ``Transfer-Encoding: chunked`` by its chunks (RFC 9112 §6.1) and serves
what follows the last chunk as the next request on the connection; a proxy in front that
frames by ``Content-Length`` would forward that "body" as part of one request. Such a request
is refused (400) and the connection closed, so nothing after it is read.

Host: a page on an attacker's domain that re-resolves to 127.0.0.1 (DNS rebinding) reaches the
API with its own name in ``Host``; only the configured names, the bind address and the loopback
names are answered (400 otherwise). ``/healthz`` answers any host (orchestrators probe it by
address, and it tells nothing).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from spendstream.config.network import host_name

OPEN_PATHS = frozenset({"/healthz"})
# Sent with every answer unless the route set its own (the dashboard's pages have their CSP).
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
)
_HOST_HEADER = re.compile(r"^(?P<name>\[[^\]]*\]|[^:\[\]]*)(?::\d{1,5})?$")


def framing_problem(headers: Mapping[str, str]) -> str | None:
    """Why a request's framing is ambiguous, or None."""
    if "transfer-encoding" in headers and "content-length" in headers:
        return (
            "a request may not carry both Content-Length and Transfer-Encoding (an ambiguous "
            "length is how requests are smuggled): send one of them"
        )
    return None


def host_problem(
    path: str, headers: Mapping[str, str], allowed: frozenset[str] | None
) -> str | None:
    """Why the ``Host`` header is not answered here, or None (``allowed`` None: any host)."""
    if allowed is None or path in OPEN_PATHS:
        return None
    header = headers.get("host", "")
    match = _HOST_HEADER.match(header.strip())
    name = host_name(match["name"]) if match else None
    if name is None:
        return f"Host header {header[:100]!r} is not a host name (send Host: name[:port])"
    if name not in allowed:
        return (
            f"this API does not answer to host {name[:100]!r}; an operator can add it to "
            "[api] allowed_hosts"
        )
    return None


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` plus each of :data:`SECURITY_HEADERS` the response did not set itself."""
    present = {name.lower() for name, _ in headers}
    return headers + [(name, value) for name, value in SECURITY_HEADERS if name not in present]
