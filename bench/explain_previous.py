"""Explain's read before the one-query merge (for the before/after of ``bench.explain``).

The two-step read of the previous release: rank the tag groups (one query over both periods),
then per period the kept groups' cells and the lean drivers cells (no ``user``); every other
user's spend is a lean cell minus the kept cells under it. Same cells as
``explain.lumping.read_both``, to the last digit; three scans instead of one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from spendstream.explain.cells import (
    GROUP_DIMENSIONS,
    LEAN_CELL_DIMENSIONS,
    OTHER_USERS,
    USER_INDEX,
    CellKey,
    Measures,
    Scope,
    read_cells,
)
from spendstream.explain.lumping import GroupKey, Period, rank_groups
from spendstream.sinks.access import Reader

Cells = dict[CellKey, Measures]


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
        rest[lean_key] = rest[lean_key] - cell
    for lean_key, cell in rest.items():
        if not cell.is_empty():
            key = (*lean_key[:USER_INDEX], OTHER_USERS, *lean_key[USER_INDEX:])
            cells[key] = cell
    return cells


def two_step_read(
    reader: Reader, scope: Scope, period: Period, baseline: Period, keep: int
) -> tuple[Cells, Cells]:
    """The previous ``read_both`` (scopes not filtered by user)."""
    ranked, groups = rank_groups(reader, scope, period, baseline, keep)
    if groups <= keep:
        return read_cells(reader, scope, *baseline), read_cells(reader, scope, *period)
    kept = set(ranked)
    both = []
    for since, until in (baseline, period):
        lean = read_cells(reader, scope, since, until, LEAN_CELL_DIMENSIONS)
        named = read_cells(reader, scope, since, until, groups=ranked)
        both.append(merged_cells(lean, named, kept))
    return both[0], both[1]
