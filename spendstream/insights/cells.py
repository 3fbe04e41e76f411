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

from typing import Any

from spendstream.insights.base import Context
from spendstream.sinks.insight_cells import (
    CELLS_TABLE,
    cells_from_ledger_select,
    cells_from_table_select,
    group_by,
)
from spendstream.sinks.windows import window_parameters

# Scope keys the cells keep as columns (the rest of CELL_DIMENSIONS are flags, not scope keys).
SCOPE_KEYS = ("team", "feature", "provider", "model", "operation")
EDGES = (
    f"{cells_from_ledger_select()} FROM ledger FINAL "
    "WHERE (event_time >= {since:DateTime64(3)} AND event_time < {h0:DateTime64(3)}) "
    "OR (event_time >= {h1:DateTime64(3)} AND event_time < {until:DateTime64(3)}) "
    f"{group_by()}"
)
HOURS = (
    f"{cells_from_table_select()} FROM {CELLS_TABLE} FINAL "
    "WHERE window_start >= {h0:DateTime64(3)} AND window_start < {h1:DateTime64(3)}"
)
# The same quantile levels as the states (p50, p95): [1] is p50, [2] p95.
MERGE = "quantilesExactMerge(0.5, 0.95)"


def cell_rows(
    context: Context, sql: str, extra: dict[str, Any] | None = None
) -> list[dict[str, Any]] | None:
    """Run ``sql`` (reading ``FROM ({cells})``) over the context's window; rows as dicts, or
    None when the cells cannot answer (see the module doc)."""
    window = context.window
    if context.from_ledger or not {key for key, _ in window.scope} <= set(SCOPE_KEYS):
        return None
    parts = [f"{key} = {{scope_{i}:String}}" for i, (key, _) in enumerate(window.scope)]
    parts.append(window.team_sql)
    where = " AND ".join(f"({part})" for part in parts)
    source = f"SELECT * FROM ({EDGES} UNION ALL {HOURS}) WHERE {where}"
    params: dict[str, Any] = {
        **window_parameters(window.since, window.until),
        **{f"scope_{i}": value for i, (_, value) in enumerate(window.scope)},
        **window.team_params,
        **(extra or {}),
    }
    return context.reader.query(sql.replace("{cells}", source), params).records()
