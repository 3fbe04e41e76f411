"""When the ledger first stored each of some event ids: the read behind ``stream.stamps``.

An event sent with ``event_id`` but no ``event_time`` gets its time from the worker; a copy of it
(a retry, a redelivery) must get the same time, or the ledger's sort key
``(toStartOfMinute(event_time), team, model, event_id)`` keeps it as a second row. The ledger's
``bloom_filter`` index on ``event_id`` and its monthly partitions keep this read to the granules
that may hold the ids, within ``since`` (docs/event-format.md gives the cost measured).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

FIRST_TIMES_SQL = """
SELECT event_id, min(event_time)
FROM ledger
WHERE event_id IN {ids:Array(String)} AND event_time >= {since:DateTime64(3, 'UTC')}
GROUP BY event_id
"""


def first_times(client: Client, ids: Sequence[str], since: datetime) -> dict[str, datetime]:
    """``event_id -> earliest event_time`` for those of ``ids`` the ledger holds at or after
    ``since`` (rows not merged yet count: the earliest copy wins)."""
    if not ids:
        return {}
    result = client.query(FIRST_TIMES_SQL, parameters={"ids": list(ids), "since": since})
    return {str(row[0]): _utc(row[1]) for row in result.result_rows}


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
