"""The drivers minutes and the runs' minutes from one read of ``ledger FINAL`` (migration 1008).

A flush recomputed the touched minutes of ``rollup_minute_drivers`` and ``agent_minute`` in two
statements, each reading the same minutes from ``ledger FINAL`` (session 12: 1.4 and 1.0 µs per
event at a steady 10 k events/s on a 1 M-event day, docs/benchmarks-ingest.md). One statement now
reads them once and groups them both ways (``GROUPING SETS``); its rows go into
``minute_fanout``, a ``Null`` table (it stores nothing), whose two materialized views forward
each grouping's rows, as they are, to its table. The views only filter and rename: every row is
a finished group of the whole statement (the aggregation is done before the insert), so how the
insert is cut into blocks changes nothing and the rows are those the two statements wrote.

A release before this one never inserts into ``minute_fanout``, so the views never fire for it;
the migration creates the table and the views and changes no row. A view needs its target table:
on a new ledger ``agent_minute`` (migration 1101, applied after this one) is created here first,
as 1101 leaves it, and 1101's statements then find it (each ``IF NOT EXISTS``, its backfill
re-runnable).
"""

from __future__ import annotations

from spendstream.sinks.migrations import (
    AGENT_DIMENSIONS,
    AGENT_MINUTE_DDL,
    AGENT_TABLES,
    COST_COLUMNS,
    DIMENSION_TYPES,
    DRIVER_TABLE_DIMENSIONS,
    DRIVER_TABLES,
    MEASURE_FROM_LEDGER,
    MEASURES,
    MONEY,
    UNIT_ROLLUP_COLUMNS,
    Migration,
)

FANOUT_TABLE = "minute_fanout"
# Which grouping a row is (the column the views filter on), and the table each one feeds.
FANOUT_TARGETS = {1: DRIVER_TABLES["minute"], 2: AGENT_TABLES["minute"]}
FANOUT_DIMENSIONS = {1: DRIVER_TABLE_DIMENSIONS, 2: AGENT_DIMENSIONS}
_DIMENSIONS = tuple(dict.fromkeys((*DRIVER_TABLE_DIMENSIONS, *AGENT_DIMENSIONS)))
_MONEY_MEASURES = {*COST_COLUMNS, "cost_total"}
_UNITS = tuple(name for name, _kind, _agg in UNIT_ROLLUP_COLUMNS)
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("fanout", "UInt8"),
    ("window_start", "DateTime('UTC')"),
    *((name, DIMENSION_TYPES.get(name, "LowCardinality(String)")) for name in _DIMENSIONS),
    *((name, MONEY if name in _MONEY_MEASURES else "UInt64") for name in MEASURES),
    *((name, kind) for name, kind, _agg in UNIT_ROLLUP_COLUMNS),
    ("computed_at", "DateTime64(6, 'UTC')"),
)

CREATE_FANOUT = (
    f"CREATE TABLE IF NOT EXISTS {FANOUT_TABLE} (\n    "
    + ",\n    ".join(f"{name} {kind}" for name, kind in _COLUMNS)
    + "\n) ENGINE = Null"
)


def _view_name(kind: int) -> str:
    return f"{FANOUT_TABLE}_to_{FANOUT_TARGETS[kind]}"


def _view(kind: int) -> str:
    """The view forwarding grouping ``kind``'s rows to its table, columns by name."""
    names = ", ".join(("window_start", *FANOUT_DIMENSIONS[kind], *MEASURES, *_UNITS, "computed_at"))
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {_view_name(kind)} TO {FANOUT_TARGETS[kind]} "
        f"AS SELECT {names} FROM {FANOUT_TABLE} WHERE fanout = {kind}"
    )


def _fanout_sql() -> str:
    """The touched minutes (parameters ``starts``, ``lo``, ``hi``, as ``sinks.ledger``'s minute
    steps) grouped by both tables' keys in one read."""
    measures = ", ".join(f"{sql} AS {name}" for name, sql in MEASURE_FROM_LEDGER.items())
    units = ", ".join(f"{agg}({name}) AS {name}" for name, _kind, agg in UNIT_ROLLUP_COLUMNS)
    sets = ", ".join(f"(window_start, {', '.join(dims)})" for dims in FANOUT_DIMENSIONS.values())
    # `user` is a key of the drivers' grouping only: grouping(user) is 0 in its rows (standard
    # GROUPING, pinned below), 1 in the runs' rows, whose `user` is then '' (no NULLs, pinned).
    return (
        f"INSERT INTO {FANOUT_TABLE} ({', '.join(name for name, _kind in _COLUMNS)}) "
        "SELECT if(grouping(user) = 0, 1, 2) AS fanout, "
        "toStartOfInterval(event_time, INTERVAL 1 minute) AS window_start, "
        f"{', '.join(_DIMENSIONS)}, {measures}, {units}, now64(6) "
        "FROM ledger FINAL "
        "WHERE event_time >= {lo:DateTime64(3)} AND event_time < {hi:DateTime64(3)} "
        "AND toDateTime(toStartOfInterval(event_time, INTERVAL 1 minute)) "
        "IN {starts:Array(DateTime)} "
        f"GROUP BY GROUPING SETS ({sets}) "
        "SETTINGS force_grouping_standard_compatibility = 1, group_by_use_nulls = 0"
    )


MINUTE_FANOUT = _fanout_sql()
"""Both minute tables' touched minutes in one statement (``sinks.ledger`` runs it in place of
their two steps when a writer has both)."""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1008,
        "minute_fanout",
        (*AGENT_MINUTE_DDL, CREATE_FANOUT, *(_view(kind) for kind in FANOUT_TARGETS)),
    ),
)

__all__ = ["FANOUT_TABLE", "MIGRATIONS", "MINUTE_FANOUT"]
