"""FOCUS rows billed in another currency: each row's billing figures converted from USD at the
rate in force on its charge day (a UTC day), exactly.

The sinks build FOCUS rows in USD and know no rates (layers: ``currency`` sits above
``sinks``); :class:`FocusInCurrency` is the conversion :func:`~spendstream.sinks.focus_export.
export_focus` applies to the finished rows (invoiced ``BilledCost`` included):

- ``BillingCurrency`` becomes the currency; ``BilledCost``, ``EffectiveCost``, ``ListCost``,
  ``ContractedCost``, ``ListUnitPrice`` and ``ContractedUnitPrice`` are multiplied by the rate
  (FOCUS: all "denominated in the BillingCurrency"), so a unit price times its quantity is still
  its cost, exactly;
- ``PricingCurrency`` stays ``USD`` with ``PricingCurrencyListUnitPrice``,
  ``PricingCurrencyContractedUnitPrice`` and ``PricingCurrencyEffectiveCost`` in USD (FOCUS 1.2:
  "denominated in the PricingCurrency"): the ledger's own figures;
- ``x_ExchangeRate`` (units per USD) and ``x_ExchangeRateDate`` (the date of the rate in force,
  which may be a few days before the charge day: :class:`~spendstream.currency.RateTable`) sit
  beside them, so every converted figure can be checked: converted = USD x rate.

A charge day without a rate in force raises :class:`~spendstream.currency.MissingRate` naming
the day, before anything is written; there is never an implicit rate of 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from spendstream.currency.rates import RATE_PLACES, Rate, RateTable, convert
from spendstream.sinks.focus_columns import MONEY_SCALE

# FOCUS columns denominated in the BillingCurrency (set on every row; null where unknown).
BILLING_FIGURES = (
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "ListUnitPrice",
    "ContractedUnitPrice",
)


@dataclass(frozen=True)
class FocusInCurrency:
    """Converts FOCUS rows' billing figures to ``table.currency`` (see the module docstring)."""

    table: RateTable
    # a product of the ledger's 18 places and a rate's 12 needs 30 to stay exact
    money_scale: int = MONEY_SCALE + RATE_PLACES

    def __call__(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rates: dict[date, Rate] = {}
        converted = []
        for row in rows:
            day = row["ChargePeriodStart"].date()
            if day not in rates:
                rates[day] = self.table.rate_on(day)
            converted.append(in_currency(row, rates[day]))
        return converted


def in_currency(row: dict[str, Any], rate: Rate) -> dict[str, Any]:
    """A copy of ``row`` with its billing figures in ``rate.currency`` and the rate beside."""
    result = dict(row)
    for name in BILLING_FIGURES:
        if result[name] is not None:
            result[name] = convert(result[name], rate)
    result["BillingCurrency"] = rate.currency
    result["x_ExchangeRate"] = rate.per_usd
    result["x_ExchangeRateDate"] = rate.day.isoformat()
    return result
