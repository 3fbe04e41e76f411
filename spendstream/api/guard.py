"""ASGI guard in front of every route: JSON bodies only, bounded bodies, no cross-site writes.

- A request with a body must say ``Content-Type: application/json`` (or NDJSON, for ingest)
  (415): HTML forms and "simple" cross-site POSTs (``text/plain``, form encodings) never reach
  a route.
- Bodies over ``max_body_bytes`` (or the path's own limit) are refused (413), by
  ``Content-Length`` or while streaming.
- An unsafe method whose ``Origin`` is not this server's own host is refused (403), so a page on
  another site cannot act with a browser's session cookie. No CORS headers are ever sent, so a
  cross-origin preflight fails in the browser.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# None of these is a CORS-safelisted type: a cross-site page cannot send them without a preflight.
JSON_TYPES = frozenset({"application/json", "application/x-ndjson", "application/jsonl"})


async def refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    def __init__(
        self, app: ASGIApp, max_body_bytes: int, path_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode(errors="replace") for k, v in scope["headers"]}
        limit = self.path_limits.get(scope["path"], self.max_body_bytes)
        problem = self.problem(scope["method"], headers, limit)
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
            if size > limit:
                await refuse(send, 413, self.too_large(limit))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: only a disconnect can follow
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def too_large(self, limit: int) -> str:
        return f"request body over {limit} bytes; send less (api.max_body_bytes)"

    def problem(self, method: str, headers: dict[str, Any], limit: int) -> tuple[int, str] | None:
        length = headers.get("content-length", "")
        has_body = (length not in ("", "0")) or "transfer-encoding" in headers
        if length.isdigit() and int(length) > limit:
            return 413, self.too_large(limit)
        if has_body:
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if media not in JSON_TYPES:
                return 415, (
                    f"request bodies must be JSON: send 'Content-Type: application/json' "
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
