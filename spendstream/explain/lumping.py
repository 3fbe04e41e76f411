"""Explain's cells with the users it does not name merged, in one query over both periods.

At a few thousand users nearly every event is a cell of its own, so reading every cell and
merging users in Python (:func:`cells.lump_users`) costs seconds at 10 M events. Instead one
query reads the drivers rollups of both periods once and, with window functions:

1. sums each cell per period (``side`` 0 the baseline, 1 the period);
2. gives every cell its tag group's move (period minus baseline spend, ``PARTITION BY`` the
   group) and ranks the groups as :func:`cells.lump_users` does (``|moved|`` descending, then
   the group's values: ``dense_rank``, one rank per group);
3. sums again with the user of every group ranked below ``keep`` replaced by
   :data:`~spendstream.explain.cells.OTHER_USERS`: integer and Decimal sums in ClickHouse, so
   the cells equal :func:`cells.lump_users` on the full cells to the last digit. With no more
   groups than ``keep`` nothing is merged.

(Before: a ranking query, then the kept groups' cells and the lean drivers cells per period,
three scans; docs/benchmarks-explain.md.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from spendstream.explain.cells import (
    GROUP_DIMENSIONS,
    MEASURE_FIELDS,
    OTHER_USERS,
    CellKey,
    Measures,
    Scope,
    cell_sums,
    cells_source,
    measures_of,
    scope_condition,
)
from spendstream.sinks.access import Reader
from spendstream.sinks.migrations import DRIVER_DIMENSIONS
from spendstream.sinks.windows import spend_source, window_parameters, with_prefix

Period = tuple[datetime, datetime]
GroupKey = tuple[str, ...]
Cells = dict[CellKey, Measures]


def ranking_sql(
    scope: Scope, period: Period, baseline: Period, keep: int
) -> tuple[str, dict[str, Any]]:
    """The ``keep`` tag groups whose spend moved most, each row with ``groups``: how many
    groups have spend or requests in either period (the ranking alone, as :func:`lumped_sql`
    does it; for a look at the groups)."""
    condition, params, filtered = scope_condition(scope)
    dims = ", ".join(GROUP_DIMENSIONS)
    source = spend_source(
        GROUP_DIMENSIONS, condition, where_dims=filtered, measures=("cost_total",)
    )
    sides = " UNION ALL ".join(
        f"SELECT {dims}, {sign}m_cost_total AS moved FROM ({with_prefix(source, prefix)})"
        for prefix, sign in (("b_", "-"), ("a_", ""))
    )
    query = (
        f"SELECT {dims}, sum(moved) AS moved, count() OVER () AS groups FROM ({sides}) "
        f"GROUP BY {dims} ORDER BY abs(moved) DESC, {dims} LIMIT {int(keep)}"
    )
    windows = {**window_parameters(*baseline, "b_"), **window_parameters(*period, "a_")}
    return query, {**params, **windows}


def rank_groups(
    reader: Reader, scope: Scope, period: Period, baseline: Period, keep: int
) -> tuple[list[GroupKey], int]:
    """(the ``keep`` groups that moved most, in rank order; how many groups there are)."""
    sql, params = ranking_sql(scope, period, baseline, keep)
    rows = list(reader.query(sql, params).records())
    ranked = [tuple(str(row[d]) for d in GROUP_DIMENSIONS) for row in rows]
    return ranked, int(rows[0]["groups"]) if rows else 0


def lumped_sql(
    scope: Scope, period: Period, baseline: Period, keep: int
) -> tuple[str, dict[str, Any]]:
    """One query for both periods' cells with the users outside the ``keep`` groups that moved
    most merged (module doc): a row per ``side`` (0 the baseline, 1 the period) and cell."""
    inner, params = cells_source(scope)
    dims = ", ".join(DRIVER_DIMENSIONS)
    group = ", ".join(GROUP_DIMENSIONS)
    sides = " UNION ALL ".join(
        f"SELECT {side} AS side, {dims}, {cell_sums(out='c_')} "
        f"FROM ({with_prefix(inner, prefix)}) GROUP BY {dims}"
        for prefix, side in (("b_", 0), ("a_", 1))
    )
    moved = (
        f"SELECT *, sum(if(side = 1, c_cost_total, -c_cost_total)) "
        f"OVER (PARTITION BY {group}) AS moved FROM ({sides})"
    )
    ranked = (
        f"SELECT *, dense_rank() OVER (ORDER BY abs(moved) DESC, {group}) AS group_rank "
        f"FROM ({moved})"
    )
    named = [
        f"if(group_rank <= {int(keep)}, user, {{explain_other:String}}) AS kept_user"
        if name == "user"
        else name
        for name in DRIVER_DIMENSIONS
    ]
    resummed = ", ".join(
        f"{'sumMap' if name.startswith('unit_') else 'sum'}(c_{name}) AS {name}"
        for name in MEASURE_FIELDS
    )
    keys = ", ".join("kept_user" if name == "user" else name for name in DRIVER_DIMENSIONS)
    query = f"SELECT side, {', '.join(named)}, {resummed} FROM ({ranked}) GROUP BY side, {keys}"
    windows = {**window_parameters(*baseline, "b_"), **window_parameters(*period, "a_")}
    return query, {**params, **windows, "explain_other": OTHER_USERS}


def read_both(
    reader: Reader, scope: Scope, period: Period, baseline: Period, keep: int
) -> tuple[Cells, Cells]:
    """The cells of ``baseline`` and ``period``, with the users outside the ``keep`` tag
    groups that moved most merged (module doc); every cell when no more groups have spend."""
    sql, params = lumped_sql(scope, period, baseline, keep)
    both: tuple[Cells, Cells] = ({}, {})
    for row in reader.query(sql, params).records():
        key = tuple(
            bool(row["batch"])
            if name == "batch"
            else str(row["kept_user" if name == "user" else name])
            for name in DRIVER_DIMENSIONS
        )
        both[int(row["side"])][key] = measures_of(row)  # type: ignore[index]
    return both
