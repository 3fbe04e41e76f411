"""Which ClickHouse failures are transient (retry the same rows) and which may be the data's, and
the one place where the driver's errors become :mod:`spendstream.errors` types.

:func:`storage_errors` wraps every read (``sinks.access``, ``api.readers``): a server that
refuses connections, times out, reports its own state (``TRANSIENT_CODES`` but the per-query
limits) or a chDB directory locked by another process becomes :class:`StorageUnavailable`
(HTTP 503, exit 3); a query over a limit becomes :class:`QueryLimitError` (the caller asked for
too much: 400, exit 2); any other refusal :class:`QueryError`, carrying ClickHouse's ``code``
(the SQL's fault: a bug when spendstream wrote it, the caller's when they did).

The stream retries a transient failure with back-off and never blames the data for it; any
other failure may be caused by the rows, so the stream isolates the rows that fail again (see
``stream.isolation``). When unsure, *not* transient is the safe answer: isolation re-checks the
sink before it dead-letters anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from spendstream.errors import InputError, SpendstreamError, UnavailableError

# ClickHouse error codes that describe the server's state, not the query's data.
TRANSIENT_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        173,  # CANNOT_ALLOCATE_MEMORY
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        319,  # UNKNOWN_STATUS_OF_INSERT
        394,  # QUERY_WAS_CANCELLED
        425,  # SYSTEM_ERROR
        999,  # KEEPER_EXCEPTION
    }
)
_CODE = re.compile(r"Code:\s*(\d+)")


# Per-query limits (``max_execution_time``, ``max_rows_to_read``, ``max_memory_usage``, result
# size): the query asked for too much, the server is fine.
LIMIT_CODES = frozenset(
    {
        158,  # TOO_MANY_ROWS
        159,  # TIMEOUT_EXCEEDED
        160,  # TOO_SLOW
        241,  # MEMORY_LIMIT_EXCEEDED
        307,  # TOO_MANY_BYTES
        396,  # TOO_MANY_ROWS_OR_BYTES
    }
)
UNKNOWN_TABLE = 60
# What clickhouse-connect's chDB backend raises (a ProgrammingError, no code) when another
# process holds the data directory: the driver gives no type for it, so this text is read here,
# at the boundary, and nowhere else.
CHDB_LOCKED = "Unable to open the chdb engine"


class StorageUnavailable(UnavailableError):
    """ClickHouse (or the chDB directory) cannot be reached now."""


class QueryError(SpendstreamError):
    """ClickHouse refused a query; ``code`` is its error code (None when unknown)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class QueryLimitError(QueryError, InputError):
    """The query went over a limit of the API's read-only session: ask for less."""


def error_code(exc: BaseException) -> int | None:
    """ClickHouse's error code of ``exc`` (from the driver, else from ``Code: N`` in its text)."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    found = _CODE.search(str(exc))
    return int(found.group(1)) if found else None


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says ClickHouse is unreachable, overloaded or timing out."""
    if isinstance(exc, (OSError, TimeoutError, OperationalError, UnavailableError)):
        return True
    return error_code(exc) in TRANSIENT_CODES


def first_line(exc: BaseException) -> str:
    """The first line of an error (ClickHouse's may echo the whole query below it)."""
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


def storage_error(exc: BaseException) -> SpendstreamError | None:
    """``exc`` (raised by clickhouse-connect, chDB or the socket below them) as a
    :mod:`spendstream.errors` type; None when it is none of theirs (then it is a bug)."""
    if isinstance(exc, SpendstreamError):
        return exc
    code = error_code(exc) if isinstance(exc, ClickHouseError) else None
    if code in LIMIT_CODES:
        return QueryLimitError(
            f"query over a limit: {first_line(exc)}; ask for less (a shorter period, fewer "
            "groups) or raise the [api] limits",
            code,
        )
    # The reason only: the driver's text names hosts and ports, and unauthenticated callers see
    # this message (a token cannot be checked during an outage). The driver's error is chained.
    if isinstance(exc, ClickHouseError) and CHDB_LOCKED in str(exc):
        return StorageUnavailable(
            "ClickHouse unavailable: another process holds the chDB directory"
        )
    if code in TRANSIENT_CODES:
        return StorageUnavailable(f"ClickHouse unavailable: the server answered error {code}")
    if isinstance(exc, OSError | TimeoutError) or (
        isinstance(exc, OperationalError) and code is None
    ):
        return StorageUnavailable("ClickHouse unavailable: no connection or no answer in time")
    if isinstance(exc, ClickHouseError):
        return QueryError(f"query refused: {first_line(exc)}", code)
    return None


@contextmanager
def storage_errors() -> Iterator[None]:
    """Re-raise the driver's errors inside the block as :func:`storage_error` types."""
    try:
        yield
    except Exception as exc:
        mapped = storage_error(exc)
        if mapped is None or mapped is exc:
            raise
        raise mapped from exc
