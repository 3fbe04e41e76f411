"""The one error hierarchy of spendstream (no imports: every layer, the SDK included, uses it).

Our exception hierarchy::

    SpendstreamError            a failure we raise on purpose; the message says what happened
    ├── InputError              the caller's mistake: the message says what to change
    │   ├── NotFoundError       the thing named does not exist (or is not yours to see)
    │   ├── ForbiddenError      the caller's token may not do this
    │   └── ConflictError       the request contradicts the current state
    └── UnavailableError        storage (ClickHouse, chDB) or the broker cannot be reached now;
        └── BusyError           retry after ``retry_after_s``; nothing was done or lost
                                (BusyError: we are reachable but refuse more load now)

Anything else that escapes (``KeyError``, ``TypeError``, ...) is a bug.

Each class is mapped once per surface: the API (:mod:`spendstream.api.errors`) answers
``InputError`` with a 4xx, ``UnavailableError`` with 503 and ``Retry-After`` (``BusyError``: 429),
any other failure with 500 and an error id that is also logged with the traceback; the CLI
(:mod:`spendstream.cli.errors`) exits 2, 3, 1 and 4 respectively (``docs/cli.md``). Raising
code picks the class; it never picks a status or an exit code.

Existing classes keep their old base beside this one (``EventError`` is still a ``ValueError``),
so code that catches the old bases keeps working.
"""

from __future__ import annotations

DEFAULT_RETRY_AFTER_S = 5.0


class SpendstreamError(Exception):
    """Base of every error spendstream raises on purpose. Not an input error and not an
    outage: a failure the caller cannot fix by changing the request (a provider refused, a
    dead-letter limit was crossed)."""


class InputError(SpendstreamError):
    """The caller's mistake (request, command line, configuration, file): the message says
    what to change. API: 400 (or the subclass's status); CLI: exit 2."""


class NotFoundError(InputError):
    """What the caller named does not exist, or not for this caller. API: 404."""


class ForbiddenError(InputError):
    """The caller is known but may not do this. API: 403."""


class ConflictError(InputError):
    """The request contradicts the current state (a name taken, a part not configured).
    API: 409."""


class UnavailableError(SpendstreamError):
    """Storage or the broker cannot be reached now (refused connection, timeout, a chDB
    directory locked by another process). Nothing was done; the same request may succeed after
    ``retry_after_s``. API: 503 with ``Retry-After``; CLI: exit 3."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = DEFAULT_RETRY_AFTER_S if retry_after_s is None else retry_after_s


class BusyError(UnavailableError):
    """Reachable but refusing more load now (too many events awaiting the broker). API: 429
    with ``Retry-After``; CLI: exit 3."""


__all__ = [
    "DEFAULT_RETRY_AFTER_S",
    "BusyError",
    "ConflictError",
    "ForbiddenError",
    "InputError",
    "NotFoundError",
    "SpendstreamError",
    "UnavailableError",
]
