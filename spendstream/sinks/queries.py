"""Report queries over the deduplicated ledger (always ``FINAL``: see sinks.migrations)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

REPORT_DIMENSIONS = (
    "team",
    "app",
    "env",
    "feature",
    "user",
    "provider",
    "model",
    "operation",
    "unit",
)

# One row per cost driver of an event (docs/cost-drivers.md): "tokens" (when it has tokens or a
# token cost) and each of its units. Per driver, its cost and quantity (tokens: input + output,
# which include cached and reasoning tokens). The drivers' costs sum to cost_total exactly.
UNIT_ARRAY_JOIN = (
    "ARRAY JOIN arrayConcat(if(input_tokens + output_tokens > 0 OR cost_total != cost_units, "
    "['tokens'], []), mapKeys(unit_quantities)) AS unit"
)
UNIT_COST = "if(unit = 'tokens', cost_total - cost_units, unit_costs[unit])"
UNIT_QUANTITY = (
    "if(unit = 'tokens', toDecimal128(input_tokens + output_tokens, 9), unit_quantities[unit])"
)


def spend_report_sql(
    by: list[str], since: datetime, until: datetime, limit: int = 50
) -> tuple[str, dict[str, Any]]:
    """Spend, tokens and events grouped by ``by`` over ``[since, until)``, costliest first."""
    unknown = [name for name in by if name not in REPORT_DIMENSIONS]
    if unknown or not by:
        raise ValueError(
            f"cannot group by {unknown or by}; choose from {', '.join(REPORT_DIMENSIONS)}"
        )
    dims = ", ".join(by)
    if "unit" in by:
        return _unit_report_sql(dims, limit), {"since": since, "until": until}
    sql = (
        f"SELECT {dims}, sum(cost_total) AS cost_usd, count() AS events, "
        "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
        "sum(cache_read_tokens) AS cache_read_tokens, countIf(NOT priced) AS unpriced_events "
        "FROM ledger FINAL "
        "WHERE event_time >= {since:DateTime64(3)} AND event_time < {until:DateTime64(3)} "
        f"GROUP BY {dims} ORDER BY cost_usd DESC, {dims} LIMIT {int(limit)}"
    )
    return sql, {"since": since, "until": until}


def unpriced_report_sql(since: datetime, until: datetime) -> tuple[str, dict[str, Any]]:
    """Events stored with ``priced = false``, per provider/model and reason."""
    sql = (
        "SELECT provider, model, unpriced_reason, count() AS events, "
        "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
        "min(event_time) AS first_seen, max(event_time) AS last_seen "
        "FROM ledger FINAL WHERE NOT priced "
        "AND event_time >= {since:DateTime64(3)} AND event_time < {until:DateTime64(3)} "
        "GROUP BY provider, model, unpriced_reason ORDER BY events DESC"
    )
    return sql, {"since": since, "until": until}


def _unit_report_sql(dims: str, limit: int) -> str:
    """Spend, quantity and events per cost driver (``unit``): tokens and each usage unit."""
    return (
        f"SELECT {dims}, sum({UNIT_COST}) AS cost_usd, sum({UNIT_QUANTITY}) AS quantity, "
        "count() AS events, countIf(NOT priced) AS unpriced_events "
        f"FROM ledger FINAL {UNIT_ARRAY_JOIN} "
        "WHERE event_time >= {since:DateTime64(3)} AND event_time < {until:DateTime64(3)} "
        f"GROUP BY {dims} ORDER BY cost_usd DESC, {dims} LIMIT {int(limit)}"
    )
