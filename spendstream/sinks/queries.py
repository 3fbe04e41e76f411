"""Report queries over the deduplicated ledger (always ``FINAL``: see sinks.migrations), read
from the rollups for whole hours and days whenever the dimensions allow (``sinks.windows``).

One function per report, used by the CLI (directly) and the HTTP API alike, so both show the
same numbers. Callers that restrict rows (the API's team scoping) pass ``scope``: an SQL
condition on the ``team`` column and its parameters, ANDed into every WHERE clause.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from spendstream.errors import InputError
from spendstream.sinks.windows import rollup_tables, spend_source, window_parameters

REPORT_DIMENSIONS = (
    "team",
    "app",
    "env",
    "feature",
    "user",
    "provider",
    "model",
    "operation",
    "platform",  # where the call was served and priced (ledger only: no rollup keeps these)
    "region",
)
GRANULARITIES = {
    "none": None,
    "minute": "toStartOfMinute",
    "hour": "toStartOfHour",
    "day": "toStartOfDay",
    "week": "toMonday",
    "month": "toStartOfMonth",
}
# Whole names (\Z): with ``$``, ``team\n`` passed (``$`` matches before a final newline).
TAG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}\Z")
NO_SCOPE: tuple[str, dict[str, Any]] = ("1", {})
PERIOD = "event_time >= {since:DateTime64(3)} AND event_time < {until:DateTime64(3)}"

# Group by UNIT (a reserved name, not the tag "unit") for one row per cost driver of an event
# (docs/cost-drivers.md): "tokens" (when it has tokens or a token cost) and each of its units, with
# the driver's cost and quantity (tokens: input + output, which include cached and reasoning
# tokens). The drivers' costs sum to cost_total exactly.
UNIT = "unit"
# Columns are qualified (ledger.x): the reports alias their sums with the column names.
UNIT_ARRAY_JOIN = (
    "ARRAY JOIN arrayConcat(if(ledger.input_tokens + ledger.output_tokens > 0 "
    "OR ledger.cost_total != ledger.cost_units, ['tokens'], []), "
    "mapKeys(ledger.unit_quantities)) AS unit"
)
UNIT_COST = "if(unit = 'tokens', ledger.cost_total - ledger.cost_units, ledger.unit_costs[unit])"
UNIT_QUANTITY = (
    "if(unit = 'tokens', toDecimal128(ledger.input_tokens + ledger.output_tokens, 9), "
    "ledger.unit_quantities[unit])"
)


class ReportRefused(InputError, ValueError):
    """A report the caller asked for that cannot be written (a 400 wherever it is raised: the
    API's error mapping; a ValueError for the callers that catch those)."""


def tag_column(name: str, parameters: dict[str, Any]) -> str:
    """The SQL reading tag ``name``: a ledger column, or ``tags[...]`` with the key bound as a
    parameter (added to ``parameters``). Raises ValueError for names that are not tag names."""
    if name in REPORT_DIMENSIONS:
        return name
    if not TAG_NAME.match(name):  # \Z: the whole name
        raise ReportRefused(
            f"{name!r} is not a tag name: use letters, digits, '_', '.', ':' or '-' "
            f"(or one of {', '.join(REPORT_DIMENSIONS)})"
        )
    key = f"tag_{len(parameters)}"
    parameters[key] = name
    return f"tags[{{{key}:String}}]"


def spend_report_sql(
    by: Sequence[str],
    since: datetime,
    until: datetime,
    limit: int = 50,
    filters: Mapping[str, Sequence[str]] | None = None,
    granularity: str = "none",
    scope: tuple[str, dict[str, Any]] = NO_SCOPE,
) -> tuple[str, dict[str, Any]]:
    """Spend, tokens and events grouped by the tags ``by`` (and a time bucket unless
    ``granularity`` is ``none``) over ``[since, until)``, keeping rows whose tag ``k`` is one
    of ``filters[k]``; costliest first (time buckets in order). ``unit`` in ``by`` groups by
    cost driver (see :data:`UNIT`) and adds a ``quantity`` column."""
    if not by and granularity == "none":
        raise ReportRefused(f"group by at least one tag, e.g. team; or one of {REPORT_DIMENSIONS}")
    if granularity not in GRANULARITIES:
        raise ReportRefused(f"granularity {granularity!r}: choose from {', '.join(GRANULARITIES)}")
    if len(set(by)) != len(by):
        raise ReportRefused(f"group-by tags repeat: {list(by)}")
    fixed = [c for c in report_columns([UNIT] if UNIT in by else [], granularity) if c != UNIT]
    taken = sorted(set(fixed) & set(by))
    if taken:  # two columns of one name: a JSON row would keep only one of them
        raise ReportRefused(
            f"by={taken[0]!r} is also a column of the report ({', '.join(fixed)}): "
            "group by another tag, or filter on this one"
        )
    scope_sql, scope_params = scope
    params: dict[str, Any] = {"since": since, "until": until, **scope_params}
    selected, names = [], []
    bucket = GRANULARITIES[granularity]
    if bucket:
        selected.append(f"{bucket}(event_time) AS period")
        names.append("period")
    for index, name in enumerate(by):
        column = UNIT if name == UNIT else tag_column(name, params)
        selected.append(f"{column} AS `by_{index}`")
        names.append(f"`by_{index}`")
    where = [PERIOD, f"({scope_sql})"]
    for index, (name, values) in enumerate((filters or {}).items()):
        column = tag_column(name, params)
        params[f"filter_{index}"] = list(values)
        where.append(f"{column} IN {{filter_{index}:Array(String)}}")
    group = ", ".join(names)
    order = "period, cost_usd DESC" if bucket else "cost_usd DESC"
    rollup_dims = [*by, *(filters or {})]
    if granularity != "minute" and rollup_tables(rollup_dims) is not None:
        return _spend_from_rollups(
            by, list(filters or {}), where[1:], bucket, order, limit, params, (since, until)
        )
    if UNIT in by:  # per cost driver: token counts on the tokens rows, quantity on each
        measures = (
            f"sum({UNIT_COST}) AS cost_usd, count() AS events, "
            "sumIf(ledger.input_tokens, unit = 'tokens') AS input_tokens, "
            "sumIf(ledger.output_tokens, unit = 'tokens') AS output_tokens, "
            "sumIf(ledger.cache_read_tokens, unit = 'tokens') AS cache_read_tokens, "
            f"countIf(NOT priced) AS unpriced_events, sum({UNIT_QUANTITY}) AS quantity"
        )
        source = f"ledger FINAL {UNIT_ARRAY_JOIN}"
    else:
        measures = (
            "sum(cost_total) AS cost_usd, count() AS events, "
            "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
            "sum(cache_read_tokens) AS cache_read_tokens, countIf(NOT priced) AS unpriced_events"
        )
        source = "ledger FINAL"
    sql = (
        f"SELECT {', '.join(selected)}, {measures} "
        f"FROM {source} WHERE {' AND '.join(where)} "
        f"GROUP BY {group} ORDER BY {order}, {group} LIMIT {int(limit)}"
    )
    return sql, params


def _spend_from_rollups(
    by: Sequence[str],
    filtered: Sequence[str],
    conditions: Sequence[str],
    bucket: str | None,
    order: str,
    limit: int,
    params: dict[str, Any],
    period: tuple[datetime, datetime],
) -> tuple[str, dict[str, Any]]:
    """:func:`spend_report_sql` over ``sinks.windows.spend_source``: whole hours and days from
    the smallest rollup holding ``by``, the filtered tags and ``team`` (scope), the edges from
    the ledger."""
    inner = spend_source(by, " AND ".join(conditions), bucket or "toDate", [*filtered, "team"])
    selected = (["day AS period"] if bucket else []) + [
        f"{name} AS `by_{index}`" for index, name in enumerate(by)
    ]
    names = (["period"] if bucket else []) + [f"`by_{index}`" for index in range(len(by))]
    group = ", ".join(names)
    sql = (
        f"SELECT {', '.join(selected)}, sum(m_cost_total) AS cost_usd, sum(m_events) AS events, "
        "sum(m_input_tokens) AS input_tokens, sum(m_output_tokens) AS output_tokens, "
        "sum(m_cache_read_tokens) AS cache_read_tokens, "
        "sum(m_unpriced_events) AS unpriced_events "
        f"FROM ({inner}) GROUP BY {group} ORDER BY {order}, {group} LIMIT {int(limit)}"
    )
    return sql, {**params, **window_parameters(*period)}


def report_columns(by: Sequence[str], granularity: str = "none") -> list[str]:
    """The column names of :func:`spend_report_sql`'s rows (tags keep their own names)."""
    lead = ["period"] if GRANULARITIES.get(granularity) else []
    tail = ["cost_usd", "events", "input_tokens", "output_tokens", "cache_read_tokens"]
    quantity = ["quantity"] if UNIT in by else []
    return [*lead, *by, *tail, "unpriced_events", *quantity]


def unpriced_report_sql(
    since: datetime, until: datetime, scope: tuple[str, dict[str, Any]] = NO_SCOPE
) -> tuple[str, dict[str, Any]]:
    """Events stored with ``priced = false``, per provider/model and reason."""
    scope_sql, scope_params = scope
    sql = (
        "SELECT provider, model, unpriced_reason, count() AS events, "
        "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
        "min(event_time) AS first_seen, max(event_time) AS last_seen "
        f"FROM ledger FINAL WHERE NOT priced AND {PERIOD} AND ({scope_sql}) "
        "GROUP BY provider, model, unpriced_reason ORDER BY events DESC"
    )
    return sql, {"since": since, "until": until, **scope_params}
