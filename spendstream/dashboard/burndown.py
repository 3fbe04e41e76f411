"""A budget's burn-down: its cumulative spend through the current period, bucket by bucket.

The same scope SQL and period bounds as the budget's own figures (``alerts.scope``,
``alerts.periods``), so the last point equals the spend ``/budgets/status`` reports for it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from spendstream.alerts.config import BudgetConfig
from spendstream.alerts.figures import time_sql, to_decimal
from spendstream.alerts.periods import period_bounds
from spendstream.alerts.scope import scope_sql, sql_string
from spendstream.sinks.access import Reader

# Hour buckets for day periods; day buckets (in the budget's time zone) for longer ones.
BUCKETS = {"day": "toStartOfHour"}


def burndown_sql(budget: BudgetConfig, start: datetime, end: datetime, extra: str = "1") -> str:
    """Spend per bucket of ``budget`` over ``[start, end)``, ``extra`` ANDed (team scoping)."""
    bucket = BUCKETS.get(budget.period, "toStartOfDay")
    zone = sql_string(budget.timezone)
    return (
        f"SELECT {bucket}(event_time, {zone}) AS bucket, sum(cost_total) AS spend "
        f"FROM ledger FINAL WHERE {scope_sql(budget.scope_filters)} AND ({extra}) "
        f"AND event_time >= {time_sql(start)} AND event_time < {time_sql(end)} "
        "GROUP BY bucket ORDER BY bucket"
    )


def burndown(
    reader: Reader,
    budget: BudgetConfig,
    now: datetime,
    extra: str = "1",
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``period_start``, ``period_end``, ``limit`` and ``points``: ``[bucket start, cumulative
    spend at the bucket's end]`` for every bucket with spend, up to ``now``."""
    start, end = period_bounds(budget.period, budget.timezone, now)
    result = reader.query(burndown_sql(budget, start, min(now, end), extra), parameters)
    total, points = Decimal(0), []
    for bucket, spend in result.rows:
        total += to_decimal(spend)
        points.append([bucket, total])
    return {
        "budget": budget.name,
        "period_start": start,
        "period_end": end,
        "limit": budget.limit,
        "spend": total,
        "points": points,
    }
