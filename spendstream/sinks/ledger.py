"""The ledger writer: one row per priced event, then rollups recomputed for the touched windows.

Contract: :meth:`LedgerWriter.write` is blocking and all-or-nothing per call (one INSERT), safe to
retry with the same rows (insert deduplication token + ReplacingMergeTree on the event). Call it
from one thread; the stream worker runs it in a dedicated executor so the event loop keeps
heartbeating while ClickHouse works (or is down).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.client import Client

from spendstream.sinks.entry import LEDGER_COLUMNS, KafkaOrigin, LedgerEntry
from spendstream.sinks.migrations import (
    COST_COLUMNS,
    ROLLUP_DIMENSIONS,
    ROLLUP_TABLES,
    TOKEN_COLUMNS,
    UNIT_ROLLUP_COLUMNS,
)

WINDOW_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def window_starts(times: Iterable[datetime], unit: str) -> list[datetime]:
    """Distinct window starts (UTC, aligned to ``unit``) covering ``times``, sorted."""
    size = WINDOW_SECONDS[unit]
    starts = {int(moment.timestamp()) // size * size for moment in times}
    return [datetime.fromtimestamp(start, UTC) for start in sorted(starts)]


_COUNTS = ("events", "requests", "unpriced_events")
_SUMMED = (*TOKEN_COLUMNS, *COST_COLUMNS, "cost_total")


def _rollup_columns() -> str:
    """The rollup columns every INSERT…SELECT below fills, in its SELECT order."""
    units = (name for name, _kind, _sum in UNIT_ROLLUP_COLUMNS)
    names = ("window_start", *ROLLUP_DIMENSIONS, *_COUNTS, *_SUMMED, *units, "computed_at")
    return ", ".join(names)


def _unit_sums() -> str:
    return ", ".join(f"{agg}({name}) AS {name}" for name, _kind, agg in UNIT_ROLLUP_COLUMNS)


def rollup_from_ledger_sql(unit: str) -> str:
    """INSERT…SELECT recomputing ``unit`` windows from the deduplicated ledger.

    Parameters: ``starts`` (window starts), ``lo``/``hi`` (time range bounding them).
    """
    dims = ", ".join(ROLLUP_DIMENSIONS)
    sums = ", ".join(f"sum({name}) AS {name}" for name in _SUMMED)
    return (
        f"INSERT INTO {ROLLUP_TABLES[unit]} ({_rollup_columns()}) "
        f"SELECT toStartOfInterval(event_time, INTERVAL 1 {unit}) AS window_start, {dims}, "
        "count() AS events, sum(request_count) AS requests, countIf(NOT priced) AS "
        f"unpriced_events, {sums}, {_unit_sums()}, now64(6) "
        "FROM ledger FINAL "
        "WHERE event_time >= {lo:DateTime64(3)} AND event_time < {hi:DateTime64(3)} "
        "AND toDateTime(toStartOfInterval(event_time, INTERVAL 1 " + unit + ")) "
        "IN {starts:Array(DateTime)} "
        f"GROUP BY window_start, {dims}"
    )


def rollup_from_rollup_sql(unit: str, source_unit: str) -> str:
    """INSERT…SELECT recomputing ``unit`` windows from the finer ``source_unit`` rollup."""
    dims = ", ".join(ROLLUP_DIMENSIONS)
    sums = ", ".join(f"sum({name}) AS {name}" for name in (*_COUNTS, *_SUMMED))
    return (
        f"INSERT INTO {ROLLUP_TABLES[unit]} ({_rollup_columns()}) "
        f"SELECT toStartOfInterval(window_start, INTERVAL 1 {unit}) AS ws, {dims}, {sums}, "
        f"{_unit_sums()}, now64(6) FROM {ROLLUP_TABLES[source_unit]} FINAL "
        "WHERE window_start >= {lo:DateTime} AND window_start < {hi:DateTime} "
        f"AND toStartOfInterval(window_start, INTERVAL 1 {unit}) IN {{starts:Array(DateTime)}} "
        f"GROUP BY ws, {dims}"
    )


class LedgerWriter:
    """Writes ledger rows and keeps the minute/hour/day rollups in step with them."""

    def __init__(self, client: Client, price_version: int) -> None:
        self.client = client
        self.price_version = price_version

    def write(self, entries: Sequence[LedgerEntry]) -> None:
        """Insert ``entries`` (one INSERT), then recompute every window they touch."""
        self.insert(entries)
        self.refresh_rollups([entry.event.event_time for entry in entries])

    def insert(self, entries: Sequence[LedgerEntry]) -> None:
        """Insert ``entries`` in one all-or-nothing INSERT (rollups untouched)."""
        if not entries:
            return
        now = datetime.now(UTC)
        rows = [entry.row(self.price_version, now) for entry in entries]
        # Same events at the same price version: a retry, stored once. A newer version is not.
        token = hashlib.sha256(
            f"{self.price_version}\n".encode()
            + "\n".join(sorted(entry.event.event_id for entry in entries)).encode()
        ).hexdigest()
        self.client.insert(
            "ledger",
            rows,
            column_names=LEDGER_COLUMNS,
            settings={"insert_deduplication_token": token},
        )

    def ping(self) -> None:
        """Raise when ClickHouse cannot answer a trivial query (tells outages from bad rows)."""
        self.client.command("SELECT 1")

    def refresh_rollups(self, times: Sequence[datetime]) -> None:
        """Recompute the minute, hour and day windows containing ``times`` from the ledger."""
        if not times:
            return
        minutes = window_starts(times, "minute")
        self.client.command(
            rollup_from_ledger_sql("minute"),
            parameters={
                "starts": minutes,
                "lo": minutes[0],
                "hi": minutes[-1] + timedelta(minutes=1),
            },
        )
        for unit, source in (("hour", "minute"), ("day", "hour")):
            starts = window_starts(times, unit)
            self.client.command(
                rollup_from_rollup_sql(unit, source),
                parameters={
                    "starts": starts,
                    "lo": starts[0],
                    "hi": starts[-1] + timedelta(seconds=WINDOW_SECONDS[unit]),
                },
            )


def register_price_version(client: Client, catalog_digest: str) -> int:
    """The stream's price version for ``catalog_digest``, registering a new one when needed."""
    found = client.query(
        "SELECT max(version) FROM price_versions FINAL "
        "WHERE kind = 'stream' AND catalog_digest = {digest:String}",
        parameters={"digest": catalog_digest},
    ).result_rows
    if found and found[0][0]:
        return int(found[0][0])
    return next_price_version(client, "stream", catalog_digest)


def next_price_version(
    client: Client,
    kind: str,
    catalog_digest: str,
    period: tuple[datetime, datetime] | None = None,
    note: str = "",
) -> int:
    """Allocate and record the next price version number."""
    latest = client.query("SELECT max(version) FROM price_versions").result_rows
    version = int(latest[0][0] or 0) + 1
    start, end = period if period else (None, None)
    client.insert(
        "price_versions",
        [[version, kind, catalog_digest, datetime.now(UTC), start, end, note]],
        column_names=[
            "version",
            "kind",
            "catalog_digest",
            "created_at",
            "period_start",
            "period_end",
            "note",
        ],
    )
    return version


__all__ = [
    "KafkaOrigin",
    "LedgerEntry",
    "LedgerWriter",
    "next_price_version",
    "register_price_version",
]
