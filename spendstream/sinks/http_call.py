"""One HTTP/1.1 exchange on the standard library, for the CLI's small API client.

httpx costs ~90-190 ms to import (it pulls in ``httpx._main``, and with it Rich, Click and
Pygments, on every import), more than a whole ``spendstream report`` may take; ``http.client``
costs ~25 ms. The wire format is httpx's, so that the worker sees the same requests as before:
query values as ``httpx.QueryParams`` writes them (lists repeated, ``true``/``false``, ``None`` as
empty), JSON bodies compact UTF-8 with NaN refused. What differs: no proxy from ``HTTP_PROXY``
(the client talks to the worker that owns a local chDB directory) and no compression asked for.
``tests/test_http_call.py`` holds both to httpx's own output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

if TYPE_CHECKING:
    import ssl

# What a path keeps unescaped: RFC 3986 path characters, and '%' so that escapes stay escapes.
PATH_SAFE = "/:@!$&'()*+,;=%~"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Sequence[tuple[str, str]]
    content: bytes

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name; repeated ones joined by ``, `` (as httpx does)."""
        wanted = name.lower()
        found = [value for key, value in self.headers if key.lower() == wanted]
        return ", ".join(found) if found else None

    def json(self) -> Any:
        """The body as JSON (``ValueError`` when it is not)."""
        return json.loads(self.content)

    def text(self) -> str:
        """The body as text, in the charset the answer names (UTF-8 when none); bad bytes
        replaced, never an error."""
        charset = "utf-8"
        for part in (self.header("Content-Type") or "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip("\"'")
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")


class NoAnswer(Exception):
    """No HTTP answer came (refused, reset, timed out, TLS refused, not HTTP): the
    ``__cause__`` says which."""


def query_value(value: Any) -> str:
    """One query value as httpx writes it: JSON-style booleans, ``None`` as empty."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    return str(value)


def query_text(params: Mapping[str, Any] | None) -> str:
    """``params`` as a query string (without ``?``); list and tuple values repeat the key."""
    pairs = [
        (str(key), query_value(item))
        for key, value in (params or {}).items()
        for item in (value if isinstance(value, list | tuple) else [value])
    ]
    return urlencode(pairs)


def json_body(value: Any) -> bytes:
    """A JSON request body as httpx encodes one (``ValueError`` for NaN or infinities)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def tls_context() -> ssl.SSLContext:
    """Certificates as httpx finds them: ``$SSL_CERT_FILE``, ``$SSL_CERT_DIR``, else certifi's
    bundle when installed, else the system's."""
    import ssl

    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def exchange(
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float,
) -> Answer:
    """Send one request and read the whole answer; ``timeout_s`` bounds the connection and
    each read. Raises :class:`NoAnswer` when no HTTP answer came."""
    import http.client  # ~25 ms: only when a request is made

    parts = urlsplit(url)
    target = quote(parts.path or "/", safe=PATH_SAFE)
    query = "&".join(text for text in (parts.query, query_text(params)) if text)
    if query:
        target = f"{target}?{query}"
    sent = {"Accept": "*/*", "User-Agent": "spendstream", **(headers or {})}
    connection: http.client.HTTPConnection
    try:
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=timeout_s, context=tls_context()
            )
        elif parts.scheme == "http":
            connection = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=timeout_s
            )
        else:
            raise ValueError(f"{url!r}: not an http:// or https:// URL")
    except ValueError as exc:  # a port that is not a number, or another scheme
        raise NoAnswer(str(exc)) from exc
    try:
        connection.request(method, target, body=body, headers=sent)
        response = connection.getresponse()
        return Answer(response.status, response.getheaders(), response.read())
    except (OSError, http.client.HTTPException) as exc:  # refused, reset, timeout, TLS, garbage
        raise NoAnswer(type(exc).__name__) from exc
    finally:
        connection.close()
