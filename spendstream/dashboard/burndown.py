"""A budget's burn-down: its cumulative spend through the current period, bucket by bucket.

The same scope SQL and period bounds as the budget's own figures (``sinks.scopes``,
``periods``), so the last point equals the spend ``/budgets/status`` reports for it.
Like the figures, whole hours come from the smallest hourly rollup holding the scope's keys
and only the partial-hour edges from ``ledger FINAL`` — when the budget's time zone is a whole
number of hours from UTC, so that every hour falls in one bucket (else all from the ledger).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from spendstream.alerts.adjust import Adjuster, carry, previous_bounds
from spendstream.alerts.config import BudgetConfig
from spendstream.alerts.figures import split_hours
from spendstream.config import CurrencySettings
from spendstream.currency import Converted, Rate, convert
from spendstream.currency.store import as_date
from spendstream.money import to_decimal
from spendstream.periods import period_bounds
from spendstream.sinks.access import Reader
from spendstream.sinks.params import Params, moment, string
from spendstream.sinks.scopes import scope_sql
from spendstream.sinks.windows import rollup_tables

# Hour buckets for day periods; day buckets (in the budget's time zone) for longer ones.
BUCKETS = {"day": "toStartOfHour"}


def _whole_hours_from_utc(zone: str, moments: Sequence[datetime]) -> bool:
    offsets = (moment.astimezone(ZoneInfo(zone)).utcoffset() for moment in moments)
    return all(offset is not None and offset.total_seconds() % 3600 == 0 for offset in offsets)


def burndown_sql(
    budget: BudgetConfig, start: datetime, end: datetime, params: Params, extra: str = "1"
) -> str:
    """Spend per bucket of ``budget`` over ``[start, end)``, ``extra`` ANDed (a condition on
    ``team``: team scoping); its values are bound in ``params``."""
    bucket = BUCKETS.get(budget.period, "toStartOfDay")
    zone = string(params, budget.timezone)
    spend = budget.spend_sql(params)  # a unit budget: its unit
    where = f"{scope_sql(budget.scope_filters, params)} AND ({extra})"
    tables = rollup_tables(["team", *budget.scope_filters])  # None for a tag no rollup keeps
    edges, hours = split_hours(start, end)
    if tables is None or hours is None or not _whole_hours_from_utc(budget.timezone, hours):
        edges, hours = [(start, end)], None
    ranges = " OR ".join(
        f"(event_time >= {moment(params, a)} AND event_time < {moment(params, b)})"
        for a, b in edges
    )
    ranges = ranges or "0"  # both ends on whole hours: no partial hour to read from the ledger
    parts = [
        f"SELECT {bucket}(event_time, {zone}) AS bucket, sum({spend}) AS spend "
        f"FROM ledger FINAL WHERE {where} AND ({ranges}) GROUP BY bucket"
    ]
    if tables is not None and hours is not None:
        parts.append(
            f"SELECT {bucket}(window_start, {zone}) AS bucket, sum({spend}) AS spend "
            f"FROM {tables[0]} FINAL WHERE {where} AND window_start >= {moment(params, hours[0])} "
            f"AND window_start < {moment(params, hours[1])} GROUP BY bucket"
        )
    union = " UNION ALL ".join(parts)
    return f"SELECT bucket, sum(spend) AS spend FROM ({union}) GROUP BY bucket ORDER BY bucket"


def burndown(
    reader: Reader,
    budget: BudgetConfig,
    now: datetime,
    extra: str = "1",
    parameters: dict[str, Any] | None = None,
    currency: CurrencySettings | None = None,
) -> dict[str, Any]:
    """``period_start``, ``period_end``, ``limit`` and ``points``: ``[bucket start, cumulative
    spend at the bucket's end]`` for every bucket with spend, up to ``now``; in the budget's
    currency (each bucket at its local day's rate, ``currency`` saying where rates come from)
    and with its rollover, as its figures."""
    start, end = period_bounds(budget.period, budget.timezone, now, budget.fiscal_year_start)
    params = dict(parameters or {})
    sql = burndown_sql(budget, start, min(now, end), params, extra)
    adjuster = Adjuster(reader, currency or CurrencySettings())
    table = adjuster.table(budget.currency) if budget.currency else None
    if table is not None:  # each bucket's local day, for its rate
        zone = string(params, budget.timezone)
        sql = f"SELECT bucket, spend, toDate(bucket, {zone}) FROM ({sql})"
    total, points = Decimal(0), []
    rates: list[Rate] = []
    for bucket, spend, *day in reader.query(sql, params).rows:
        amount = to_decimal(spend)
        if table is not None:
            rate = table.rate_on(as_date(day[0]))
            amount = convert(amount, rate)
            if not rates or rates[-1] != rate:
                rates.append(rate)
        total += amount
        points.append([bucket, total])
    limit = budget.limit
    if budget.rollover_cap is not None:
        limit += carry(budget, adjuster.spend(budget, *previous_bounds(budget, start)))
    return {
        "budget": budget.name,
        "period_start": start,
        "period_end": end,
        "limit": limit,
        "spend": total,
        "points": points,
        "currency": budget.currency or "USD",
        "rate": Converted(budget.currency, total, tuple(rates)).describe()
        if budget.currency
        else "",
    }
