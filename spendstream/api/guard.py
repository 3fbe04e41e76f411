"""ASGI guard in front of every route: JSON bodies only, bounded bodies, no cross-site writes.

- A request with a body must say ``Content-Type: application/json`` (415): HTML forms and
  "simple" cross-site POSTs (``text/plain``, form encodings) never reach a route.
- Bodies over ``max_body_bytes`` are refused (413), by ``Content-Length`` or while streaming.
- An unsafe method whose ``Origin`` is not this server's own host is refused (403), so a page on
  another site cannot act with a browser's session cookie. No CORS headers are ever sent, so a
  cross-origin preflight fails in the browser.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode(errors="replace") for k, v in scope["headers"]}
        problem = self.problem(scope["method"], headers)
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
            if size > self.max_body_bytes:
                await refuse(send, 413, self.too_large())
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

    def too_large(self) -> str:
        return f"request body over {self.max_body_bytes} bytes; send less (api.max_body_bytes)"

    def problem(self, method: str, headers: dict[str, Any]) -> tuple[int, str] | None:
        length = headers.get("content-length", "")
        has_body = (length not in ("", "0")) or "transfer-encoding" in headers
        if length.isdigit() and int(length) > self.max_body_bytes:
            return 413, self.too_large()
        if has_body:
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
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
