"""The API's one mapping from :mod:`spendstream.errors` to answers (RFC 9110, RFC 9457 ids).

- :class:`~spendstream.errors.InputError` → 400 (404, 403, 409 for its subclasses), the message
  saying what to change;
- :class:`~spendstream.errors.UnavailableError` → 503 with ``Retry-After`` (``BusyError``: 429),
  the same seconds in the body's ``retry_after``;
- anything else → 500 ``{"detail": ..., "error_id": ...}``; the same id is logged with the
  traceback (``unexpected error``), so an operator finds the cause from what a caller quotes.

Routes raise these types (or FastAPI's ``HTTPException`` for a status of their own); they never
catch an exception to pick a status.
"""

from __future__ import annotations

import math
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spendstream.errors import (
    BusyError,
    ConflictError,
    ForbiddenError,
    InputError,
    NotFoundError,
    SpendstreamError,
    UnavailableError,
)
from spendstream.logs import get_logger

log = get_logger(__name__)

# The most specific class wins (the first in the exception's MRO found here).
STATUS_BY_CLASS: dict[type[SpendstreamError], int] = {
    NotFoundError: 404,
    ForbiddenError: 403,
    ConflictError: 409,
    InputError: 400,
    BusyError: 429,
    UnavailableError: 503,
}


def status_for(exc: BaseException) -> int | None:
    """The HTTP status of ``exc``, None when it is a bug (500)."""
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_CLASS:
            return STATUS_BY_CLASS[cls]
    return None


def retry_after(exc: UnavailableError) -> str:
    """``Retry-After`` in whole seconds, at least 1."""
    return str(max(1, math.ceil(exc.retry_after_s)))


def error_response(exc: SpendstreamError, request: Request | None = None) -> Response:
    """The answer for a :class:`SpendstreamError` (a bug's 500 for an unmapped one)."""
    status = status_for(exc)
    if status is None:
        method, path = (request.method, request.url.path) if request else ("", "")
        return bug_response(exc, method, path)
    if isinstance(exc, UnavailableError):
        seconds = retry_after(exc)
        return JSONResponse(
            {"detail": str(exc), "retry_after": int(seconds)},
            status_code=status,
            headers={"Retry-After": seconds},
        )
    return JSONResponse({"detail": str(exc)}, status_code=status)


def bug_response(exc: BaseException, method: str, path: str) -> Response:
    """500 with a fresh error id, logged with the traceback."""
    error_id = uuid.uuid4().hex
    log.error(
        "unexpected error",
        error_id=error_id,
        method=method,
        path=path,
        error_type=type(exc).__name__,
        exc_info=exc,
    )
    return JSONResponse(
        {
            "detail": f"internal error (a bug, not your request); quote error id {error_id}",
            "error_id": error_id,
            "instance": f"urn:spendstream:error:{error_id}",
        },
        status_code=500,
    )


async def _spendstream_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SpendstreamError)
    return error_response(exc, request)


class BugBarrier:
    """ASGI middleware: an exception no handler took becomes :func:`bug_response` (when the
    answer has not started; else the connection is dropped as before)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            response = bug_response(exc, scope.get("method", ""), scope.get("path", ""))
            await response(scope, receive, send)


def install_error_mapping(app: FastAPI) -> None:
    """Map :class:`SpendstreamError` by class and any other exception to a logged 500.
    Call after adding the other middleware (the barrier must be outermost)."""
    app.add_exception_handler(SpendstreamError, _spendstream_error)
    app.add_middleware(BugBarrier)
