"""Which ClickHouse failures are transient (retry the same rows) and which may be the data's.

The stream retries a transient failure with back-off and never blames the data for it; any
other failure may be caused by the rows, so the stream isolates the rows that fail again (see
``stream.isolation``). When unsure, *not* transient is the safe answer: isolation re-checks the
sink before it dead-letters anything.
"""

from __future__ import annotations

import re

from clickhouse_connect.driver.exceptions import OperationalError

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


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says ClickHouse is unreachable, overloaded or timing out."""
    if isinstance(exc, (OSError, TimeoutError, OperationalError)):
        return True
    code = getattr(exc, "code", None)
    if not isinstance(code, int):
        found = _CODE.search(str(exc))
        code = int(found.group(1)) if found else None
    return code in TRANSIENT_CODES
