"""Insight reads from the hourly cells (``sinks.insight_cells``, migration 75).

:func:`cell_rows` runs an insight's SQL over ``{cells}``: a sub-query with one row per hour and
cell (``window_start``, the dimensions of ``CELL_DIMENSIONS``, the measures and quantile states
as ``m_<name>``) over the window ``[since, until)``, scope and team condition. Whole hours come
from the cells table, the partial hours at the edges from ``ledger FINAL`` grouped the same way,
so sums are the ledger's to the last digit and ``quantilesExactMerge`` of the states gives the
ledger's exact quantiles. Returns None (the caller reads the ledger) when the scope names a key
the cells lack (``app``, ``env``, ``user``, tags) or the context asks for the ledger.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from spendstream.insights.base import Context
from spendstream.sinks.insight_cells import (
    CELL_MEASURES,
    CELL_STATES,
    MERGE,
    NARROW_LIMIT,
    NARROW_STATES,
    cells_source,
)
from spendstream.sinks.windows import window_parameters

__all__ = ["MERGE", "SCOPE_KEYS", "answers", "cell_rows", "quantile_cell_rows"]

# Scope keys the cells keep as columns (the rest of CELL_DIMENSIONS are flags, not scope keys).
SCOPE_KEYS = ("team", "feature", "provider", "model", "operation")


# A measure or state the insight's SQL reads (``m_<column>``): the sub-query has those alone.
VALUE = re.compile(r"\bm_(\w+)")


@lru_cache(maxsize=64)
def _source(names: frozenset[str]) -> str:
    known = {name for name, _type, _sql in (*CELL_MEASURES, *CELL_STATES)}
    return cells_source(names & known)


def answers(context: Context) -> bool:
    """Whether the cells can answer ``context`` (its scope names only :data:`SCOPE_KEYS`, and
    it does not ask for the ledger)."""
    keys = {key for key, _ in context.window.scope}
    return not context.from_ledger and keys <= set(SCOPE_KEYS)


def cell_rows(
    context: Context, sql: str, extra: dict[str, Any] | None = None
) -> list[dict[str, Any]] | None:
    """Run ``sql`` (reading ``FROM ({cells})``) over the context's window; rows as dicts, or
    None when the cells cannot answer (see the module doc)."""
    window = context.window
    if not answers(context):
        return None
    parts = [f"{key} = {{scope_{i}:String}}" for i, (key, _) in enumerate(window.scope)]
    parts.append(window.team_sql)
    where = " AND ".join(f"({part})" for part in parts)
    source = f"SELECT * FROM ({_source(frozenset(VALUE.findall(sql)))}) WHERE {where}"
    params: dict[str, Any] = {
        **window_parameters(window.since, window.until),
        **{f"scope_{i}": value for i, (_, value) in enumerate(window.scope)},
        **window.team_params,
        **(extra or {}),
    }
    return context.reader.query(sql.replace("{cells}", source), params).records()


def quantile_cell_rows(
    context: Context, sql: str, quantiles: tuple[str, ...], extra: dict[str, Any] | None = None
) -> list[dict[str, Any]] | None:
    """:func:`cell_rows` of ``sql`` (merging ``m_input_quantiles`` / ``m_output_quantiles``)
    over the narrow 32-bit states instead, which merge in about half the time; again over the
    wide ones when a column of ``quantiles`` reached ``NARROW_LIMIT`` in some row (a token count
    that large was clipped, so only the wide states know its value)."""
    narrow = sql
    for wide, narrow_name in NARROW_STATES.items():
        narrow = narrow.replace(f"m_{wide})", f"m_{narrow_name})")
    found = cell_rows(context, narrow, extra)
    if found is None or all(row[name] < NARROW_LIMIT for row in found for name in quantiles):
        return found
    return cell_rows(context, sql, extra)
