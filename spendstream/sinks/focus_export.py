"""Writing a FOCUS file: the ledger's rows (:mod:`spendstream.sinks.focus`), optionally with
``BilledCost`` from the providers' invoices, in the chosen version and format.

Invoices (``export focus --invoiced``): where a provider report was loaded for a (day,
provider, model), ``BilledCost`` is the invoiced amount, spread over that group's rows (unit rows
included) in proportion to ``EffectiveCost`` (quantity when it is 0) so it sums to the invoice
exactly, ``x_BilledCostSource`` = ``invoice`` and ``InvoiceId`` the bill's invoice when it names
exactly one; invoiced groups the ledger has no row for get a row of their own (``EffectiveCost``
0, ``Tags`` ``{}``). ``EffectiveCost`` stays ours.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from spendstream.sinks.access import Reader
from spendstream.sinks.focus import (
    PRICE_QUANTUM,
    PRICING_UNIT,
    TOKEN_UNIT,
    WRITERS,
    charge_row,
    day_start,
    focus_rows,
    month_bounds,
    row_order,
)
from spendstream.sinks.focus_columns import DEFAULT_VERSION, MONEY_SCALE, columns, schema

InvoiceKey = tuple[date, str, str]  # (charge day, provider, model key)


@dataclass(frozen=True)
class Invoiced:
    """Invoiced dollars per (day, provider, model key), the function mapping a ledger
    (provider, model) onto the same model key, and the invoice id per key where one is known."""

    amounts: Mapping[InvoiceKey, Decimal]
    model_key: Callable[[str, str], str]
    invoice_ids: Mapping[InvoiceKey, str] = field(default_factory=dict)


def _invoice_only_row(billing: tuple[Any, Any], key: InvoiceKey, amount: Decimal) -> dict[str, Any]:
    day, provider, model = key
    sku = f"{provider}/{model or 'other'}"
    row = charge_row(provider, model, "invoice", day_start(day), billing, Decimal(0))
    row.update(
        {
            "BilledCost": amount,
            "ChargeDescription": f"Invoiced usage of {sku} without ledger events",
            # No ledger event: no tokens of ours, and no price of ours.
            "ConsumedQuantity": Decimal(0),
            "ConsumedUnit": TOKEN_UNIT,
            "PricingQuantity": Decimal(0),
            "PricingUnit": PRICING_UNIT,
            "SkuId": sku,
            "SkuPriceId": f"{sku}@invoice",
            "Tags": "{}",
            "x_BilledCostSource": "invoice",
        }
    )
    return row


def apply_invoices(
    rows: list[dict[str, Any]], invoiced: Invoiced, month: str
) -> list[dict[str, Any]]:
    """Rows with ``BilledCost`` (and ``InvoiceId``) from the invoices (see the module doc)."""
    start, end = month_bounds(month)
    groups: dict[InvoiceKey, list[dict[str, Any]]] = {}
    for row in rows:
        provider = row["ProviderName"]
        key = (
            row["ChargePeriodStart"].date(),
            provider,
            invoiced.model_key(provider, row["x_Model"]),
        )
        groups.setdefault(key, []).append(row)
    extra = []
    for key, amount in sorted(invoiced.amounts.items()):
        if not start.date() <= key[0] < end.date():
            continue
        members = groups.get(key)
        if not members:
            members = [_invoice_only_row((start, end), key, amount)]
            extra += members
        else:
            _spread(members, amount)
        for row in members:
            row["InvoiceId"] = invoiced.invoice_ids.get(key) or None
    result = rows + extra
    result.sort(key=row_order)
    return result


def _spread(members: list[dict[str, Any]], amount: Decimal) -> None:
    """Share ``amount`` over ``members`` by EffectiveCost (else quantity), summing exactly."""
    weights = [row["EffectiveCost"] for row in members]
    if not any(weights):
        weights = [Decimal(row["PricingQuantity"] or 0) for row in members]
    total = sum(weights, Decimal(0))
    left = amount
    for index, row in enumerate(members):
        if index == len(members) - 1:
            share = left
        elif total:
            share = (amount * weights[index] / total).quantize(PRICE_QUANTUM)
        else:
            share = Decimal(0)
        left -= share
        row["BilledCost"], row["x_BilledCostSource"] = share, "invoice"


class RowConversion(Protocol):
    """Rewrites finished rows (e.g. :class:`spendstream.currency.focus.FocusInCurrency`: the
    billing figures in another currency); ``money_scale``: the places its money needs."""

    @property
    def money_scale(self) -> int: ...

    def __call__(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]: ...


def export_focus(
    reader: Reader,
    month: str,
    path: Path,
    fmt: str = "csv",
    invoices: Invoiced | None = None,
    version: str = DEFAULT_VERSION,
    conversion: RowConversion | None = None,
    cutoff: datetime | None = None,
) -> list[dict[str, Any]]:
    """Write the month's FOCUS rows to ``path`` as ``fmt`` (csv or parquet) in FOCUS
    ``version``, after ``conversion`` when given (nothing is written if it raises), of the
    ledger rows ingested by ``cutoff`` when given; return the rows (every column; the file has
    the version's)."""
    if fmt not in WRITERS:
        raise ValueError(f"unknown format {fmt!r}: use csv or parquet")
    columns(version)  # an unknown version fails before any query
    if fmt == "parquet":
        schema(version)  # so does Parquet without pyarrow (the error names the extra)
    rows = focus_rows(reader, month, cutoff)
    if invoices is not None:
        rows = apply_invoices(rows, invoices, month)
    scale = MONEY_SCALE
    if conversion is not None:
        rows, scale = conversion(rows), conversion.money_scale
    WRITERS[fmt](rows, path, version, scale)
    return rows
