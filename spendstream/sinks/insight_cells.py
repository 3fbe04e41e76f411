"""The insights' hourly cells (migration 75): what ``rightsize``, ``batch``, ``prompts``,
``prompt_growth``, ``truncation`` and the realised/response parts of ``caching`` read instead of
a grouped scan of ``ledger FINAL``.

One row per UTC hour and combination of :data:`CELL_DIMENSIONS` (the scope columns the insights
filter on, and the per-event flags they split by: ``operation``, ``price_ref``, ``batch``,
``priced``, ``response_cached``, ``long_input`` for the long-context tier bucket and the tag
``interactive`` for the batch insight), with exact sums (:data:`CELL_MEASURES`, conditional
sums where an insight filters rows, e.g. truncated calls), the **exact** token quantile
states ``quantilesExact(0.5, 0.95)`` of input and output tokens (the state keeps every value,
so merging states over any set of cells gives the same p50/p95 as the ledger's events; twice:
of the 64-bit counts and of 32-bit ones, migration 79, which merge in half the time) and the
set of apps (``groupUniqArray``) for the recommendations.

The table is a ReplacingMergeTree(computed_at), like the other rollups: the hours a batch touched
are recomputed from the deduplicated ledger (``sinks.ledger.REFRESH_STEPS``; a closed hour at
once, the open hour at its close or on a drain: ``sinks.open_windows``) and the newer row
replaces the older; reads use ``FINAL`` and take the hours whose cells may lag from the ledger.
``app``, ``env`` and ``user`` are left out (they would multiply the rows by their values): a
scope naming them reads the ledger.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from spendstream.sinks.migrations import MONEY, QUANTITY, Migration
from spendstream.sinks.open_windows import CELLS_PENDING_TABLE, PENDING_TABLE

CELLS_TABLE = "rollup_hour_insights"
CELL_DIMENSIONS: tuple[tuple[str, str, str], ...] = (
    # (column, type, ledger expression)
    ("team", "LowCardinality(String)", "team"),
    ("feature", "LowCardinality(String)", "feature"),
    ("provider", "LowCardinality(String)", "provider"),
    ("model", "LowCardinality(String)", "model"),
    ("operation", "LowCardinality(String)", "operation"),
    ("price_ref", "LowCardinality(String)", "price_ref"),
    ("batch", "Bool", "batch"),
    ("priced", "Bool", "priced"),
    ("response_cached", "Bool", "response_cached"),
    ("long_input", "UInt64", "long_input"),
    ("interactive", "LowCardinality(String)", "tags['interactive']"),
)
CELL_DIMENSION_NAMES = tuple(name for name, _type, _sql in CELL_DIMENSIONS)
# The tag the `interactive` dimension keeps (the default of `[insights] interactive_tag`).
INTERACTIVE_TAG = "interactive"
UNCACHED = "input_tokens - cache_read_tokens - cache_write_tokens"
HAS_UNCACHED = "input_tokens > cache_read_tokens + cache_write_tokens"
HAS_CACHED = "cache_read_tokens + cache_write_tokens > 0"
TRUNCATED = "finish_reason = 'length'"
# An event with a 'tokens' driver in cost_by_unit (sinks.queries.UNIT_ARRAY_JOIN).
HAS_TOKEN_COST = "input_tokens + output_tokens > 0 OR cost_total != cost_units"
CELL_MEASURES: tuple[tuple[str, str, str], ...] = (
    # (column, type, ledger aggregate); every one a sum, so cells add up exactly.
    ("events", "UInt64", "count()"),
    ("requests", "UInt64", "sum(request_count)"),
    *(
        (name, "UInt64", f"sum({name})")
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        )
    ),
    *(
        (name, MONEY, f"sum({name})")
        for name in (
            "cost_total",
            "cost_units",
            "cost_input",
            "cost_cache_read",
            "cost_cache_write",
            "cost_avoided",
        )
    ),
    # caching: the uncached input rate (events with uncached input), the cached calls' costs
    ("rate_cost_input", MONEY, f"sumIf(cost_input, {HAS_UNCACHED})"),
    ("rate_uncached_tokens", "UInt64", f"sumIf({UNCACHED}, {HAS_UNCACHED})"),
    ("cached_cost_cache_read", MONEY, f"sumIf(cost_cache_read, {HAS_CACHED})"),
    ("cached_cost_cache_write", MONEY, f"sumIf(cost_cache_write, {HAS_CACHED})"),
    # the cache_savings audit: calls that read or wrote the prompt cache (migration 78)
    ("cached_events", "UInt64", f"countIf({HAS_CACHED})"),
    # the cost_by_unit audit (migration 78): the events with a token cost, and per usage unit
    # the events naming it, its quantity and its cost (only units with a quantity count)
    ("token_events", "UInt64", f"countIf({HAS_TOKEN_COST})"),
    (
        "unit_events",
        "Map(String, UInt64)",
        "sumMap(mapApply((k, v) -> (k, toUInt64(1)), unit_quantities))",
    ),
    ("unit_quantities", f"Map(String, {QUANTITY})", "sumMap(unit_quantities)"),
    (
        "unit_costs",
        f"Map(String, {MONEY})",
        "sumMap(mapFilter((k, v) -> mapContains(unit_quantities, k), unit_costs))",
    ),
    # truncation
    ("reporting_events", "UInt64", "countIf(finish_reason != '')"),
    ("truncated_events", "UInt64", f"countIf({TRUNCATED})"),
    ("truncated_cost", MONEY, f"sumIf(cost_total, {TRUNCATED})"),
)
QUANTILES = "AggregateFunction(quantilesExact(0.5, 0.95), UInt64)"
# The same states of 32-bit values (migration 79): half the bytes to read and merge, so the
# reads of every cell's quantiles (the recommendations) take about half the time. Token counts
# above NARROW_LIMIT are clipped to it; clipping keeps the order, so a merged quantile below the
# limit is the exact one, and one at the limit sends the reader to the wide states.
NARROW_LIMIT = 2**32 - 1
NARROW_QUANTILES = "AggregateFunction(quantilesExact(0.5, 0.95), UInt32)"
# Each wide state column and its narrow twin.
NARROW_STATES = {"input_quantiles": "input_quantiles32", "output_quantiles": "output_quantiles32"}


def _narrow_state(tokens: str) -> str:
    return f"quantilesExactState(0.5, 0.95)(toUInt32(least({tokens}, {NARROW_LIMIT})))"


CELL_STATES: tuple[tuple[str, str, str], ...] = (
    # (column, type, ledger aggregate state)
    ("input_quantiles", QUANTILES, "quantilesExactState(0.5, 0.95)(input_tokens)"),
    ("output_quantiles", QUANTILES, "quantilesExactState(0.5, 0.95)(output_tokens)"),
    ("input_quantiles32", NARROW_QUANTILES, _narrow_state("input_tokens")),
    ("output_quantiles32", NARROW_QUANTILES, _narrow_state("output_tokens")),
    # the apps of a cell (app is no dimension): recommendations name one when there is one
    ("apps", "AggregateFunction(groupUniqArray, String)", "groupUniqArrayState(toString(app))"),
)
CELL_COLUMNS = (
    "window_start",
    *CELL_DIMENSION_NAMES,
    *(name for name, _type, _sql in CELL_MEASURES),
    *(name for name, _type, _sql in CELL_STATES),
)


def _chosen(
    columns: tuple[tuple[str, str, str], ...], names: Collection[str] | None
) -> tuple[tuple[str, str, str], ...]:
    return columns if names is None else tuple(c for c in columns if c[0] in names)


def cells_from_ledger_select(names: Collection[str] | None = None) -> str:
    """``SELECT`` of the cell columns (in :data:`CELL_COLUMNS` order; measures and states
    named ``m_<column>``, as :func:`cells_from_table_select`) grouped from the ledger rows the
    caller's ``FROM ledger FINAL WHERE …`` keeps; ends with :func:`group_by`. ``names``: only
    those measures and states (every dimension), else all."""
    # Cast to the stored types: a union with the table must not widen to a Variant type (a
    # difference of UInt64 columns is Int64).
    dims = ", ".join(f"CAST({sql}, '{kind}') AS {name}" for name, kind, sql in CELL_DIMENSIONS)
    measures = _chosen(CELL_MEASURES, names)
    values = [
        *(f"CAST({sql}, '{kind}') AS m_{name}" for name, kind, sql in measures),
        *(f"{sql} AS m_{name}" for name, _type, sql in _chosen(CELL_STATES, names)),
    ]
    return "SELECT toDateTime(toStartOfHour(event_time), 'UTC') AS window_start, " + ", ".join(
        [dims, *values]
    )


def cells_from_table_select(names: Collection[str] | None = None) -> str:
    """``SELECT`` of the stored cells, measures and states named ``m_<column>`` (``names``:
    only those, as :func:`cells_from_ledger_select`)."""
    values = (*_chosen(CELL_MEASURES, names), *_chosen(CELL_STATES, names))
    named = "".join(f", {name} AS m_{name}" for name, _t, _s in values)
    return f"SELECT window_start, {', '.join(CELL_DIMENSION_NAMES)}{named}"


def group_by() -> str:
    return "GROUP BY " + ", ".join(("window_start", *CELL_DIMENSION_NAMES))


# Where the whole hours read from the table end: h1, or the first hour of [h0, h1) whose cells
# may lag the ledger (marked in rollup_pending or rollup_pending_cells: sinks.open_windows), from
# which on the ledger answers. A scalar sub-query: the server evaluates it before it selects the
# ledger's granules, so the ledger is read from that hour on only.
_IN_HOURS = "window_start >= {h0:DateTime64(3)} AND window_start < {h1:DateTime64(3)}"
LAGGING_FROM = (
    "(SELECT ifNull(minOrNull(toDateTime64(window_start, 3)), {h1:DateTime64(3)}) FROM ("
    f"SELECT window_start FROM {PENDING_TABLE} FINAL "
    f"WHERE unit = 'hour' AND NOT done AND {_IN_HOURS} UNION ALL "
    f"SELECT window_start FROM {CELLS_PENDING_TABLE} FINAL WHERE NOT done AND {_IN_HOURS}))"
)


def cells_source(names: Collection[str] | None = None) -> str:
    """The cells of a period [since, until) as one sub-query: whole hours [h0, h1) from the
    table, the partial hours at the edges from ledger FINAL grouped the same way
    (sinks.windows' cut points), so sums are the ledger's to the last digit and merging the
    quantile states gives the ledger's exact quantiles. The whole hours from the first whose
    cells may lag the ledger on (the open hour's are refreshed at its close: sinks.open_windows)
    come from the ledger too (:data:`LAGGING_FROM`). ``names``: only those measures and states
    (a narrower query plans in about half the time), else all."""
    return (
        f"{cells_from_ledger_select(names)} FROM ledger FINAL "
        "WHERE (event_time >= {since:DateTime64(3)} AND event_time < {h0:DateTime64(3)}) "
        f"OR (event_time >= {LAGGING_FROM} AND event_time < {{until:DateTime64(3)}}) "
        f"{group_by()} UNION ALL "
        f"{cells_from_table_select(names)} FROM {CELLS_TABLE} FINAL "
        f"WHERE window_start >= {{h0:DateTime64(3)}} AND window_start < {LAGGING_FROM} "
        "AND events > 0"  # an emptied cell (see REFRESH_CELLS) is no cell
    )


CELLS_SOURCE = cells_source()
# The same quantile levels as the states (p50, p95): [1] is p50, [2] p95.
MERGE = "quantilesExactMerge(0.5, 0.95)"

CREATE_CELLS = (
    f"CREATE TABLE IF NOT EXISTS {CELLS_TABLE} (\n    window_start DateTime('UTC'),\n    "
    + ",\n    ".join(
        f"{name} {kind}" for name, kind, _sql in (*CELL_DIMENSIONS, *CELL_MEASURES, *CELL_STATES)
    )
    + ",\n    computed_at DateTime64(6, 'UTC')\n) ENGINE = ReplacingMergeTree(computed_at)\n"
    "PARTITION BY toYYYYMM(window_start)\n"
    f"ORDER BY (window_start, {', '.join(CELL_DIMENSION_NAMES)})"
)
_INSERT = f"INSERT INTO {CELLS_TABLE} ({', '.join(CELL_COLUMNS)}, computed_at) "
# Migration 75 fills the cells from the whole ledger once (re-runnable: same keys, FINAL).
BACKFILL_CELLS = f"{_INSERT}{cells_from_ledger_select()}, now64(6) FROM ledger FINAL {group_by()}"
_TOUCHED = (
    "FROM ledger FINAL "
    "WHERE event_time >= {lo:DateTime64(3)} AND event_time < {hi:DateTime64(3)} "
    "AND toDateTime(toStartOfHour(event_time)) IN {starts:Array(DateTime)} "
)
# A state with no value, of each state column's type (aggregated over a false condition).
EMPTY_STATES = {
    "input_quantiles": "quantilesExactStateIf(0.5, 0.95)(toUInt64(0), 0)",
    "output_quantiles": "quantilesExactStateIf(0.5, 0.95)(toUInt64(0), 0)",
    "input_quantiles32": "quantilesExactStateIf(0.5, 0.95)(toUInt32(0), 0)",
    "output_quantiles32": "quantilesExactStateIf(0.5, 0.95)(toUInt32(0), 0)",
    "apps": "groupUniqArrayStateIf(toString(''), 0)",
}
assert set(EMPTY_STATES) == {name for name, _type, _sql in CELL_STATES}
_KEY = ", ".join(("window_start", *CELL_DIMENSION_NAMES))


def _zero(kind: str) -> str:
    """The empty value of a measure's type: an empty map, else 0."""
    return "map()" if kind.startswith("Map(") else "0"


# A cell of a touched hour that the ledger no longer has (a re-rating moved its events to
# another price_ref, or made them priced): written again with nothing in it, so FINAL keeps
# the empty one. Reads skip cells without events.
_VANISHED = (
    f"SELECT {_KEY}, "
    # named m_<column>: an alias named as a column would shadow it in the WHERE below
    + ", ".join(f"CAST({_zero(kind)}, '{kind}') AS m_{name}" for name, kind, _sql in CELL_MEASURES)
    + ", "
    + ", ".join(f"{EMPTY_STATES[name]} AS m_{name}" for name, _type, _sql in CELL_STATES)
    + f", now64(6) FROM {CELLS_TABLE} FINAL "
    "WHERE window_start IN {starts:Array(DateTime)} AND events > 0 "
    f"AND ({_KEY}) NOT IN (SELECT {_KEY} FROM "
    f"({cells_from_ledger_select()} {_TOUCHED}{group_by()})) GROUP BY {_KEY}"
)
REFRESH_CELLS = (
    f"{_INSERT}{cells_from_ledger_select()}, now64(6) {_TOUCHED}{group_by()} UNION ALL {_VANISHED}"
)
"""The hours a batch touched, recomputed from the ledger, and their cells the ledger no longer
has emptied (a ``REFRESH_STEPS`` step of unit hour: parameters ``starts``, ``lo``, ``hi``)."""


def _add_columns(columns: Iterable[tuple[str, str, str]], names: Collection[str]) -> str:
    """The ALTER adding those of ``columns`` (name, type, ledger aggregate) named in ``names``."""
    added = (f"ADD COLUMN IF NOT EXISTS {n} {kind}" for n, kind, _sql in columns if n in names)
    return f"ALTER TABLE {CELLS_TABLE} " + ", ".join(added)


# Migration 78 adds the measures introduced after 75 (the cached calls of cache_savings, the
# per-unit counts of cost_by_unit) and fills every cell again from the ledger (the newer row
# replaces the older under FINAL; a database created with them has them already).
ADDED_MEASURES = ("cached_events", "token_events", "unit_events", "unit_quantities", "unit_costs")
ADD_MEASURES = _add_columns(CELL_MEASURES, ADDED_MEASURES)

# Migration 79 adds the narrow quantile states and fills every cell again, as 78.
ADD_NARROW_STATES = _add_columns(CELL_STATES, NARROW_STATES.values())

MIGRATIONS: tuple[Migration, ...] = (
    Migration(75, "insight_cells", (CREATE_CELLS, BACKFILL_CELLS)),
    # The fill writes every column of today's cells, so 78 adds 79's states too: a ledger of a
    # release before 78 (cells without either) upgrades in one step.
    Migration(78, "insight_cells_audit_counts", (ADD_MEASURES, ADD_NARROW_STATES, BACKFILL_CELLS)),
    Migration(79, "insight_cells_narrow_quantiles", (ADD_NARROW_STATES, BACKFILL_CELLS)),
)
