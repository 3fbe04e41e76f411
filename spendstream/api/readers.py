"""Read-only, limited ClickHouse access for the API (its pool: ``sinks.pool.PooledReader``).

Each client's session is ``readonly=1`` (no writes, no table functions such as ``file()``,
``url()`` or ``remote()``, no setting changes) with time, result and memory limits. A client
serves one query at a time (ClickHouse sessions refuse concurrent queries), so requests borrow
one from the pool. Blocking: call from threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clickhouse_connect.driver.client import Client

from spendstream.config import ApiSettings, Settings
from spendstream.sinks.access import READ_SETTINGS
from spendstream.sinks.client import connect


def limits(api: ApiSettings) -> dict[str, Any]:
    """Session settings of every API query; ``readonly`` last (later changes are refused)."""
    return {
        "max_execution_time": api.max_execution_time_s,
        "max_result_rows": api.max_result_rows,
        "max_result_bytes": api.max_result_bytes,
        "max_rows_to_read": api.max_rows_to_read,
        "result_overflow_mode": "throw",
        "max_memory_usage": api.max_memory_usage,
        **READ_SETTINGS,  # as every reader of ours (the GROUP BY spill)
        "readonly": 1,
    }


def readonly_factory(settings: Settings) -> Callable[[], Client]:
    ch = settings.clickhouse
    return lambda: connect(ch.dsn, ch.database, settings=limits(settings.api))
