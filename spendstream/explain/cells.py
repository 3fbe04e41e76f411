"""Explain's cells: spend per (team, app, env, feature, user, provider, model, batch) over a period.

A cell is the finest grain Explain attributes: every tag the rollups keep, the model and the batch
flag. Whole hours and days are read from the drivers rollups (``sinks.migrations.DRIVER_TABLES``),
the partial hours at the edges from ``ledger FINAL`` (``sinks.windows``), so every figure equals
the ledger to the last digit. A filter on a tag no rollup keeps reads the ledger for the period.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from spendstream.sinks.access import Reader
from spendstream.sinks.migrations import (
    DRIVER_DIMENSIONS,
    DRIVER_TABLES,
    LEAN_DRIVER_TABLES,
    ROLLUP_DIMENSIONS,
)
from spendstream.sinks.queries import tag_column
from spendstream.sinks.windows import has_whole_days, spend_source, window_parameters

GROUP_DIMENSIONS = ("team", "app", "env", "feature", "user")
ZERO = Decimal(0)
CellKey = tuple[str, str, str, str, str, str, str, bool]  # DRIVER_DIMENSIONS, in order
LEAN_CELL_DIMENSIONS = tuple(name for name in DRIVER_DIMENSIONS if name != "user")


@dataclass(frozen=True)
class Measures:
    """One cell's sums over a period. Token costs are grouped by what they are paid on:
    ``cost_uncached`` (input and cache-write: input tokens not read from a cache),
    ``cost_cache_read`` and ``cost_output`` (output and reasoning). ``requests`` counts every
    call, ``cached_requests`` those the app answered from its own response cache (cost 0);
    tokens and unit quantities are the paid calls' only (what the prices were paid on)."""

    requests: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cost_uncached: Decimal
    cost_cache_read: Decimal
    cost_output: Decimal
    cost_total: Decimal
    unit_quantities: Mapping[str, Decimal] = field(default_factory=dict)
    unit_costs: Mapping[str, Decimal] = field(default_factory=dict)
    cached_requests: int = 0

    def __add__(self, other: Measures) -> Measures:
        units = set(self.unit_quantities) | set(other.unit_quantities)
        return Measures(
            self.requests + other.requests,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cost_uncached + other.cost_uncached,
            self.cost_cache_read + other.cost_cache_read,
            self.cost_output + other.cost_output,
            self.cost_total + other.cost_total,
            {
                u: self.unit_quantities.get(u, ZERO) + other.unit_quantities.get(u, ZERO)
                for u in units
            },
            {u: self.unit_costs.get(u, ZERO) + other.unit_costs.get(u, ZERO) for u in units},
            self.cached_requests + other.cached_requests,
        )

    def __neg__(self) -> Measures:
        return Measures(
            -self.requests,
            -self.input_tokens,
            -self.output_tokens,
            -self.cache_read_tokens,
            -self.cost_uncached,
            -self.cost_cache_read,
            -self.cost_output,
            -self.cost_total,
            {unit: -value for unit, value in self.unit_quantities.items()},
            {unit: -value for unit, value in self.unit_costs.items()},
            -self.cached_requests,
        )

    def __sub__(self, other: Measures) -> Measures:
        return self + -other

    def is_empty(self) -> bool:
        """Nothing at all: no request, token, cost or unit (a difference that cancelled)."""
        return not any(
            (
                self.requests,
                self.cached_requests,
                self.input_tokens,
                self.output_tokens,
                self.cache_read_tokens,
                self.cost_uncached,
                self.cost_cache_read,
                self.cost_output,
                self.cost_total,
                *self.unit_quantities.values(),
                *self.unit_costs.values(),
            )
        )


OTHER_USERS = "(other users)"
CELL_USER = "cell_user"  # the user dimension when read as an expression (cells_sql)
USER_INDEX = GROUP_DIMENSIONS.index("user")


def lump_users(
    before: Mapping[CellKey, Measures], after: Mapping[CellKey, Measures], keep: int
) -> tuple[dict[CellKey, Measures], dict[CellKey, Measures]]:
    """The cells with every user outside the ``keep`` whose spend moved most (by tag group)
    merged into :data:`OTHER_USERS` of their group: fewer cells, the same totals exactly.
    A lumped user's traffic then counts as its group's volume, not as new or vanished."""
    moved: dict[tuple[str, ...], Decimal] = {}
    for sign, cells in ((-1, before), (1, after)):
        for key, cell in cells.items():
            group = tuple(str(v) for v in key[: len(GROUP_DIMENSIONS)])
            moved[group] = moved.get(group, ZERO) + sign * cell.cost_total
    ranked = sorted(moved, key=lambda group: (-abs(moved[group]), group))
    kept = set(ranked[:keep])

    def lumped(cells: Mapping[CellKey, Measures]) -> dict[CellKey, Measures]:
        out: dict[CellKey, Measures] = {}
        for key, cell in cells.items():
            if tuple(str(v) for v in key[: len(GROUP_DIMENSIONS)]) not in kept:
                key = (*key[:USER_INDEX], OTHER_USERS, *key[USER_INDEX + 1 :])  # type: ignore[assignment]
            out[key] = out[key] + cell if key in out else cell
        return out

    return lumped(before), lumped(after)


@dataclass(frozen=True)
class Scope:
    """Which spend: ``filters`` (tag -> any of its values, as ``/spend`` takes them) and the
    caller's team condition (``auth.scope.team_condition``)."""

    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)
    team_sql: str = "1"
    team_params: Mapping[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        """``support`` for one team, ``feature=qa`` style otherwise, or ``all spend``."""
        if list(self.filters) == ["team"] and len(self.filters["team"]) == 1:
            return self.filters["team"][0]
        parts = [f"{key}={'|'.join(values)}" for key, values in self.filters.items()]
        return " ".join(parts) if parts else "all spend"


def scope_condition(scope: Scope) -> tuple[str, dict[str, Any], list[str]]:
    """``scope`` as a SQL condition, its parameters and the dimensions it reads."""
    params: dict[str, Any] = {**scope.team_params}
    where = [f"({scope.team_sql})"]
    for index, (name, values) in enumerate(scope.filters.items()):
        column = tag_column(name, params)
        params[f"explain_filter_{index}"] = list(values)
        where.append(f"{column} IN {{explain_filter_{index}:Array(String)}}")
    return " AND ".join(where), params, [*scope.filters, "team"]


# A cell's figures from the sums of sinks.windows.spend_source (m_<measure> columns).
# Quantities of paid calls only: a response-cached call's tokens were never paid (docs/explain.md).
PAID = "NOT response_cached"
CELL_MEASURES = (
    "sum(m_requests) AS requests, sumIf(m_requests, response_cached) AS cached_requests, "
    f"sumIf(m_input_tokens, {PAID}) AS input_tokens, "
    f"sumIf(m_output_tokens, {PAID}) AS output_tokens, "
    f"sumIf(m_cache_read_tokens, {PAID}) AS cache_read_tokens, "
    "sum(m_cost_input) + sum(m_cost_cache_write) AS cost_uncached, "
    "sum(m_cost_cache_read) AS cost_cache_read, "
    "sum(m_cost_output) + sum(m_cost_reasoning) AS cost_output, "
    f"sum(m_cost_total) AS cost_total, sumMapIf(m_unit_quantities, {PAID}) AS unit_quantities, "
    "sumMap(m_unit_costs) AS unit_costs"
)


def cells_sql(
    scope: Scope,
    since: datetime,
    until: datetime,
    dimensions: Sequence[str] = DRIVER_DIMENSIONS,
    user: str | None = None,
    user_params: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The query of :func:`read_cells` and its parameters: cells by ``dimensions`` (the drivers
    rollups' or, without ``user``, the lean drivers rollups'); ``user``, an expression over
    the stored columns (with its ``user_params``), reads the user dimension instead
    (``explain.lumping``: :data:`OTHER_USERS` outside the kept groups)."""
    condition, params, filtered = scope_condition(scope)
    on_rollups = set(filtered) <= set(ROLLUP_DIMENSIONS) & set(dimensions)
    tables = DRIVER_TABLES if "user" in dimensions else LEAN_DRIVER_TABLES
    # The computed user gets a name of its own: an alias may not shadow the column it reads.
    inner_dims = [CELL_USER if user and d == "user" else d for d in dimensions]
    inner = spend_source(
        [*inner_dims, "response_cached"],  # summed over in the outer query
        condition,
        where_dims=filtered,
        units=True,
        tables=(tables["hour"], tables["day"]) if on_rollups else None,
        computed={CELL_USER: user} if user else None,
        whole_days=has_whole_days(since, until),
    )
    select = ", ".join(f"{CELL_USER} AS user" if d == CELL_USER else d for d in inner_dims)
    group = ", ".join(inner_dims)
    sql = f"SELECT {select}, {CELL_MEASURES} FROM ({inner}) GROUP BY {group}"
    return sql, {**params, **(user_params or {}), **window_parameters(since, until)}


def read_cells(
    reader: Reader,
    scope: Scope,
    since: datetime,
    until: datetime,
    dimensions: Sequence[str] = DRIVER_DIMENSIONS,
    user: str | None = None,
    user_params: Mapping[str, Any] | None = None,
) -> dict[CellKey, Measures]:
    """Every cell with spend or requests in ``[since, until)`` within ``scope`` (``user``: see
    :func:`cells_sql`). Keys follow ``dimensions`` (a :data:`CellKey` by default)."""
    sql, params = cells_sql(scope, since, until, dimensions, user, user_params)
    return cells_of(reader.query(sql, params).records(), dimensions)


def cells_of(
    rows: Iterable[Mapping[str, Any]], dimensions: Sequence[str]
) -> dict[CellKey, Measures]:
    """Cells from the rows of a :data:`CELL_MEASURES` query, keyed by ``dimensions``."""
    cells: dict[CellKey, Measures] = {}
    for row in rows:
        key = tuple(bool(row[d]) if d == "batch" else str(row[d]) for d in dimensions)
        cells[key] = Measures(  # type: ignore[index]
            requests=int(row["requests"]),
            input_tokens=int(row["input_tokens"]),
            output_tokens=int(row["output_tokens"]),
            cache_read_tokens=int(row["cache_read_tokens"]),
            cost_uncached=Decimal(row["cost_uncached"]),
            cost_cache_read=Decimal(row["cost_cache_read"]),
            cost_output=Decimal(row["cost_output"]),
            cost_total=Decimal(row["cost_total"]),
            unit_quantities={str(k): Decimal(v) for k, v in (row["unit_quantities"] or {}).items()},
            unit_costs={str(k): Decimal(v) for k, v in (row["unit_costs"] or {}).items()},
            cached_requests=int(row["cached_requests"]),
        )
    return cells
