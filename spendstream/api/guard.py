"""ASGI guard in front of every route: JSON bodies only, bounded bodies, no cross-site writes.

- A request with both ``Content-Length`` and ``Transfer-Encoding`` is refused (400) and its
  connection closed; so is a ``Host`` the API does not answer to (400), see
  :mod:`spendstream.api.framing`.
- A request with a body must say ``Content-Type: application/json`` (or NDJSON, for ingest,
  or a type a path names in ``path_types``: ``text/csv`` for the revenue import) (415): HTML
  forms and "simple" cross-site POSTs (``text/plain``, form encodings) never reach a route.
- Bodies over ``max_body_bytes`` (or the path's own :class:`BodyLimit`) are refused (413), by
  ``Content-Length`` or while streaming; the answer names the setting that limit comes from.
- A body sent with a ``Content-Encoding`` other than ``identity`` (gzip, ...) is refused (415
  naming it): no route decodes one, and each would otherwise read compressed bytes as text.
- A JSON body must decode within bounds (:func:`spendstream.jsonbody.decode_json`: nesting,
  integer size) before any route parses it (400 naming the problem). NDJSON bodies are decoded
  line by line by their routes, and every route that reads a body (ingest, OTLP/JSON, revenue)
  does so with ``decode_json`` itself, whatever the body's type says: never ``json.loads``.
- An unsafe method whose ``Origin`` is not this server's own host is refused (403), so a page on
  another site cannot act with a browser's session cookie. No CORS headers are ever sent, so a
  cross-origin preflight fails in the browser.
- Every answer carries the security headers of :data:`~spendstream.api.framing.SECURITY_HEADERS`
  (``X-Content-Type-Options: nosniff``, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spendstream.api.framing import (
    framing_problem,
    host_problem,
    with_security_headers,
)
from spendstream.config.network import LOOPBACK_NAMES
from spendstream.jsonbody import JsonBodyError, decode_json

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# None of these is a CORS-safelisted type: a cross-site page cannot send them without a preflight.
JSON_TYPES = frozenset({"application/json", "application/x-ndjson", "application/jsonl"})
# Bodies decoded on the event loop up to this size; larger ones in a worker thread.
INLINE_DECODE_BYTES = 64 * 1024


class BodyLimit(NamedTuple):
    """A path's own body limit and the setting it comes from (named in the 413)."""

    max_bytes: int
    setting: str


async def refuse(send: Send, status: int, detail: str, close: bool = False) -> None:
    """A JSON ``{"detail": ...}`` answer; ``close`` ends the connection after it."""
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def secured(send: Send) -> Send:
    """``send`` adding the security headers to the response's head."""

    async def send_secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": with_security_headers(list(message["headers"]))}
        await send(message)

    return send_secured


async def json_problem(body: bytes) -> str | None:
    """Why ``body`` is not acceptable JSON, or None."""
    try:
        if len(body) <= INLINE_DECODE_BYTES:
            decode_json(body)
        else:
            await run_in_threadpool(decode_json, body)
    except JsonBodyError as exc:
        return str(exc)
    return None


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        path_limits: Mapping[str, BodyLimit] | None = None,
        allowed_hosts: frozenset[str] | None = frozenset(LOOPBACK_NAMES),
        path_types: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        """``allowed_hosts``: the ``Host`` names answered (None: any). ``path_types``: media
        types a path accepts besides JSON; none may be CORS-safelisted (``text/plain``, forms)."""
        self.app = app
        self.default_limit = BodyLimit(max_body_bytes, "api.max_body_bytes")
        self.path_limits = dict(path_limits or {})
        self.path_types = {path: JSON_TYPES | types for path, types in (path_types or {}).items()}
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = secured(send)
        headers: dict[str, str] = {}
        for key, value in scope["headers"]:  # a repeated header's values, comma-joined
            name, text = key.decode("latin-1").lower(), value.decode("latin-1")
            headers[name] = f"{headers[name]}, {text}" if name in headers else text
        framing = framing_problem(headers)
        if framing is not None:
            await refuse(send, 400, framing, close=True)
            return
        host = host_problem(scope["path"], headers, self.allowed_hosts)
        if host is not None:
            await refuse(send, 400, host)
            return
        limit = self.path_limits.get(scope["path"], self.default_limit)
        accepted = self.path_types.get(scope["path"], JSON_TYPES)
        problem = self.problem(scope["method"], headers, limit, accepted)
        if problem is not None:
            await refuse(send, *problem)
            return
        # Read the (bounded) body here, so an overflow is a 413 before any route runs.
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit.max_bytes:
                await refuse(send, 413, too_large(limit))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False
        if body and media_type(headers) == "application/json":
            invalid = await json_problem(body)
            if invalid is not None:
                await refuse(send, 400, invalid)
                return

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: only a disconnect can follow
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def problem(
        self, method: str, headers: dict[str, Any], limit: BodyLimit, accepted: frozenset[str]
    ) -> tuple[int, str] | None:
        length = headers.get("content-length", "")
        has_body = (length not in ("", "0")) or "transfer-encoding" in headers
        if length.isdigit() and int(length) > limit.max_bytes:
            return 413, too_large(limit)
        encoding = headers.get("content-encoding", "").strip().lower()
        if has_body and encoding not in ("", "identity"):
            return 415, (
                f"compressed request bodies are not accepted (Content-Encoding {encoding!r}): "
                "send the body uncompressed, without a Content-Encoding header"
            )
        if has_body:
            media = media_type(headers)
            if media not in accepted:
                others = sorted(accepted - JSON_TYPES)
                also = f" (or {', '.join(others)} here)" if others else ""
                return 415, (
                    f"request bodies must be JSON: send 'Content-Type: application/json'{also} "
                    f"(got {media or 'none'!r})"
                )
        origin = headers.get("origin")
        own_host = headers.get("host", "").lower()
        if method in UNSAFE and origin is not None and urlsplit(origin).netloc.lower() != own_host:
            return 403, (
                f"cross-origin {method} from {origin!r} refused: call the API from its own "
                "origin or without a browser (no CORS)"
            )
        return None


def too_large(limit: BodyLimit) -> str:
    return f"request body over {limit.max_bytes} bytes; send less ({limit.setting})"


def media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()
