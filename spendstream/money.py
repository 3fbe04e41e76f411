"""The one rule for money shown to people (dashboard pages, CLI tables, notifications).

At and above one dollar (in absolute value): cents, rounded half-up, with thousands separators
(``$1,234.57``). Below a dollar: four significant digits, rounded half-up (``$0.4567``,
``$0.001235``), so a per-request cost never reads ``$0.00``; zero reads ``$0.00``. CSV and JSON
never go through this: they keep the ledger's full precision. The dashboard's ``SS.usd``
(``dashboard/static/common.js``) applies the same rule; ``tests/test_money.py`` holds both to it.
Other currencies (figures converted by :mod:`spendstream.currency`) follow the same rule with
their symbol or code: :func:`format_money`, and ``SS.money`` on the dashboard.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
SIGNIFICANT = 4


# Currencies written with a symbol before the amount; any other reads "CHF 12.34".
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}


def format_usd(value: Decimal) -> str:
    """``value`` (USD) for people, by the module's rule."""
    return format_money(value, "USD")


def format_money(value: Decimal, currency: str) -> str:
    """``value`` in ``currency`` (an ISO 4217 code) for people, by the module's rule:
    ``€1,234.57``, ``€0.4567``, ``CHF 0.001235``, ``-£3.00``."""
    symbol = SYMBOLS.get(currency, f"{currency} ")
    sign = "-" if value < 0 else ""
    amount = abs(value)
    if amount == 0:
        return f"{symbol}0.00"
    if amount >= 1:
        return f"{sign}{symbol}{amount.quantize(CENT, rounding=ROUND_HALF_UP):,}"
    # the place of the first significant digit: 0.0042 -> -3, so keep 3 + SIGNIFICANT places
    places = SIGNIFICANT - amount.adjusted() - 1
    rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if rounded >= 1:  # 0.99995 rounds up to one: show it as one
        return f"{sign}{symbol}{rounded.quantize(CENT, rounding=ROUND_HALF_UP):,}"
    return f"{sign}{symbol}{rounded:f}"


def to_decimal(value: Any) -> Decimal:
    """A ClickHouse Decimal read back, whether native or JSON-encoded by the worker's /sql."""
    return Decimal(str(value)) if value is not None else Decimal(0)


def is_money_column(name: str) -> bool:
    """Columns holding money, by the project's naming (``cost_usd``, ``spend``, ``cost_eur``)."""
    return name.endswith("_usd") or name in MONEY_NAMES or bool(CONVERTED_COLUMN.match(name))


def column_currency(name: str, row_currency: str = "USD") -> str:
    """The currency of a money column: ``cost_eur`` is in EUR, ``cost_usd`` in USD, and the
    generic names (``spend``, ``limit``) in the row's own ``currency`` column, if it has one."""
    converted = CONVERTED_COLUMN.match(name) if name not in MONEY_NAMES else None
    if converted:
        return converted.group(1).upper()
    return "USD" if name.endswith("_usd") else row_currency


# a figure converted from USD (spendstream.currency): cost_eur, cost_gbp
CONVERTED_COLUMN = re.compile(r"^cost_([a-z]{3})$")


MONEY_NAMES = frozenset(
    {"usd", "spend", "limit", "forecast", "cost", "previous", "revenue", "margin"}
    # the agent views' (sinks.agent_views): cost per run and its split
    | {"cost_p50", "cost_p95", "cost_max", "model_cost", "tool_cost"}
)


def decimal_text(value: Decimal) -> str:
    """An exact Decimal as plain text, as amounts travel in JSON and print in the CLI: no
    exponent, no trailing zeros (``0E-18`` -> ``0``, ``6.866338000`` -> ``6.866338``)."""
    if not value.is_finite():
        return str(value)
    text = format(value.normalize(), "f")
    return "0" if text == "-0" else text
