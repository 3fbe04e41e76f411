"""Explain's cells with the users it does not name merged, computed without reading every user.

At a few thousand users nearly every event is a cell of its own, so reading every cell and
merging users in Python (:func:`cells.lump_users`) costs seconds at 10 M events. Instead:

1. one query ranks the tag groups (team, app, env, feature, user) by how far their spend moved
   between the two periods, as :func:`cells.lump_users` does (``|moved|`` descending, then the
   group's values), and counts them. It reads the rows as stored (ledger edges, rollup rows)
   and aggregates them once, keyed by two 64-bit hashes of the group's values (a 128-bit key:
   one fixed-size key aggregates several times faster than five strings; the group's values
   come along with ``any``, so the order and its tie-break are the same);
2. when more groups than ``keep`` have spend, each period's cells are one query over the
   drivers rollups that reads the user of every group outside the kept ones as
   :data:`~spendstream.explain.cells.OTHER_USERS`: one GROUP BY gives the kept groups' cells
   and the other users' cell per lean key together (Decimal and integer sums, so the result
   equals :func:`cells.lump_users` on the full cells to the last digit). Being one query, it
   reads one state of the ledger: no cell can come out with less than nothing, as the
   difference of two reads could when events landed between them (the previous design).

A kept group is told by the hash of its values first (a set of 64-bit integers: cheap per
row), then, in Python, every named cell's group is checked against the kept groups; a group
another shares a hash with (about one chance in 10⁹ per million groups) is read again with
the values compared exactly.

A scope filtered by user has few groups; it reads every cell.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from spendstream.explain.cells import (
    GROUP_DIMENSIONS,
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
from spendstream.sinks.windows import spend_rows, window_parameters, with_prefix

Period = tuple[datetime, datetime]
GroupKey = tuple[str, ...]
Cells = dict[CellKey, Measures]

_VALUES = ", ".join(GROUP_DIMENSIONS)
# Two hashes of the group's values (a 128-bit key; the second in another order, so that it is
# not a function of the first).
_KEY = f"cityHash64({_VALUES}) AS h1, cityHash64({', '.join(reversed(GROUP_DIMENSIONS))}) AS h2"
_KEPT = "explain_kept"  # the kept groups' values (Array(Array(String)) parameter)
# The kept groups' first hashes, from their values (a set: one lookup per row).
_KEPT_HASHES = (
    f"(SELECT cityHash64(g[1], g[2], g[3], g[4], g[5]) FROM "
    f"(SELECT arrayJoin({{{_KEPT}:Array(Array(String))}}) AS g))"
)


def ranking_sql(
    scope: Scope, period: Period, baseline: Period, keep: int
) -> tuple[str, dict[str, Any]]:
    """The ``keep`` tag groups whose spend moved most, each row with ``groups``: how many
    groups have spend or requests in either period."""
    condition, params, filtered = scope_condition(scope)
    sides = " UNION ALL ".join(
        with_prefix(
            spend_rows(
                f"{_KEY}, {_VALUES}, {sign}cost_total AS moved",
                condition,
                [*GROUP_DIMENSIONS, *filtered],
            ),
            prefix,
        )
        for prefix, sign in (("b_", "-"), ("a_", ""))
    )
    values = ", ".join(f"any({name}) AS {name}" for name in GROUP_DIMENSIONS)
    query = (
        f"SELECT {values}, sum(moved) AS moved, count() OVER () AS groups FROM ({sides}) "
        f"GROUP BY h1, h2 ORDER BY abs(moved) DESC, {_VALUES} LIMIT {int(keep)}"
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


def kept_user_sql(exact: bool = False) -> str:
    """The user of a row, or :data:`OTHER_USERS` outside the kept groups (the parameter
    ``explain_kept``): by the first hash of the values, or ``exact`` by the values."""
    kept = (
        f"[{_VALUES}] IN {{{_KEPT}:Array(Array(String))}}"
        if exact
        else f"cityHash64({_VALUES}) IN {_KEPT_HASHES}"
    )
    return f"if({kept}, user, '{OTHER_USERS}')"


def merged_side(reader: Reader, scope: Scope, side: Period, kept: Collection[GroupKey]) -> Cells:
    """One period's cells: the kept groups' as they are, every other user's merged into
    :data:`OTHER_USERS` of its lean key; cells with nothing at all are left out (as
    :func:`cells.lump_users` has no such cell)."""
    params = {_KEPT: [list(group) for group in sorted(kept)]}
    for exact in (False, True):
        cells = read_cells(reader, scope, *side, user=kept_user_sql(exact), user_params=params)
        named = {_group(key) for key in cells if key[USER_INDEX] != OTHER_USERS}
        if named <= set(kept):  # no other group shares a kept group's hash
            break
    return {
        key: cell
        for key, cell in cells.items()
        if key[USER_INDEX] != OTHER_USERS or not cell.is_empty()
    }


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
    return merged_side(reader, scope, baseline, kept), merged_side(reader, scope, period, kept)


def _group(key: CellKey) -> GroupKey:
    return tuple(str(v) for v in key[: len(GROUP_DIMENSIONS)])


def _groups(before: Mapping[CellKey, Measures], after: Mapping[CellKey, Measures]) -> int:
    return len({key[: len(GROUP_DIMENSIONS)] for key in (*before, *after)})
