"""Report queries over the deduplicated ledger (always ``FINAL``: see sinks.migrations), read
from the rollups for whole hours and days whenever the dimensions allow (``sinks.windows``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from spendstream.sinks.windows import spend_source, window_parameters

REPORT_DIMENSIONS = ("team", "app", "env", "feature", "user", "provider", "model", "operation")


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
    sql = (
        f"SELECT {dims}, sum(m_cost_total) AS cost_usd, sum(m_events) AS events, "
        "sum(m_input_tokens) AS input_tokens, sum(m_output_tokens) AS output_tokens, "
        "sum(m_cache_read_tokens) AS cache_read_tokens, "
        "sum(m_unpriced_events) AS unpriced_events "
        f"FROM ({spend_source(by)}) "
        f"GROUP BY {dims} ORDER BY cost_usd DESC, {dims} LIMIT {int(limit)}"
    )
    return sql, window_parameters(since, until)


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
