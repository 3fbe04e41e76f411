"""One period's cells with the users outside the kept groups merged, read by primary key.

:mod:`spendstream.explain.lumping` reads a period's cells as one GROUP BY over every drivers
row of the period, the user of each row outside the kept groups read as
:data:`~spendstream.explain.cells.OTHER_USERS`: ~330 k rows a day at thousands of users. The
same cells come here from ``rollup_hour_groups`` (migration 1005,
:mod:`spendstream.sinks.group_rows`), which holds each hour's cells sorted by tag group and,
beside them, the hour's totals per lean key (every tag but the user), both written by one
statement:

- the kept groups' cells: their rows, found by their hashes in the primary key;
- the other users' cell of each lean key: the hour's total minus the kept groups' cells
  (``ARRAY JOIN``: a kept row counts for its user and against ``(other users)``), exact in
  integers and Decimal; a unit key stays where some other user's row carries it (the counts
  of rows per key), as when every row is read;
- the partial hours at the edges from ``ledger FINAL``, as every read does (``sinks.windows``).

Every whole hour of the period, whole days included, comes from the hours: the kept groups'
rows of a day are as few as its hours' and the totals are a few hundred rows an hour. One
query reads one state of each table; an hour's totals and groups are one state by
construction. A count that would come out below zero (a torn hour: impossible when the
refresh writes both kinds at once) stops the query with an error instead of a wrong cell.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from spendstream.explain.cells import (
    CELL_MEASURES,
    CELL_USER,
    OTHER_USERS,
    Measures,
    Scope,
    cells_of,
    scope_condition,
)
from spendstream.sinks.access import Reader
from spendstream.sinks.group_hash import GROUP_HASHES
from spendstream.sinks.group_rows import (
    GROUP_ROWS_TABLE,
    KIND_GROUP,
    KIND_TOTAL,
    UNIT_ROW_COUNTS,
)
from spendstream.sinks.migrations import DRIVER_DIMENSIONS, MEASURES, ROLLUP_DIMENSIONS
from spendstream.sinks.windows import (
    LEDGER_MEASURES,
    UNIT_MEASURES,
    WINDOW_CONDITIONS,
    window_parameters,
)

_CELL = [CELL_USER if d == "user" else d for d in DRIVER_DIMENSIONS]
_SIDE = "part"  # the ARRAY JOIN's (user, sign) of each row


def on_group_rows(scope: Scope) -> bool:
    """Whether ``scope`` filters on nothing but the rollups' tags (else: the ledger)."""
    return set(scope_condition(scope)[2]) <= set(ROLLUP_DIMENSIONS)


def _signed(name: str) -> str:
    return f"sum({_SIDE}.2 * {name}) AS s_{name}"


def _signed_map(name: str, to: str = "") -> str:
    return f"sumMap(mapApply((k, v) -> (k, {to}(v) * {_SIDE}.2), {name}))"


def _hours(condition: str, kept: str) -> str:
    """The whole hours ``[h0, h1)``: per (day, cell), in the columns of the ledger edges."""
    names = ", ".join(_CELL)
    sums = ", ".join(
        (
            *(_signed(name) for name in (*MEASURES, "cost_units")),
            f"{_signed_map('unit_quantities')} AS q",
            f"{_signed_map('unit_costs')} AS c",
            *(
                f"{_signed_map(rows, 'toInt64')} AS {alias}"
                for rows, alias in zip(UNIT_ROW_COUNTS.values(), ("qr", "cr"), strict=True)
            ),
        )
    )
    counts = {name for name in MEASURES if not name.startswith("cost")}
    measures = ", ".join(
        (
            f"toUInt64(s_{name} + throwIf(s_{name} < 0, "
            f"'{GROUP_ROWS_TABLE}: an hour''s total below its groups')) AS m_{name}"
            if name in counts
            else f"s_{name} AS m_{name}"
        )
        for name in (*MEASURES, "cost_units")
    )
    hours = "window_start >= {h0:DateTime64(3)} AND window_start < {h1:DateTime64(3)}"
    read = names.replace(CELL_USER, f"{_SIDE}.1 AS {CELL_USER}")
    return (
        f"SELECT day, {names}, {measures}, "
        "mapFilter((k, v) -> qr[k] > 0, q) AS m_unit_quantities, "
        "mapFilter((k, v) -> cr[k] > 0, c) AS m_unit_costs FROM ("
        f"SELECT toDate(window_start) AS day, {read}, {sums} FROM {GROUP_ROWS_TABLE} FINAL "
        f"ARRAY JOIN if(kind = {KIND_GROUP}, "
        f"[(user, 1), ('{OTHER_USERS}', -1)], [('{OTHER_USERS}', 1)]) AS {_SIDE} "
        f"WHERE {hours} AND ((kind = {KIND_TOTAL} AND {GROUP_HASHES[0]} = 0) "
        f"OR (kind = {KIND_GROUP} AND {kept})) AND ({condition}) GROUP BY day, {names})"
    )


def kept_cells_sql(
    scope: Scope, since: datetime, until: datetime, kept: str, user: str
) -> tuple[str, dict[str, Any]]:
    """The query of :func:`read_kept_cells`: ``kept``, a condition on a row's hashes (the kept
    groups); ``user``, the user of a ledger row (its own in a kept group, else
    :data:`OTHER_USERS`: ``lumping.kept_user_sql``)."""
    condition, params, _filtered = scope_condition(scope)
    names = ", ".join(_CELL)
    columns = ", ".join(f"{user} AS {CELL_USER}" if d == CELL_USER else d for d in _CELL)
    edges = (
        f"SELECT toDate(event_time) AS day, {columns}, {LEDGER_MEASURES}{UNIT_MEASURES} "
        f"FROM ledger FINAL WHERE {WINDOW_CONDITIONS[0]} AND ({condition}) "
        f"GROUP BY day, {names}"
    )
    select = names.replace(CELL_USER, f"{CELL_USER} AS user")
    sql = (
        f"SELECT {select}, {CELL_MEASURES} FROM ({edges} UNION ALL "
        f"{_hours(condition, kept)}) GROUP BY {names}"
    )
    return sql, {**params, **window_parameters(since, until)}


def read_kept_cells(
    reader: Reader,
    scope: Scope,
    side: tuple[datetime, datetime],
    kept: str,
    user: str,
    params: dict[str, Any],
) -> dict[Any, Measures]:
    """One period's cells, the users outside the kept groups merged (module doc), with the
    parameters of ``kept`` and ``user`` in ``params``."""
    sql, own = kept_cells_sql(scope, *side, kept, user)
    return cells_of(reader.query(sql, {**own, **params}).records(), DRIVER_DIMENSIONS)
