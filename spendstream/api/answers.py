"""What one free-SQL answer may cost in memory (``POST /sql``).

ClickHouse bounds a result by its own bytes (``api.max_result_bytes``), but Python holds each
value as an object behind an 8-byte pointer and JSON spells it again: ``arrayWithConstant(60e6,
0)`` is 60 MB to ClickHouse, ~2 GB in the worker and 180 MB of JSON. So an answer is built one
at a time (:data:`ONE_AT_A_TIME`: answers do not add up across parallel requests), holds at most
``max_result_bytes / 8`` values (counted before any copy is made) and its JSON at most
``max_result_bytes`` bytes; otherwise a 413 says to add a LIMIT or aggregate.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException
from fastapi.responses import Response

from spendstream.errors import BusyError
from spendstream.sinks.access import QueryResult, jsonable

POINTER_BYTES = 8  # the least a decoded value costs: a pointer in its list
ONE_AT_A_TIME = threading.BoundedSemaphore(1)


def too_large(what: str, limit: int) -> HTTPException:
    return HTTPException(
        413,
        f"the answer holds more than {limit:,} {what} (from api.max_result_bytes): add a LIMIT, "
        "select fewer columns or aggregate (e.g. count(), sum(), arraySlice(x, 1, 100))",
    )


def count_values(rows: list[list[Any]], budget: int) -> int:
    """The values in ``rows`` (array, map and tuple elements each count), counted until more
    than ``budget``: cheap, no copy."""
    count = 0
    stack: list[Any] = [rows]
    while stack:
        value = stack.pop()
        if isinstance(value, list | tuple | dict):
            count += len(value)
            if count > budget:
                return count
            items = value.values() if isinstance(value, dict) else value
            stack.extend(item for item in items if isinstance(item, list | tuple | dict))
    return count


def bounded_table(
    run: Callable[[], QueryResult], max_result_bytes: int, wait_s: float, **extra: Any
) -> Response:
    """``run()``'s table as JSON within the bounds (module docstring); BusyError (429) when
    another answer is still being built after ``wait_s``."""
    if not ONE_AT_A_TIME.acquire(timeout=wait_s):
        raise BusyError("another free-SQL answer is being built; retry shortly", wait_s)
    try:
        result = run()
        values = max_result_bytes // POINTER_BYTES
        if count_values(result.rows, values) > values:
            raise too_large("values", values)
        body = json.dumps(jsonable({**extra, "columns": result.columns, "rows": result.rows}))
        if len(body) > max_result_bytes:
            raise too_large("bytes of JSON", max_result_bytes)
        return Response(body.encode(), 200, media_type="application/json")
    finally:
        ONE_AT_A_TIME.release()
