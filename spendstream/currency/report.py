"""Spend reports in another currency: each UTC day's cost at that day's rate, summed exactly.

A report asks the ledger for its rows per day (``granularity = "day"``, or finer), converts
each row at the rate in force on its day, then (for a report without time buckets) adds the
days of each group back together: ``cost_usd`` stays, ``cost_eur`` (say) and ``rate`` (the
rate, or span of daily rates, behind it) are added after it. A day with cost and no rate in
force raises :class:`~spendstream.currency.MissingRate`, naming the day.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from spendstream.currency.rates import Converted, Rate, RateTable, convert
from spendstream.errors import InputError
from spendstream.sinks.access import QueryResult, Reader
from spendstream.sinks.queries import report_columns, spend_report_sql

# Report granularities whose buckets fall inside one UTC day (so one rate per row).
DAILY_OR_FINER = ("minute", "hour", "day")
ROW_LIMIT = 100_000  # rows per day and group a converted report reads at most


def day_of(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def converted_report(
    result: QueryResult, by: Sequence[str], table: RateTable, granularity: str, limit: int
) -> QueryResult:
    """``result`` (a spend report with a leading ``period`` column, buckets of a day or less)
    with ``cost_<currency>`` and ``rate`` after ``cost_usd``; regrouped without the period when
    ``granularity`` is ``none`` (costliest first, at most ``limit`` groups)."""
    width = 1 + len(by)  # period and the group tags lead; cost_usd and the counts follow
    measures = list(result.columns[width:])
    assert measures[0] == "cost_usd", result.columns
    keep_period = granularity != "none"
    # per group: [cost_usd, converted, *counts] and the rates used
    totals: dict[tuple[Any, ...], tuple[list[Any], list[Rate]]] = {}
    for row in result.rows:
        usd = Decimal(str(row[width]))
        rate = table.rate_on(day_of(row[0])) if usd else None
        key = tuple(row[:width]) if keep_period else tuple(row[1:width])
        sums, rates = totals.setdefault(
            key, ([Decimal(0), Decimal(0), *[0] * (len(measures) - 1)], [])
        )
        sums[0] += usd
        sums[1] += convert(usd, rate) if rate is not None else Decimal(0)
        for index, count in enumerate(row[width + 1 :], start=2):
            sums[index] += count
        if rate is not None and (not rates or rates[-1] != rate):
            rates.append(rate)
    rows = [
        [
            *key,
            sums[0],
            sums[1],
            Converted(table.currency, sums[1], tuple(rates)).describe(),
            *sums[2:],
        ]
        for key, (sums, rates) in totals.items()
    ]
    if not keep_period:
        rows.sort(key=lambda row: row[len(by)], reverse=True)
        rows = rows[:limit]
    head = ["period", *by] if keep_period else list(by)
    name = f"cost_{table.currency.lower()}"
    return QueryResult([*head, "cost_usd", name, "rate", *measures[1:]], rows)


def spend_in_currency(
    reader: Reader,
    table: RateTable,
    by: Sequence[str],
    since: datetime,
    until: datetime,
    limit: int = 50,
    filters: Mapping[str, Sequence[str]] | None = None,
    granularity: str = "none",
    scope: tuple[str, dict[str, Any]] | None = None,
) -> QueryResult:
    """:func:`~spendstream.sinks.queries.spend_report_sql`'s report with each row converted
    (see the module docstring); raises InputError for a granularity longer than a day or a
    period too large to convert, MissingRate for a day without its rate."""
    if granularity != "none" and granularity not in DAILY_OR_FINER:
        raise InputError(
            f"granularity {granularity!r} spans several days' rates; convert with granularity "
            f"none, {', '.join(DAILY_OR_FINER)}"
        )
    daily = "day" if granularity == "none" else granularity
    extra = {} if scope is None else {"scope": scope}
    sql, params = spend_report_sql(by, since, until, ROW_LIMIT, filters, daily, **extra)
    result = reader.query(sql, params)
    if len(result.rows) >= ROW_LIMIT:
        raise InputError(
            f"more than {ROW_LIMIT} day and group rows to convert; narrow the period or group by "
            "fewer tags"
        )
    rows = QueryResult(report_columns(by, daily), result.rows)
    return converted_report(rows, by, table, granularity, limit)
