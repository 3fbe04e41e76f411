"""Explain's cells with the users it does not name merged, computed without reading every user.

At a few thousand users nearly every event is a cell of its own, so reading every cell and
merging users in Python (:func:`cells.lump_users`) costs seconds at 10 M events. Instead:

1. one query ranks the tag groups (team, app, env, feature, user) by how far their spend moved
   between the two periods (one more than ``keep`` asked for: fewer rows tell that every
   group is there). It reads the rows as stored (ledger edges, rollup rows; no day rollup
   for a period without a whole day) and aggregates them once, keyed by the group's two
   64-bit hashes (migration 1004, :mod:`spendstream.sinks.group_hash`): a fixed-size key
   aggregates several times faster than five strings, and the values are not read at all.
   It returns the ``keep`` groups that moved most and every group tied with the last (asked
   again ``WITH TIES`` only when the one after the last ties with it);
2. when more groups than ``keep`` have spend, each period's cells are one query over the
   drivers rollups that reads the user of every group outside those as
   :data:`~spendstream.explain.cells.OTHER_USERS`: one GROUP BY gives the named groups'
   cells and the other users' cell per lean key together (Decimal and integer sums, so the
   result equals :func:`cells.lump_users` on the full cells to the last digit). Being one
   query, it reads one state of the ledger: no cell can come out with less than nothing, as
   the difference of two reads could when events landed between them (the previous design);
3. groups tied at the boundary are ranked by their values, as :func:`cells.lump_users`
   does, from the cells just read, and those beyond ``keep`` merged in Python
   (:func:`lump_ties`); more than :data:`TIES` × ``keep`` tied (nothing moved, say) are
   ranked by their values in SQL instead (:func:`rank_groups`) and matched by them.

A group is matched by both hashes (a 128-bit key): two groups are taken for one only if
both their hashes collide, about one chance in 10²⁸ at a million groups, the same bet as
ClickHouse's ``uniqExact`` on strings.

A scope filtered by user has few groups; it reads every cell.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from spendstream.explain.cells import (
    GROUP_DIMENSIONS,
    OTHER_USERS,
    USER_INDEX,
    ZERO,
    CellKey,
    Measures,
    Scope,
    lump_users,
    read_cells,
    scope_condition,
)
from spendstream.sinks.access import Reader, read_at_once
from spendstream.sinks.group_hash import GROUP_HASHES
from spendstream.sinks.windows import has_whole_days, spend_rows, window_parameters, with_prefix

# Above this many groups tied at the boundary, the values rank them in SQL (rank_groups).
TIES = 2
Period = tuple[datetime, datetime]
GroupKey = tuple[str, ...]
Cells = dict[CellKey, Measures]
Candidate = tuple[int, int, Decimal]  # a group's two hashes and how far its spend moved

_VALUES = ", ".join(GROUP_DIMENSIONS)
_KEPT = "explain_kept"  # the kept groups' values (Array(Array(String)) parameter)
# The candidates' hashes, as decimal text: parameters travel as JSON through the worker's /sql
# (the CLI's reader), where integers above 2**53 are not safe everywhere.
_HASH_PARAMS = ("explain_h1", "explain_h2")


def ranking_sql(
    scope: Scope,
    period: Period,
    baseline: Period,
    keep: int,
    values: bool = True,
    ties: bool = False,
) -> tuple[str, dict[str, Any]]:
    """The ``keep`` tag groups whose spend moved most. With ``values``, each group's values,
    ties broken by them, each row with ``groups``: how many groups have spend or requests in
    either period; without, the groups' hashes (``h1``, ``h2``) only, in no set order among
    equals, and with ``ties`` every group tied with the ``keep``-th too."""
    condition, params, filtered = scope_condition(scope)
    read = f"{GROUP_HASHES[0]} AS h1, {GROUP_HASHES[1]} AS h2" + (f", {_VALUES}" if values else "")
    sides = " UNION ALL ".join(
        with_prefix(
            spend_rows(
                f"{read}, {sign}cost_total AS moved",
                condition,
                [*GROUP_DIMENSIONS, *filtered],
                whole_days=has_whole_days(*side),
            ),
            prefix,
        )
        for prefix, sign, side in (("b_", "-", baseline), ("a_", "", period))
    )
    # The count of every group (a window over all of them, one thread) only where asked:
    # by hashes, fewer rows than the limit tell that every group is there (rank_hashes).
    if values:
        select = ", ".join(f"any({name}) AS {name}" for name in GROUP_DIMENSIONS)
        select += ", sum(moved) AS moved, count() OVER () AS groups"
        order = f"abs(moved) DESC, {_VALUES} LIMIT {int(keep)}"
    else:
        select = "h1, h2, sum(moved) AS moved"
        order = f"abs(moved) DESC LIMIT {int(keep)}" + (" WITH TIES" if ties else "")
    query = f"SELECT {select} FROM ({sides}) GROUP BY h1, h2 ORDER BY {order}"
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


def rank_hashes(
    reader: Reader, scope: Scope, period: Period, baseline: Period, keep: int
) -> tuple[list[Candidate], int]:
    """(the ``keep`` groups that moved most and every group tied with the last, by their
    hashes; how many groups there are when at most ``keep``, else more than ``keep``: the
    number of rows read). One more than ``keep`` is asked for first: only when it ties with
    the ``keep``-th is the query run again ``WITH TIES`` (which costs the sort about a third
    more)."""
    found: list[Candidate] = []
    seen = 0
    for limit, ties in ((keep + 1, False), (keep, True)):
        sql, params = ranking_sql(scope, period, baseline, limit, values=False, ties=ties)
        rows = reader.query(sql, params).records()
        found = [(int(row["h1"]), int(row["h2"]), Decimal(row["moved"])) for row in rows]
        seen = max(seen, len(found))
        if len(found) <= keep or abs(found[keep - 1][2]) != abs(found[keep][2]):
            found = found[:keep]
            break
    return found, seen


def kept_user_sql(exact: bool = False) -> str:
    """The user of a row, or :data:`OTHER_USERS` outside the kept groups: by both hashes (the
    parameters ``explain_h1``, ``explain_h2``) or ``exact`` by the values (``explain_kept``)."""
    if exact:
        kept = f"[{_VALUES}] IN {{{_KEPT}:Array(Array(String))}}"
    else:
        kept = " AND ".join(
            f"{column} IN (SELECT toUInt64(arrayJoin({{{param}:Array(String)}})))"
            for column, param in zip(GROUP_HASHES, _HASH_PARAMS, strict=True)
        )
    return f"if({kept}, user, '{OTHER_USERS}')"


def merged_side(
    reader: Reader, scope: Scope, side: Period, user: str, params: dict[str, Any]
) -> Cells:
    """One period's cells, the users outside the kept groups read as :data:`OTHER_USERS`
    (``user``: :func:`kept_user_sql`, with its ``params``); cells with nothing at all are left
    out (as :func:`cells.lump_users` has no such cell)."""
    return _without_empty(read_cells(reader, scope, *side, user=user, user_params=params))


def read_both(
    reader: Reader, scope: Scope, period: Period, baseline: Period, keep: int
) -> tuple[Cells, Cells]:
    """The cells of ``baseline`` and ``period``, with the users outside the ``keep`` tag
    groups that moved most merged (module doc); every cell when no more groups have spend."""
    if "user" in scope.filters:
        before, after = both_sides(
            reader, lambda side: read_cells(reader, scope, *side), baseline, period
        )
        return lump_users(before, after, keep) if _groups(before, after) > keep else (before, after)
    candidates, groups = rank_hashes(reader, scope, period, baseline, keep)
    if groups <= keep:
        return both_sides(reader, lambda side: read_cells(reader, scope, *side), baseline, period)
    if len(candidates) > TIES * keep:  # too many tied at the boundary (e.g. nothing moved)
        ranked, _count = rank_groups(reader, scope, period, baseline, keep)
        user = kept_user_sql(exact=True)
        params: dict[str, Any] = {_KEPT: [list(group) for group in ranked]}
    else:
        user = kept_user_sql()
        params = {
            name: [str(candidate[index]) for candidate in candidates]
            for index, name in enumerate(_HASH_PARAMS)
        }
    before, after = both_sides(
        reader, lambda side: merged_side(reader, scope, side, user, params), baseline, period
    )
    return lump_ties(before, after, keep)


def both_sides(
    reader: Reader, read: Callable[[Period], Cells], baseline: Period, period: Period
) -> tuple[Cells, Cells]:
    """(``read(baseline)``, ``read(period)``): at the same time when ``reader`` serves two
    queries at once (a pool of clients, as the API's), else one after the other. Each side
    is one query, so each is one state of the ledger, as when they ran in turn."""
    before, after = read_at_once(reader, [lambda: read(baseline), lambda: read(period)])
    return before, after


def lump_ties(before: Cells, after: Cells, keep: int) -> tuple[Cells, Cells]:
    """The named groups beyond the ``keep`` that moved most (ties at the boundary, broken by
    the groups' values as :func:`cells.lump_users` does) merged into :data:`OTHER_USERS`."""
    moved: dict[GroupKey, Decimal] = {}
    for sign, cells in ((-1, before), (1, after)):
        for key, cell in cells.items():
            if key[USER_INDEX] != OTHER_USERS:
                group = _group(key)
                moved[group] = moved.get(group, ZERO) + sign * cell.cost_total
    if len(moved) <= keep:
        return before, after
    ranked = sorted(moved, key=lambda group: (-abs(moved[group]), group))
    kept = set(ranked[:keep])
    return _lumped(before, kept), _lumped(after, kept)


def _lumped(cells: Cells, kept: set[GroupKey]) -> Cells:
    out: Cells = {}
    for key, cell in cells.items():
        if key[USER_INDEX] != OTHER_USERS and _group(key) not in kept:
            key = (*key[:USER_INDEX], OTHER_USERS, *key[USER_INDEX + 1 :])  # type: ignore[assignment]
        out[key] = out[key] + cell if key in out else cell
    return _without_empty(out)


def _without_empty(cells: Cells) -> Cells:
    return {
        key: cell
        for key, cell in cells.items()
        if key[USER_INDEX] != OTHER_USERS or not cell.is_empty()
    }


def _group(key: CellKey) -> GroupKey:
    return tuple(str(v) for v in key[: len(GROUP_DIMENSIONS)])


def _groups(before: Mapping[CellKey, Measures], after: Mapping[CellKey, Measures]) -> int:
    return len({key[: len(GROUP_DIMENSIONS)] for key in (*before, *after)})
