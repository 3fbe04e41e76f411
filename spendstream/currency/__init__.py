"""Currencies: show USD figures in another currency at an effective-dated rate, exactly.

The ledger stays in USD. Public surface:

- :class:`RateTable` (``rate_on(day)``, ``convert_daily``), :class:`Rate`, :func:`convert`,
  :class:`Converted`, :class:`MissingRate` (names the day; never a silent 1.0) — pure, in
  :mod:`.rates`, for any part that converts (budgets, reports, FOCUS ``BillingCurrency``);
- :func:`parse_rates_csv` (``date,currency,rate``) and :class:`RateFileError`;
- :mod:`.store`: the ``fx_rates`` table (migration 1300), :func:`~.store.rate_table`.

Formatting for people: :func:`spendstream.money.format_money` (the one money rule).
"""

from __future__ import annotations

from spendstream.currency.rates import (
    BASE_CURRENCY,
    Converted,
    ImportedRate,
    MissingRate,
    Rate,
    RateFileError,
    RateTable,
    check_currency,
    convert,
    parse_rates_csv,
    table_of,
)

__all__ = [
    "BASE_CURRENCY",
    "Converted",
    "ImportedRate",
    "MissingRate",
    "Rate",
    "RateFileError",
    "RateTable",
    "check_currency",
    "convert",
    "parse_rates_csv",
    "table_of",
]
