"""Explain's cells with the users it does not name merged, computed without reading every user.

At a few thousand users nearly every event is a cell of its own, so reading every cell and
merging users in Python (:func:`cells.lump_users`) costs seconds at 10 M events. Instead:

1. one query ranks the tag groups (team, app, env, feature, user) by how far their spend moved
   between the two periods, as :func:`cells.lump_users` does (``|moved|`` descending, then the
   group's values), and counts them;
2. when more groups than ``keep`` have spend, only the kept groups' cells are read (from the
   drivers rollups), and the spend of every other user is the lean drivers cell
   (no ``user``, migration 70) minus the kept cells under it: integer and Decimal subtraction,
   so the result equals :func:`cells.lump_users` on the full cells to the last digit.

The lean and the named cells come from two queries. With events still arriving, the second
may see events the first did not: a kept user's new request then comes off the other users'
cell, which can leave it with no request but some cost, or fewer tokens than none, and no
decomposition adds up on such a cell. :func:`torn` finds those cells; the pair is read again
(at most :data:`READS` times, then every cell is read and lumped in Python, one query per
period).

A scope filtered by user has few groups; it reads every cell (the lean rollups have no user).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from spendstream.explain.cells import (
    GROUP_DIMENSIONS,
    LEAN_CELL_DIMENSIONS,
    OTHER_USERS,
    USER_INDEX,
    CellKey,
    Measures,
    Scope,
    lump_users,
    read_cells,
    scope_condition,
)
from spendstream.sinks.access import Reader
from spendstream.sinks.windows import spend_source, window_parameters, with_prefix

READS = 3  # tries at a consistent lean/named pair before reading every cell
Period = tuple[datetime, datetime]
GroupKey = tuple[str, ...]
Cells = dict[CellKey, Measures]


def ranking_sql(
    scope: Scope, period: Period, baseline: Period, keep: int
) -> tuple[str, dict[str, Any]]:
    """The ``keep`` tag groups whose spend moved most, each row with ``groups``: how many
    groups have spend or requests in either period."""
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


def merged_cells(
    lean: Mapping[tuple[Any, ...], Measures],
    named: Mapping[CellKey, Measures],
    kept: Collection[GroupKey],
) -> Cells:
    """``named`` cells of ``kept`` groups as they are, and per lean cell the rest of its spend
    (lean minus the kept cells under it) as :data:`OTHER_USERS`; cells that cancel out go."""
    rest = dict(lean)
    cells: Cells = {}
    for key, cell in named.items():
        if tuple(str(v) for v in key[: len(GROUP_DIMENSIONS)]) not in kept:
            continue
        cells[key] = cell
        lean_key = (*key[:USER_INDEX], *key[USER_INDEX + 1 :])
        # Not in the lean read at all: written between the two reads (a torn pair).
        rest[lean_key] = rest[lean_key] - cell if lean_key in rest else -cell
    for lean_key, cell in rest.items():
        if not cell.is_empty():
            key = (*lean_key[:USER_INDEX], OTHER_USERS, *lean_key[USER_INDEX:])
            cells[key] = cell
    return cells


def read_both(
    reader: Reader, scope: Scope, period: Period, baseline: Period, keep: int
) -> tuple[Cells, Cells]:
    """The cells of ``baseline`` and ``period``, with the users outside the ``keep`` tag
    groups that moved most merged (module doc); every cell when no more groups have spend."""
    if "user" in scope.filters:
        before, after = read_cells(reader, scope, *baseline), read_cells(reader, scope, *period)
        return lump_users(before, after, keep) if _groups(before, after) > keep else (before, after)
    ranked, groups = rank_groups(reader, scope, period, baseline, keep)
    if groups <= keep:
        return read_cells(reader, scope, *baseline), read_cells(reader, scope, *period)
    kept = set(ranked)
    merged_before = _merged_side(reader, scope, baseline, ranked, kept)
    merged_after = (
        None if merged_before is None else _merged_side(reader, scope, period, ranked, kept)
    )
    if merged_before is None or merged_after is None:  # the stream kept moving under every try
        before, after = read_cells(reader, scope, *baseline), read_cells(reader, scope, *period)
        return lump_users(before, after, keep)
    return merged_before, merged_after


def _merged_side(
    reader: Reader, scope: Scope, side: Period, ranked: list[GroupKey], kept: set[GroupKey]
) -> Cells | None:
    """One period's merged cells from a lean and a named read that agree; None when
    :data:`READS` pairs in a row were torn."""
    for _ in range(READS):
        lean = read_cells(reader, scope, *side, LEAN_CELL_DIMENSIONS)
        named = read_cells(reader, scope, *side, groups=ranked)
        cells = merged_cells(lean, named, kept)
        if not torn(cells):
            return cells
    return None


def torn(cells: Mapping[CellKey, Measures]) -> list[CellKey]:
    """The cells no set of events can have: no request (or fewer than none) yet something
    else, or a negative token count. Only a lean read and a named read that saw different
    events make one (module doc)."""
    return [
        key
        for key, cell in cells.items()
        if cell.requests <= 0
        or min(cell.input_tokens, cell.output_tokens, cell.cache_read_tokens) < 0
    ]


def _groups(before: Mapping[CellKey, Measures], after: Mapping[CellKey, Measures]) -> int:
    return len({key[: len(GROUP_DIMENSIONS)] for key in (*before, *after)})
