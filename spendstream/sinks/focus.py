"""FOCUS export: a month of the ledger as FinOps FOCUS cost-and-usage rows (CSV or Parquet).

One row per charge period x SKU x tag set, where the charge period is one UTC day
(``ChargePeriodStart`` inclusive, ``ChargePeriodEnd`` exclusive), the SKU is ``provider/model``
(``SkuId``), and the tag set is the event's full tag map (``Tags``, JSON with sorted keys). Daily
periods keep a month's file small while matching how LLM providers invoice usage.

Contracts:

- Costs come from the deduplicated ledger (``FINAL``, so the newest rating after a reprice) and
  are summed exactly: the export's ``BilledCost`` sums to the ledger total of the month exactly.
  CSV holds costs as exact decimal strings; Parquet as ``decimal128(38, 18)``.
- ``BilledCost`` = ``EffectiveCost`` = ``ListCost`` = ``ContractedCost`` = the ledger cost (the
  ledger records the price charged, including negotiated overrides, not a separate list price),
  and ``x_BilledCostSource`` = ``estimate``.
- With invoices (:func:`apply_invoices`, ``export focus --invoiced``): where a provider report was
  loaded for a (day, provider, model), ``BilledCost`` is the invoiced amount, spread over that
  group's rows (unit rows included) in proportion to ``EffectiveCost`` (quantity when it is 0) so
  it sums to the invoice exactly, and ``x_BilledCostSource`` = ``invoice``; invoiced groups the
  ledger has no row for get a row of their own (``EffectiveCost`` 0, ``Tags`` ``{}``).
  ``EffectiveCost`` stays ours.
- Token rows: ``ConsumedQuantity`` = ``PricingQuantity`` = input + output tokens (input
  includes cache read/write, output includes reasoning, so nothing is counted twice); the token
  types are in the ``x_*Tokens`` columns; the cost is the event's token cost (``cost_total -
  cost_units``). Unpriced events add tokens with cost 0 (``x_UnpricedEvents`` counts them).
- Usage units (docs/cost-drivers.md) get their own rows, one per unit: ``SkuId`` =
  ``provider/model:unit``, ``ConsumedUnit`` = ``PricingUnit`` = the unit name (variant included,
  e.g. ``images.1024x1024.hd``), ``ConsumedQuantity`` = its exact quantity, cost = its cost.
  ``x_CostDriver`` is ``tokens`` or the unit name. An event with units but no tokens and no token
  cost has no token row. Quantities are ``decimal128(38, 9)`` (units can be fractional).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from spendstream.events import decimal_text
from spendstream.sinks.access import Reader

CURRENCY = "USD"
SERVICE_CATEGORY = "AI and Machine Learning"
TOKEN_UNIT = "Tokens"
MONTH_FORMAT = "%Y-%m"

FOCUS_SQL = (
    "SELECT toDate(event_time) AS day, provider, model, mapSort(tags) AS tag_set, "
    "count() AS events, sum(request_count) AS requests, countIf(NOT priced) AS unpriced, "
    "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
    "sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, "
    "sum(reasoning_tokens) AS reasoning_tokens, sum(cost_total - cost_units) AS cost "
    "FROM ledger FINAL "
    "WHERE event_time >= {start:DateTime64(3)} AND event_time < {end:DateTime64(3)} "
    "AND (ledger.input_tokens + ledger.output_tokens > 0 OR ledger.cost_total != ledger.cost_units "
    "OR empty(unit_quantities)) "
    "GROUP BY day, provider, model, tag_set"
)
UNITS_SQL = (
    "SELECT toDate(event_time) AS day, provider, model, mapSort(tags) AS tag_set, unit, "
    "count() AS events, sum(request_count) AS requests, countIf(NOT priced) AS unpriced, "
    "sum(unit_quantities[unit]) AS quantity, sum(unit_costs[unit]) AS cost "
    "FROM ledger FINAL ARRAY JOIN mapKeys(unit_quantities) AS unit "
    "WHERE event_time >= {start:DateTime64(3)} AND event_time < {end:DateTime64(3)} "
    "GROUP BY day, provider, model, tag_set, unit"
)
TOTAL_SQL = (
    "SELECT sum(cost_total) FROM ledger FINAL "
    "WHERE event_time >= {start:DateTime64(3)} AND event_time < {end:DateTime64(3)}"
)

# (column, Parquet type); the CSV has the same columns in this order.
MONEY_TYPE = pa.decimal128(38, 18)
QUANTITY_TYPE = pa.decimal128(38, 9)
TIME_TYPE = pa.timestamp("ms", tz="UTC")
COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("BilledCost", MONEY_TYPE),
    ("EffectiveCost", MONEY_TYPE),
    ("ListCost", MONEY_TYPE),
    ("ContractedCost", MONEY_TYPE),
    ("BillingCurrency", pa.string()),
    ("BillingPeriodStart", TIME_TYPE),
    ("BillingPeriodEnd", TIME_TYPE),
    ("ChargePeriodStart", TIME_TYPE),
    ("ChargePeriodEnd", TIME_TYPE),
    ("ChargeCategory", pa.string()),
    ("ChargeFrequency", pa.string()),
    ("ChargeDescription", pa.string()),
    ("ServiceName", pa.string()),
    ("ServiceCategory", pa.string()),
    ("ProviderName", pa.string()),
    ("PublisherName", pa.string()),
    ("InvoiceIssuerName", pa.string()),
    ("SkuId", pa.string()),
    ("PricingQuantity", QUANTITY_TYPE),
    ("PricingUnit", pa.string()),
    ("ConsumedQuantity", QUANTITY_TYPE),
    ("ConsumedUnit", pa.string()),
    ("Tags", pa.string()),
    ("x_InputTokens", pa.int64()),
    ("x_OutputTokens", pa.int64()),
    ("x_CacheReadTokens", pa.int64()),
    ("x_CacheWriteTokens", pa.int64()),
    ("x_ReasoningTokens", pa.int64()),
    ("x_Events", pa.int64()),
    ("x_Requests", pa.int64()),
    ("x_UnpricedEvents", pa.int64()),
    ("x_BilledCostSource", pa.string()),
    ("x_CostDriver", pa.string()),
)
COLUMN_NAMES = tuple(name for name, _type in COLUMNS)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` as the half-open UTC interval [first day, first day of next month)."""
    try:
        start = datetime.strptime(month, MONTH_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{month!r} is not a month: write YYYY-MM, e.g. 2026-11") from None
    following = (start + timedelta(days=32)).replace(day=1)
    return start, following


def _day(value: Any) -> datetime:
    # Direct reads give a date; reads through the worker give its ISO string.
    moment = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def focus_rows(reader: Reader, month: str) -> list[dict[str, Any]]:
    """The month's FOCUS rows (``COLUMN_NAMES`` keys), sorted by period, SKU and tags."""
    start, end = month_bounds(month)
    rows: list[dict[str, Any]] = []
    for item in reader.query(FOCUS_SQL, {"start": start, "end": end}).records():
        tokens = {key: int(item[key]) for key in TOKEN_KEYS}
        quantity = Decimal(tokens["input_tokens"] + tokens["output_tokens"])
        row = _row(item, start, end, "tokens", quantity)
        row.update({f"x_{_camel(key)}": value for key, value in tokens.items()})
        rows.append(row)
    for item in reader.query(UNITS_SQL, {"start": start, "end": end}).records():
        unit = str(item["unit"])
        rows.append(_row(item, start, end, unit, Decimal(str(item["quantity"]))))
    rows.sort(key=lambda row: (row["ChargePeriodStart"], row["SkuId"], row["Tags"]))
    return rows


TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
InvoiceKey = tuple[date, str, str]  # (charge day, provider, model key)
QUANTUM = Decimal("1e-18")


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _row(
    item: dict[str, Any], start: datetime, end: datetime, driver: str, quantity: Decimal
) -> dict[str, Any]:
    """One FOCUS row for a cost driver (``tokens`` or a unit) of a day, SKU and tag set."""
    provider, model = str(item["provider"]), str(item["model"])
    sku = f"{provider}/{model}" if driver == "tokens" else f"{provider}/{model}:{driver}"
    what = "LLM token usage" if driver == "tokens" else f"{driver} usage"
    tags = {str(key): str(value) for key, value in dict(item["tag_set"]).items()}
    quantity = Decimal(decimal_text(quantity))  # no trailing zeros in the CSV
    cost = Decimal(str(item["cost"]))
    return {
        **_charge(provider, sku, _day(item["day"]), (start, end), cost, driver),
        "ChargeDescription": f"{what} of {provider}/{model}",
        "PricingQuantity": quantity,
        "ConsumedQuantity": quantity,
        "Tags": json.dumps(tags, sort_keys=True, separators=(",", ":")),
        **{f"x_{_camel(key)}": 0 for key in TOKEN_KEYS},
        "x_Events": int(item["events"]),
        "x_Requests": int(item["requests"]),
        "x_UnpricedEvents": int(item["unpriced"]),
    }


def _charge(
    provider: str,
    sku: str,
    period: datetime,
    billing: tuple[datetime, datetime],
    cost: Decimal,
    driver: str = "tokens",
) -> dict[str, Any]:
    """The columns every row has: costs (all equal: ours), periods, provider, SKU and unit."""
    unit = TOKEN_UNIT if driver == "tokens" else driver
    return {
        "BilledCost": cost,
        "EffectiveCost": cost,
        "ListCost": cost,
        "ContractedCost": cost,
        "BillingCurrency": CURRENCY,
        "BillingPeriodStart": billing[0],
        "BillingPeriodEnd": billing[1],
        "ChargePeriodStart": period,
        "ChargePeriodEnd": period + timedelta(days=1),
        "ChargeCategory": "Usage",
        "ChargeFrequency": "Usage-Based",
        "ServiceName": provider,
        "ServiceCategory": SERVICE_CATEGORY,
        "ProviderName": provider,
        "PublisherName": provider,
        "InvoiceIssuerName": provider,
        "SkuId": sku,
        "PricingUnit": unit,
        "ConsumedUnit": unit,
        "x_BilledCostSource": "estimate",
        "x_CostDriver": driver,
    }


def _invoice_only_row(
    billing: tuple[datetime, datetime], key: InvoiceKey, amount: Decimal
) -> dict[str, Any]:
    day, provider, model = key
    sku = f"{provider}/{model or 'other'}"
    row: dict[str, Any] = {
        name: 0 for name in COLUMN_NAMES if name.startswith("x_") or "Quantity" in name
    }
    row.update(_charge(provider, sku, _day(day), billing, Decimal(0)))
    row.update(
        {
            "BilledCost": amount,
            "ChargeDescription": f"Invoiced usage of {sku} without ledger events",
            "Tags": "{}",
            "x_BilledCostSource": "invoice",
        }
    )
    return row


def apply_invoices(
    rows: list[dict[str, Any]],
    invoiced: dict[InvoiceKey, Decimal],
    model_key: Callable[[str, str], str],
    month: str,
) -> list[dict[str, Any]]:
    """Rows with ``BilledCost`` from the invoices (see the module contract); ``model_key`` maps a
    ledger (provider, model) to the invoices' model key."""
    start, end = month_bounds(month)
    groups: dict[InvoiceKey, list[dict[str, Any]]] = {}
    for row in rows:
        provider, _, model = row["SkuId"].partition("/")
        if row["x_CostDriver"] != "tokens":  # provider/model:unit
            model = model.removesuffix(":" + row["x_CostDriver"])
        key = (row["ChargePeriodStart"].date(), provider, model_key(provider, model))
        groups.setdefault(key, []).append(row)
    extra = []
    for key, amount in sorted(invoiced.items()):
        if not start.date() <= key[0] < end.date():
            continue
        members = groups.get(key)
        if not members:
            extra.append(_invoice_only_row((start, end), key, amount))
            continue
        weights = [row["EffectiveCost"] for row in members]
        if not any(weights):
            weights = [Decimal(row["PricingQuantity"]) for row in members]
        total = sum(weights, Decimal(0))
        left = amount
        for index, row in enumerate(members):
            if index == len(members) - 1:
                share = left
            elif total:
                share = (amount * weights[index] / total).quantize(QUANTUM)
            else:
                share = Decimal(0)
            left -= share
            row["BilledCost"], row["x_BilledCostSource"] = share, "invoice"
    result = rows + extra
    result.sort(key=lambda row: (row["ChargePeriodStart"], row["SkuId"], row["Tags"]))
    return result


def ledger_total(reader: Reader, month: str) -> Decimal:
    """``sum(cost_total)`` of the month in the deduplicated ledger (the export must match it)."""
    start, end = month_bounds(month)
    value = reader.query(TOTAL_SQL, {"start": start, "end": end}).rows[0][0]
    return Decimal(str(value))


def _csv_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write FOCUS rows as CSV (header = ``COLUMN_NAMES``; costs as exact decimal strings)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMN_NAMES)
        for row in rows:
            writer.writerow([_csv_value(row[name]) for name in COLUMN_NAMES])


def write_parquet(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write FOCUS rows as Parquet (costs ``decimal128(38, 18)``, times UTC milliseconds)."""
    schema = pa.schema(list(COLUMNS))
    columns = {name: [row[name] for row in rows] for name in COLUMN_NAMES}
    pq.write_table(pa.Table.from_pydict(columns, schema=schema), path)


WRITERS = {"csv": write_csv, "parquet": write_parquet}


def export_focus(
    reader: Reader,
    month: str,
    path: Path,
    fmt: str = "csv",
    invoices: tuple[dict[InvoiceKey, Decimal], Callable[[str, str], str]] | None = None,
) -> list[dict[str, Any]]:
    """Write the month's FOCUS rows to ``path`` as ``fmt`` (csv or parquet); return the rows.

    ``invoices`` = ``(invoiced amounts, model key)`` puts invoiced ``BilledCost`` in (see
    :func:`apply_invoices`)."""
    if fmt not in WRITERS:
        raise ValueError(f"unknown format {fmt!r}: use csv or parquet")
    rows = focus_rows(reader, month)
    if invoices is not None:
        rows = apply_invoices(rows, invoices[0], invoices[1], month)
    WRITERS[fmt](rows, path)
    return rows
