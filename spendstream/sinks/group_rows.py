"""Explain's drivers by tag group: each closed hour's cells sorted by group, with the hour's
totals beside them (migration 1005, docs/explain.md).

Explain keeps the 300 tag groups (team, app, env, feature, user) whose spend moved most and
merges every other user into ``(other users)``. Read from ``rollup_hour_drivers`` (sorted by
hour, then tags) that means a pass over every row of the period, ~330 k a day at thousands of
users. ``rollup_hour_groups`` holds the same sums per hour in two kinds of rows:

- ``kind = 0``: one group's cell (team, app, env, feature, user, provider, model, batch), keyed
  first by the group's hash (:mod:`spendstream.sinks.group_hash`), so the kept groups' rows of
  a period are ~300 short ranges of the primary key (granules of 128 rows);
- ``kind = 1``: the hour's total per lean key (the same without ``user``, both hashes 0), so
  the other users' cell of a lean key is that total minus the kept groups' cells.

Both kinds of an hour are written by **one** statement from one read of the ledger
(:data:`REFRESH_GROUP_ROWS`, a refresh step after the drivers hour), so they come from one
state of the ledger: a reader sees an hour's new rows or its old ones, never a total from one
state and a group from another (rows are only ever replaced, never removed: ``FINAL`` keeps
the newest of each). The unit maps' keys come with a count of the drivers rows carrying each
(``unit_quantity_rows``, ``unit_cost_rows``): a unit key belongs in the other users' cell when
some other user's row carries it, even at a quantity of 0, exactly as a read of every row says.
"""

from __future__ import annotations

from collections.abc import Sequence

from spendstream.sinks.group_hash import HASH_EXPRESSIONS
from spendstream.sinks.migrations import (
    COST_COLUMNS,
    DIMENSION_TYPES,
    DRIVER_DIMENSIONS,
    MEASURE_FROM_LEDGER,
    MEASURES,
    MONEY,
    TOKEN_COLUMNS,
    UNIT_ROLLUP_COLUMNS,
    Migration,
)

GROUP_ROWS_TABLE = "rollup_hour_groups"
KIND_GROUP, KIND_TOTAL = 0, 1
# Per unit key, how many drivers rows carry it (module doc).
UNIT_ROW_COUNTS = {"unit_quantities": "unit_quantity_rows", "unit_costs": "unit_cost_rows"}
_UNITS = tuple(name for name, _kind, _agg in UNIT_ROLLUP_COLUMNS)
_KEYED = ("kind", "group_hash", "group_hash_2", "window_start", *DRIVER_DIMENSIONS)


def _dimension_defs() -> str:
    return ",\n    ".join(
        f"{name} {DIMENSION_TYPES.get(name, 'LowCardinality(String)')}"
        for name in DRIVER_DIMENSIONS
    )


GROUP_ROWS_DDL = f"""
CREATE TABLE IF NOT EXISTS {GROUP_ROWS_TABLE} (
    kind UInt8,
    group_hash UInt64,
    group_hash_2 UInt64,
    window_start DateTime('UTC'),
    {_dimension_defs()},
    events UInt64,
    requests UInt64,
    unpriced_events UInt64,
    {", ".join(f"{name} UInt64" for name in TOKEN_COLUMNS)},
    {", ".join(f"{name} {MONEY}" for name in (*COST_COLUMNS, "cost_total"))},
    {", ".join(f"{name} {kind}" for name, kind, _agg in UNIT_ROLLUP_COLUMNS)},
    {", ".join(f"{name} Map(String, UInt64)" for name in UNIT_ROW_COUNTS.values())},
    computed_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(window_start)
PRIMARY KEY (kind, group_hash, window_start)
ORDER BY (kind, group_hash, window_start, group_hash_2, {", ".join(DRIVER_DIMENSIONS)})
SETTINGS index_granularity = 128
"""


def _fill_sql(kinds: Sequence[int], where: str, settings: str = "") -> str:
    """INSERT…SELECT of the rows of ``kinds`` over the events of ``ledger FINAL`` matching
    ``where``: one read of the ledger, each event counted once per kind (``ARRAY JOIN``)."""
    sums = ", ".join(
        (
            *(f"{sql} AS {name}" for name, sql in MEASURE_FROM_LEDGER.items()),
            *(f"{agg}({name})" for name, _kind, agg in UNIT_ROLLUP_COLUMNS),
            *(f"sumMap(mapApply((k, v) -> (k, toUInt64(1)), {name}))" for name in UNIT_ROW_COUNTS),
        )
    )
    # Named apart from the ledger's own ALIAS columns (migration 1004), not always there.
    hashes = ", ".join(
        f"{expression} AS g{i}" for i, (_name, expression) in enumerate(HASH_EXPRESSIONS, 1)
    )
    keyed = (
        "kind",
        *(f"if(kind = {KIND_GROUP}, g{i}, 0) AS h{i}" for i in (1, 2)),
        "toStartOfHour(event_time) AS ws",
        *(
            f"if(kind = {KIND_GROUP}, user, '') AS u" if d == "user" else d
            for d in DRIVER_DIMENSIONS
        ),
    )
    group = ("kind", "h1", "h2", "ws", *("u" if d == "user" else d for d in DRIVER_DIMENSIONS))
    columns = ", ".join((*_KEYED, *MEASURES, *_UNITS, *UNIT_ROW_COUNTS.values(), "computed_at"))
    array = "[" + ", ".join(str(kind) for kind in kinds) + "]"
    return (
        f"INSERT INTO {GROUP_ROWS_TABLE} ({columns}) SELECT {', '.join(keyed)}, {sums}, "
        f"now64(6) FROM (SELECT *, {hashes} FROM ledger FINAL WHERE {where}) "
        f"ARRAY JOIN {array} AS kind GROUP BY {', '.join(group)}{settings}"
    )


# The refresh step (sinks.ledger.REFRESH_STEPS): the touched hours' rows of both kinds in one
# statement, from one read of the ledger (module doc). Parameters as every ledger step's.
REFRESH_GROUP_ROWS = _fill_sql(
    (KIND_GROUP, KIND_TOTAL),
    "event_time >= {lo:DateTime64(3)} AND event_time < {hi:DateTime64(3)} "
    "AND toDateTime(toStartOfHour(event_time)) IN {starts:Array(DateTime)}",
)

# Migration 1005: the table, filled once from the ledger, each kind apart (the groups' rows
# are nearly a row per event at thousands of users: their aggregation spills to disk past
# 1 GB instead of holding every key in memory). Re-runnable: the same keys, FINAL keeps one.
GROUP_ROWS_STATEMENTS = (
    GROUP_ROWS_DDL,
    _fill_sql((KIND_GROUP,), "1", " SETTINGS max_bytes_before_external_group_by = 1000000000"),
    _fill_sql((KIND_TOTAL,), "1"),
)

MIGRATIONS = (Migration(1005, "rollup_hour_groups", GROUP_ROWS_STATEMENTS),)
