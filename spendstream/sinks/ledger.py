"""The ledger writer: one row per priced event, then rollups recomputed for the touched windows.

Only the rollup rows a batch can have changed are recomputed: the windows its events fall in,
and in them only the dimension combinations (keys) of the events written since the last refresh
(:class:`TouchedKeys`). A window's other keys did not change, so recomputing them (what every
batch did before) only re-wrote the same sums; that made a batch's cost grow with the rows of
its hour and day. Each refresh still reads the deduplicated source (``ledger FINAL``, then the
finer rollup ``FINAL``), so replays, crashes and concurrent writers stay exact as before.

Contract: :meth:`LedgerWriter.write` is blocking and all-or-nothing per call (one INSERT), safe to
retry with the same rows (insert deduplication token + ReplacingMergeTree on the event). Call it
from one thread; the stream worker runs it in a dedicated executor so the event loop keeps
heartbeating while ClickHouse works (or is down).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from clickhouse_connect.datatypes.base import ClickHouseType
from clickhouse_connect.driver.client import Client

from spendstream.sinks.columns import insert_types
from spendstream.sinks.entry import LEDGER_COLUMNS, KafkaOrigin, LedgerEntry
from spendstream.sinks.migrations import (
    DIMENSION_TYPES,
    DRIVER_DIMENSIONS,
    DRIVER_TABLES,
    LEAN_DIMENSIONS,
    LEAN_TABLES,
    MEASURE_FROM_LEDGER,
    MEASURES,
    ROLLUP_DIMENSIONS,
    ROLLUP_TABLES,
    UNIT_ROLLUP_COLUMNS,
    USER_DIMENSIONS,
    USER_TABLES,
)

WINDOW_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
# Key-restricted refreshes take the keys as one bound array; past this many (a batch touching
# thousands of users) a full refresh of the windows is cheaper than the filter, and the HTTP
# query string stays far below ClickHouse's limit.
MAX_REFRESH_KEYS = 2_000
# Every dimension a rollup step can be restricted on, in the order of a touched key.
KEY_DIMENSIONS = DRIVER_DIMENSIONS
MAX_VERSION_CLAIMS = 100
PRICE_VERSION_COLUMNS = (
    "version",
    "kind",
    "catalog_digest",
    "created_at",
    "period_start",
    "period_end",
    "note",
    "claimed_by",
)


def window_starts(times: Iterable[datetime], unit: str) -> list[datetime]:
    """Distinct window starts (UTC, aligned to ``unit``) covering ``times``, sorted."""
    size = WINDOW_SECONDS[unit]
    starts = {int(moment.timestamp()) // size * size for moment in times}
    return [datetime.fromtimestamp(start, UTC) for start in sorted(starts)]


def _rollup_columns(dims: Sequence[str] = ROLLUP_DIMENSIONS) -> str:
    """The rollup columns every INSERT…SELECT below fills, in its SELECT order."""
    units = (name for name, _kind, _sum in UNIT_ROLLUP_COLUMNS)
    names = ("window_start", *dims, *MEASURES, *units, "computed_at")
    return ", ".join(names)


def _unit_sums() -> str:
    return ", ".join(f"{agg}({name}) AS {name}" for name, _kind, agg in UNIT_ROLLUP_COLUMNS)


def rollup_from_ledger_sql(
    unit: str, target: str | None = None, dimensions: Sequence[str] = ROLLUP_DIMENSIONS
) -> str:
    """INSERT…SELECT recomputing ``unit`` windows of ``target`` (default: the full ``unit``
    rollup) over ``dimensions`` from the deduplicated ledger.

    Parameters: ``starts`` (window starts), ``lo``/``hi`` (time range bounding them).
    """
    dims = ", ".join(dimensions)
    measures = ", ".join(f"{sql} AS {name}" for name, sql in MEASURE_FROM_LEDGER.items())
    return (
        f"INSERT INTO {target or ROLLUP_TABLES[unit]} ({_rollup_columns(dimensions)}) "
        f"SELECT toStartOfInterval(event_time, INTERVAL 1 {unit}) AS window_start, {dims}, "
        f"{measures}, {_unit_sums()}, now64(6) "
        "FROM ledger FINAL "
        "WHERE event_time >= {lo:DateTime64(3)} AND event_time < {hi:DateTime64(3)} "
        "AND toDateTime(toStartOfInterval(event_time, INTERVAL 1 " + unit + ")) "
        "IN {starts:Array(DateTime)} "
        f"GROUP BY window_start, {dims}"
    )


def rollup_from_rollup_sql(
    unit: str,
    source_unit: str,
    target: str | None = None,
    source: str | None = None,
    dims: Sequence[str] = ROLLUP_DIMENSIONS,
) -> str:
    """INSERT…SELECT recomputing ``unit`` windows of ``target`` (default: the full ``unit``
    rollup) from the finer ``source`` (default: the full ``source_unit`` rollup) over ``dims``."""
    target = target or ROLLUP_TABLES[unit]
    source = source or ROLLUP_TABLES[source_unit]
    group = ", ".join(dims)
    sums = ", ".join(f"sum({name}) AS {name}" for name in MEASURES)
    return (
        f"INSERT INTO {target} ({_rollup_columns(dims)}) "
        f"SELECT toStartOfInterval(window_start, INTERVAL 1 {unit}) AS ws, {group}, {sums}, "
        f"{_unit_sums()}, now64(6) FROM {source} FINAL "
        "WHERE window_start >= {lo:DateTime} AND window_start < {hi:DateTime} "
        f"AND toStartOfInterval(window_start, INTERVAL 1 {unit}) IN {{starts:Array(DateTime)}} "
        f"GROUP BY ws, {group}"
    )


def step_dimensions(sql: str) -> tuple[str, ...]:
    """The dimensions a refresh statement groups by (every statement above ends in
    ``GROUP BY <window>, <dims>``)."""
    return tuple(name.strip() for name in sql.rsplit("GROUP BY ", 1)[1].split(",")[1:])


def keyed_sql(sql: str) -> str | None:
    """``sql`` recomputing only the keys in the parameter ``keys`` (an array of tuples of the
    step's dimensions, or of values for a single dimension); None when a dimension is not one
    of :data:`KEY_DIMENSIONS` (such a step is always refreshed in full)."""
    dims = step_dimensions(sql)
    if not dims or not set(dims) <= set(KEY_DIMENSIONS):
        return None
    types = [DIMENSION_TYPES.get(name, "String") for name in dims]
    if len(dims) == 1:
        condition = f"{dims[0]} IN {{keys:Array({types[0]})}}"
    else:
        condition = f"({', '.join(dims)}) IN {{keys:Array(Tuple({', '.join(types)}))}}"
    head, tail = sql.rsplit(" GROUP BY ", 1)
    return f"{head} AND {condition} GROUP BY {tail}"


def entry_key(entry: LedgerEntry) -> tuple[str | bool, ...]:
    """The rollup key of an entry over :data:`KEY_DIMENSIONS` (as ``LedgerEntry.row`` writes
    its dimensions)."""
    event = entry.event
    tags = event.tags
    return (
        tags.get("team", ""),
        tags.get("app", ""),
        tags.get("env", ""),
        tags.get("feature", ""),
        tags.get("user", ""),
        event.provider,
        event.model,
        event.batch,
    )


# (unit, SQL) refreshed after the minute windows, in order: each reads the one before it.
REFRESH_STEPS: tuple[tuple[str, str], ...] = (
    ("hour", rollup_from_rollup_sql("hour", "minute")),
    ("day", rollup_from_rollup_sql("day", "hour")),
    (
        "hour",
        rollup_from_rollup_sql("hour", "hour", LEAN_TABLES["hour"], dims=LEAN_DIMENSIONS),
    ),
    (
        "day",
        rollup_from_rollup_sql(
            "day", "hour", LEAN_TABLES["day"], LEAN_TABLES["hour"], LEAN_DIMENSIONS
        ),
    ),
    ("hour", rollup_from_rollup_sql("hour", "hour", USER_TABLES["hour"], dims=USER_DIMENSIONS)),
    (
        "day",
        rollup_from_rollup_sql(
            "day", "hour", USER_TABLES["day"], USER_TABLES["hour"], USER_DIMENSIONS
        ),
    ),
    # Explain's drivers rollups (batch as a dimension): the touched minutes again from the
    # ledger, then hour and day from them (docs/explain.md measures the cost).
    ("minute", rollup_from_ledger_sql("minute", DRIVER_TABLES["minute"], DRIVER_DIMENSIONS)),
    *(
        (
            unit,
            rollup_from_rollup_sql(
                unit, source, DRIVER_TABLES[unit], DRIVER_TABLES[source], DRIVER_DIMENSIONS
            ),
        )
        for unit, source in (("hour", "minute"), ("day", "hour"))
    ),
)


class LedgerWriter:
    """Writes ledger rows and keeps the minute/hour/day rollups in step with them."""

    def __init__(
        self,
        client: Client,
        price_version: int,
        steps: Sequence[tuple[str, str]] = REFRESH_STEPS,
        max_refresh_keys: int = MAX_REFRESH_KEYS,
    ) -> None:
        """``steps``: the rollups refreshed after the minute windows (see REFRESH_STEPS);
        ``max_refresh_keys``: past this many touched keys, windows are refreshed in full."""
        self.client = client
        self.max_refresh_keys = max_refresh_keys
        self.price_version = price_version
        self.steps = tuple(steps)
        self.column_types: list[ClickHouseType] | None = None  # inserts skip a DESCRIBE each
        # Keys of every entry handed to insert since the last refresh (a superset of what was
        # stored: recomputing a key that did not change is harmless); empty: refresh in full.
        self.touched: set[tuple[str | bool, ...]] = set()
        self.minute_sql = rollup_from_ledger_sql("minute")
        self.keyed = {sql: keyed_sql(sql) for sql in (self.minute_sql, *(s for _u, s in self.steps))}

    def ledger_column_types(self) -> list[ClickHouseType]:
        if self.column_types is None:
            rows = self.client.query(
                "SELECT name, type FROM system.columns "
                "WHERE database = currentDatabase() AND table = 'ledger'"
            ).result_rows
            found = {str(name): str(kind) for name, kind in rows}
            self.column_types = insert_types([found[name] for name in LEDGER_COLUMNS])
        return self.column_types

    def write(self, entries: Sequence[LedgerEntry]) -> None:
        """Insert ``entries`` (one INSERT), then recompute every window they touch."""
        self.insert(entries)
        self.refresh_rollups([entry.event.event_time for entry in entries])

    def insert(self, entries: Sequence[LedgerEntry]) -> None:
        """Insert ``entries`` in one all-or-nothing INSERT (rollups untouched)."""
        if not entries:
            return
        self.touched.update(entry_key(entry) for entry in entries)
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
            column_types=self.ledger_column_types(),
            settings={"insert_deduplication_token": token},
        )

    def ping(self) -> None:
        """Raise when ClickHouse cannot answer a trivial query (tells outages from bad rows)."""
        self.client.command("SELECT 1")

    def refresh_rollups(self, times: Sequence[datetime]) -> None:
        """Recompute the minute windows containing ``times`` from the ledger, then each step's
        windows from the rollup before it (full hour and day, then the lean hour and day).

        After inserts through this writer, only the keys they touched are recomputed (see the
        module doc); otherwise (a re-rating, a rebuild) every key of the windows is."""
        if not times:
            return
        keys = self.touched if 0 < len(self.touched) <= self.max_refresh_keys else None
        # Per event once: every coarser window is a multiple of a minute, so it comes from the
        # (few) distinct minutes instead of from every event again.
        minutes = window_starts(times, "minute")
        self._refresh_step(self.minute_sql, minutes, minutes[-1] + timedelta(minutes=1), keys)
        for unit, sql in self.steps:
            starts = window_starts(minutes, unit)
            hi = starts[-1] + timedelta(seconds=WINDOW_SECONDS[unit])
            self._refresh_step(sql, starts, hi, keys)
        self.touched = set()

    def _refresh_step(
        self,
        sql: str,
        starts: list[datetime],
        hi: datetime,
        keys: set[tuple[str | bool, ...]] | None,
    ) -> None:
        parameters: dict[str, object] = {"starts": starts, "lo": starts[0], "hi": hi}
        keyed = self.keyed.get(sql) if keys is not None else None
        if keyed is not None and keys is not None:
            dims = step_dimensions(sql)
            positions = [KEY_DIMENSIONS.index(name) for name in dims]
            projected = {tuple(key[i] for i in positions) for key in keys}
            parameters["keys"] = sorted(
                (value[0] for value in projected) if len(dims) == 1 else projected, key=str
            )
            sql = keyed
        self.client.command(sql, parameters=parameters)


def rebuild_rollups(
    client: Client,
    since: datetime,
    until: datetime,
    steps: Sequence[tuple[str, str]] = REFRESH_STEPS,
) -> int:
    """Recompute every rollup window of ``[since, until)`` from the ledger, one UTC day at a
    time (bulk loads, benchmarks, repairs); returns the number of days refreshed."""
    writer = LedgerWriter(client, 0, steps)
    day = datetime(since.year, since.month, since.day, tzinfo=UTC)
    days = 0
    while day < until:
        writer.refresh_rollups([day + timedelta(minutes=m) for m in range(1440)])
        day += timedelta(days=1)
        days += 1
    return days


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
    """Allocate and record the next price version number: unique and increasing across every
    process sharing the ClickHouse database (workers starting, ``reprice`` runs).

    Claim ``max + 1`` by inserting its row with the deduplication token ``price-version:<n>``:
    ClickHouse keeps the first insert of a token and drops the rest, so exactly one claimant's
    row exists; each claimant reads the row back and retries with the next number if it lost.
    """
    claim = uuid.uuid4().hex
    start, end = period if period else (None, None)
    for _ in range(MAX_VERSION_CLAIMS):
        latest = client.query("SELECT max(version) FROM price_versions").result_rows
        version = int(latest[0][0] or 0) + 1
        client.insert(
            "price_versions",
            [[version, kind, catalog_digest, datetime.now(UTC), start, end, note, claim]],
            column_names=PRICE_VERSION_COLUMNS,
            settings={"insert_deduplication_token": f"price-version:{version}"},
        )
        winner = client.query(
            "SELECT claimed_by FROM price_versions WHERE version = {v:UInt32} "
            "ORDER BY created_at LIMIT 1",
            parameters={"v": version},
        ).result_rows
        if winner and winner[0][0] == claim:
            return version
    raise RuntimeError(f"could not claim a price version in {MAX_VERSION_CLAIMS} attempts")


__all__ = [
    "KafkaOrigin",
    "LedgerEntry",
    "LedgerWriter",
    "next_price_version",
    "rebuild_rollups",
    "register_price_version",
]
