"""Budget figures in the budget's own currency, and with last period's rollover.

- ``currency = "EUR"``: the limit is in euros; the period's spend is each day's USD spend (days
  in the budget's time zone) times that day's rate, summed exactly (Decimal). The forecast and
  spike windows (the last hours) are converted at the rate in force today. A day with spend and
  no rate in force raises :class:`~spendstream.currency.MissingRate`, naming the day.
- ``rollover_cap = C``: this period's limit is the configured limit plus the previous period's
  unused budget (limit minus its spend; negative after an overspend), carried at most ``C``
  either way. The carry is taken from the previous period's configured limit, not its own
  carried one, so it never compounds over periods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from spendstream.alerts.config import Alerting, BudgetConfig
from spendstream.alerts.figures import BudgetFigures, compute_figures
from spendstream.config import CurrencySettings
from spendstream.currency import MissingRate, RateTable, convert
from spendstream.currency.store import as_date, rate_table
from spendstream.money import to_decimal
from spendstream.periods import period_bounds
from spendstream.sinks.access import Reader
from spendstream.sinks.params import Params, moment, string
from spendstream.sinks.scopes import scope_sql


def daily_spend(
    reader: Reader, budget: BudgetConfig, start: datetime, end: datetime
) -> dict[date, Decimal]:
    """The budget's USD spend per local day (its time zone) in ``[start, end)``."""
    params: Params = {}
    zone = string(params, budget.timezone)
    rows = reader.query(
        f"SELECT toDate(event_time, {zone}) AS day, sum({budget.spend_sql(params)}) "
        f"FROM ledger FINAL WHERE ({scope_sql(budget.scope_filters, params)}) "
        f"AND event_time >= {moment(params, start)} AND event_time < {moment(params, end)} "
        "GROUP BY day ORDER BY day",
        params,
    ).rows
    return {as_date(day): to_decimal(spend) for day, spend in rows}


def previous_bounds(budget: BudgetConfig, start: datetime) -> tuple[datetime, datetime]:
    """The period before the one starting at ``start``."""
    return period_bounds(
        budget.period, budget.timezone, start - timedelta(milliseconds=1), budget.fiscal_year_start
    )


def carry(budget: BudgetConfig, previous_spend: Decimal) -> Decimal:
    """What rolls over: the previous period's unused budget (negative: its overspend), capped."""
    assert budget.rollover_cap is not None
    cap = budget.rollover_cap
    return max(-cap, min(cap, budget.limit - previous_spend))


class Adjuster:
    """Applies currencies and rollover to computed figures (rate tables read once per pass)."""

    def __init__(self, reader: Reader, settings: CurrencySettings) -> None:
        self.reader = reader
        self.settings = settings
        self.tables: dict[str, RateTable] = {}

    def table(self, currency: str) -> RateTable:
        if currency not in self.tables:
            self.tables[currency] = rate_table(self.reader, self.settings, currency)
        return self.tables[currency]

    def spend(self, budget: BudgetConfig, start: datetime, end: datetime) -> Decimal:
        by_day = daily_spend(self.reader, budget, start, end)
        if budget.currency is None:
            return sum(by_day.values(), Decimal(0))
        return self.table(budget.currency).convert_daily(by_day).amount

    def adjust(self, figures: BudgetFigures) -> BudgetFigures:
        budget, w = figures.budget, figures.windows
        if budget.currency is not None:
            table = self.table(budget.currency)
            by_day = daily_spend(self.reader, budget, w.period_start, w.period_end)
            converted = table.convert_daily(by_day)
            today = table.rate_on(w.now.astimezone(ZoneInfo(budget.timezone)).date())
            figures = replace(
                figures,
                spend=converted.amount,
                burn_spend=convert(figures.burn_spend, today),
                recent_spend=convert(figures.recent_spend, today),
                baseline_spend=convert(figures.baseline_spend, today),
                late_spend=convert(figures.late_spend, today),
                converted=converted,
            )
        if budget.rollover_cap is not None:
            previous = self.spend(budget, *previous_bounds(budget, w.period_start))
            figures = replace(figures, carried=carry(budget, previous))
        return figures


def adjust_figures(
    reader: Reader,
    figures: Sequence[BudgetFigures],
    settings: CurrencySettings,
    missing: list[MissingRate] | None = None,
) -> list[BudgetFigures]:
    """``figures`` in their budgets' currencies and with their rollover. A budget whose rate
    is missing raises, or, with a ``missing`` list, is left out and its error appended."""
    adjuster = Adjuster(reader, settings)
    adjusted = []
    for f in figures:
        if f.budget.currency is None and f.budget.rollover_cap is None:
            adjusted.append(f)
            continue
        try:
            adjusted.append(adjuster.adjust(f))
        except MissingRate as exc:
            if missing is None:
                raise
            missing.append(exc)
    return adjusted


def budget_figures(
    reader: Reader,
    budgets: Sequence[BudgetConfig],
    alerting: Alerting,
    now: datetime,
    missing: list[MissingRate] | None = None,
    instants: Sequence[datetime] | None = None,
) -> list[BudgetFigures]:
    """:func:`~spendstream.alerts.figures.compute_figures`, then :func:`adjust_figures`."""
    computed = compute_figures(reader, budgets, alerting.alerts, now, instants)
    return adjust_figures(reader, computed, alerting.currency, missing)
