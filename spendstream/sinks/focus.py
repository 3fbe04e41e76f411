"""FOCUS export: a month of the ledger as FinOps FOCUS cost-and-usage rows (CSV or Parquet), in
FOCUS 1.0 or 1.2 (the default; :mod:`spendstream.sinks.focus_columns` lists each version's
columns). docs/focus.md describes the file; this docstring states the contracts.

Rows, one per charge period (a UTC day, ``ChargePeriodStart`` inclusive, ``ChargePeriodEnd``
exclusive) x provider x model x tag set x customer x price x cost driver:

- Token rows, one per token type as providers bill them: ``input`` (uncached input),
  ``cache_write`` (5-minute writes), ``cache_write_1h`` (Anthropic's 1-hour writes, their own
  rate), ``cache_read`` and ``output`` (reasoning included). ``ConsumedUnit``
  ``Tokens`` with ``ConsumedQuantity`` the tokens; ``PricingUnit`` ``1000000 Tokens`` with
  ``PricingQuantity`` = tokens / 10^6 and ``ListUnitPrice`` = ``ContractedUnitPrice`` the price
  per million (so ``ListUnitPrice x PricingQuantity = ListCost``: rows are grouped by the price
  reference, batch flag and rate (:func:`by_rate`), so one rate applies).
  ``SkuId`` ``provider/model:type``, ``SkuMeter`` e.g. ``Input Tokens``,
  ``SkuPriceDetails`` ``{"x_Model", "x_TokenType"}``.
- Usage-unit rows (docs/cost-drivers.md), one per unit: ``SkuId`` ``provider/model:unit``,
  ``ConsumedUnit`` = ``PricingUnit`` = the unit name, quantity exact, price per unit.
- Costs come from the deduplicated ledger (``FINAL``: the newest rating after a reprice).
  ``BilledCost`` = ``EffectiveCost`` = ``ListCost`` = ``ContractedCost`` = the ledger cost and
  ``x_BilledCostSource`` = ``estimate``; the rows' costs sum to the ledger total exactly.
  Unpriced events keep their tokens at cost 0 (``x_UnpricedEvents``) with ``SkuPriceId``
  ``<SkuId>@unpriced``; their unit prices and ``SkuPriceDetails`` are null: the price is
  unknown, not zero (FOCUS 1.2 wants a ``ListUnitPrice`` on every usage row: we do not invent
  one).
- With invoices (:mod:`spendstream.sinks.focus_invoices`), ``BilledCost`` is the invoiced
  amount and ``InvoiceId`` the provider's invoice where the bill names one.
- Currency: ``BillingCurrency`` = ``PricingCurrency`` = USD, the ``PricingCurrency*`` figures
  equal the billing ones. :mod:`spendstream.currency.focus` converts the billing figures to
  another currency (this layer knows no rates), keeping the pricing-currency ones in USD.
- ``x_Events``/``x_Requests``/``x_UnpricedEvents`` count the events (requests) that carried
  the row's driver, so a call with input and output counts on both rows. An event with no
  tokens, no token cost and no units (a failed call) has no row (its cost is 0).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from spendstream.money import decimal_text
from spendstream.sinks.access import QueryResult, Reader
from spendstream.sinks.focus_columns import (
    DEFAULT_VERSION,
    MONEY_SCALE,
    TYPES,
    columns,
    schema,
)

CURRENCY = "USD"
SERVICE_CATEGORY = "AI and Machine Learning"
SERVICE_SUBCATEGORY = "Generative AI"
TOKEN_UNIT = "Tokens"
PER_MILLION = Decimal(1_000_000)
PRICING_UNIT = "1000000 Tokens"
MONTH_FORMAT = "%Y-%m"
PRICE_CONTEXT = Context(prec=60)
PRICE_QUANTUM = Decimal("1e-18")
TOKEN_METERS = {
    "input": "Input Tokens",
    "cache_write": "Cache Write Tokens",
    "cache_write_1h": "1h Cache Write Tokens",
    "cache_read": "Cache Read Tokens",
    "output": "Output Tokens",
}

WINDOW = "event_time >= {start:DateTime64(3)} AND event_time < {end:DateTime64(3)}"
# A response-cached call (the app answered from its own cache) never reached the provider: it is
# no provider consumption, and it costs 0, so leaving it out keeps the rows' sum the ledger's.
CONSUMED = f"{WINDOW} AND NOT response_cached"
# The price version with the reference: an override re-rated under the same name keeps its
# reference, so only the version tells its two rates apart (merged again when the rate is equal).
GROUP = "day, provider, model, tag_set, customer, price_ref, batch, price_version"
# Where the cutoff goes: the rows ingested by then, deduplicated among themselves (PREWHERE runs
# before FINAL, so a copy ingested after the cutoff cannot hide the row it repeats).
AS_OF_SLOT = "/*as_of*/ "
AS_OF = "PREWHERE ingested_at <= {cutoff:DateTime64(3)} "
# One array element per token type: (type, tokens, cost); output includes reasoning. Cache
# writes are two types, each at one rate: 5-minute (the rest) and 1-hour (migration 1012).
TOKEN_PARTS = (
    "[('input', toInt64(input_tokens) - cache_read_tokens - cache_write_tokens, cost_input), "
    "('cache_write', toInt64(cache_write_tokens) - cache_write_1h_tokens, "
    "cost_cache_write - cost_cache_write_1h), "
    "('cache_write_1h', toInt64(cache_write_1h_tokens), cost_cache_write_1h), "
    "('cache_read', toInt64(cache_read_tokens), cost_cache_read), "
    "('output', toInt64(output_tokens), cost_output + cost_reasoning)]"
)
TOKENS_SQL = (
    "SELECT toDate(event_time) AS day, provider, model, mapSort(tags) AS tag_set, "
    "{customer} AS customer, price_ref, batch, price_version, part.1 AS driver, "
    "count() AS events, sum(request_count) AS requests, countIf(NOT priced) AS unpriced, "
    "sum(part.2) AS quantity, sum(part.3) AS cost "
    f"FROM ledger FINAL ARRAY JOIN {TOKEN_PARTS} AS part {AS_OF_SLOT}"
    f"WHERE {CONSUMED} AND (part.2 != 0 OR part.3 != 0) "
    f"GROUP BY {GROUP}, driver"
)
UNITS_SQL = (
    "SELECT toDate(event_time) AS day, provider, model, mapSort(tags) AS tag_set, "
    "{customer} AS customer, unit_price_refs[unit] AS price_ref, batch, price_version, "
    "unit AS driver, "
    "count() AS events, sum(request_count) AS requests, countIf(NOT priced) AS unpriced, "
    "sum(unit_quantities[unit]) AS quantity, sum(unit_costs[unit]) AS cost "
    f"FROM ledger FINAL ARRAY JOIN mapKeys(unit_quantities) AS unit {AS_OF_SLOT}"
    f"WHERE {CONSUMED} GROUP BY {GROUP}, driver"
)
KEY = ("day", "provider", "model", "customer", "price_ref", "batch", "driver")
# The columns of KEY that name one price (by_rate tells its rates apart by version): the SKU,
# the reference and the batch flag, whatever the day, customer and tags.
PRICE = ("provider", "model", "price_ref", "batch", "driver")
SUMMED = ("events", "requests", "unpriced", "quantity", "cost")
TOTAL_SQL = f"SELECT sum(cost_total) FROM ledger FINAL {AS_OF_SLOT}WHERE {WINDOW}"
CUSTOMER_COLUMN_SQL = (
    "SELECT count() FROM system.columns "
    "WHERE database = currentDatabase() AND table = 'ledger' AND name = 'customer'"
)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` as the half-open UTC interval [first day, first day of next month)."""
    try:
        start = datetime.strptime(month, MONTH_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{month!r} is not a month: write YYYY-MM, e.g. 2026-11") from None
    following = (start + timedelta(days=32)).replace(day=1)
    return start, following


def day_start(value: Any) -> datetime:
    # Direct reads give a date; reads through the worker give its ISO string.
    moment = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def _customer_expression(reader: Reader) -> str:
    """``customer`` when the ledger has that column (event field), else the empty string."""
    found = reader.query(CUSTOMER_COLUMN_SQL).rows
    return "customer" if found and int(found[0][0]) else "''"


def as_of(sql: str, parameters: dict[str, Any], cutoff: datetime | None) -> str:
    """``sql`` over the rows ingested by ``cutoff`` (all rows when None); binds ``cutoff``."""
    if cutoff is None:
        return sql.replace(AS_OF_SLOT, "")
    parameters["cutoff"] = cutoff
    return sql.replace(AS_OF_SLOT, AS_OF)


def focus_rows(reader: Reader, month: str, cutoff: datetime | None = None) -> list[dict[str, Any]]:
    """The month's FOCUS rows (every column of :data:`TYPES`), sorted by period, SKU, tags,
    customer and price; with ``cutoff``, of the rows ingested by then (``ingested_at <=
    cutoff``), so a second read with the same cutoff (:func:`ledger_total`) sees the same
    ledger while the worker keeps writing. Writers keep the columns of the version they write."""
    start, end = month_bounds(month)
    window: dict[str, Any] = {"start": start, "end": end}
    customer = _customer_expression(reader)
    tokens_sql = as_of(TOKENS_SQL.replace("{customer}", customer), window, cutoff)
    units_sql = as_of(UNITS_SQL.replace("{customer}", customer), window, cutoff)
    rows = [
        _row(item, (start, end), tokens=True) for item in by_rate(reader.query(tokens_sql, window))
    ]
    rows += [
        _row(item, (start, end), tokens=False) for item in by_rate(reader.query(units_sql, window))
    ]
    rows.sort(key=row_order)
    return rows


def by_rate(result: QueryResult) -> list[dict[str, Any]]:
    """The groups of each price version merged per rate: versions that applied the same rate
    to a reference make one row (a re-rating that changed nothing, a new catalog elsewhere);
    different rates stay apart, and when one reference had several rates in the month each
    ``SkuPriceId`` names its first version (``…@ref#v12``). Unit price x quantity = cost.

    Every part of a key is read by its column name (:data:`KEY`, :data:`PRICE`), never by its
    position, so a column added to either cannot shift another."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    rates: dict[tuple[Any, ...], Fraction | None] = {}
    for item in result.records():
        quantity, cost = Decimal(str(item["quantity"])), Decimal(str(item["cost"]))
        priced = quantity and not int(item["unpriced"])
        rate = Fraction(cost) / Fraction(quantity) if priced else None
        tags = tuple(sorted((str(k), str(v)) for k, v in dict(item["tag_set"]).items()))
        key = (tuple(item[name] for name in KEY), tags, rate)
        found = merged.get(key)
        if found is None:
            merged[key], rates[key] = dict(item), rate
            continue
        for name in SUMMED:
            found[name] = Decimal(str(found[name])) + Decimal(str(item[name]))
        found["price_version"] = min(int(found["price_version"]), int(item["price_version"]))
    # Per price (PRICE: SKU, reference, batch): each rate's first version, the same in every
    # row of that rate.
    firsts: dict[tuple[Any, ...], dict[Fraction, int]] = {}
    for key, item in merged.items():
        rate = rates[key]
        if rate is not None:
            first = firsts.setdefault(_price(item), {})
            version = int(item["price_version"])
            first[rate] = min(first.get(rate, version), version)
    for key, item in merged.items():
        rate, first = rates[key], firsts.get(_price(item), {})
        if item["price_ref"] and rate is not None and len(first) > 1:
            item["price_ref"] = f"{item['price_ref']}#v{first[rate]}"
    return list(merged.values())


def _price(item: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(item[name] for name in PRICE)


def row_order(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["ChargePeriodStart"],
        row["SkuId"],
        row["Tags"],
        row["x_ConsumerId"] or "",
        row["SkuPriceId"] or "",
    )


def unit_price(cost: Decimal, quantity: Decimal) -> Decimal:
    """Cost per pricing unit (exact for one rate; 18 places otherwise)."""
    return PRICE_CONTEXT.divide(cost, quantity).quantize(PRICE_QUANTUM, context=PRICE_CONTEXT)


def _row(item: dict[str, Any], billing: tuple[datetime, datetime], tokens: bool) -> dict[str, Any]:
    """One FOCUS row for a token type or usage unit of a day, model, tag set, customer, price."""
    provider, model, driver = str(item["provider"]), str(item["model"]), str(item["driver"])
    tags = {str(key): str(value) for key, value in dict(item["tag_set"]).items()}
    consumed = Decimal(decimal_text(Decimal(str(item["quantity"]))))
    cost = Decimal(str(item["cost"]))
    pricing = PRICE_CONTEXT.divide(consumed, PER_MILLION) if tokens else consumed
    priced = bool(item["price_ref"]) and not int(item["unpriced"]) and pricing != 0
    price = unit_price(cost, pricing) if priced else None
    sku = f"{provider}/{model}:{driver}"
    detail = {"x_Model": model, "x_TokenType" if tokens else "x_Unit": driver}
    row = charge_row(provider, model, driver, day_start(item["day"]), billing, cost)
    row.update(
        {
            "ChargeDescription": (
                f"{TOKEN_METERS[driver]} of {provider}/{model}"
                if tokens
                else f"{driver} usage of {provider}/{model}"
            ),
            "ConsumedQuantity": consumed,
            "ConsumedUnit": TOKEN_UNIT if tokens else driver,
            "PricingQuantity": Decimal(decimal_text(pricing)),
            "PricingUnit": PRICING_UNIT if tokens else driver,
            "ListUnitPrice": price,
            "ContractedUnitPrice": price,
            "PricingCurrencyListUnitPrice": price,
            "PricingCurrencyContractedUnitPrice": price,
            "SkuId": sku,
            "SkuMeter": TOKEN_METERS[driver] if tokens else driver,
            # Never null on a Usage row (FOCUS 1.0 and 1.2); unpriced usage has its own id.
            "SkuPriceId": f"{sku}@{item['price_ref'] if priced else 'unpriced'}",
            "SkuPriceDetails": _json(detail) if priced else None,
            "Tags": _json(tags),
            "x_ConsumerId": str(item["customer"]) or None,
            "x_Events": int(item["events"]),
            "x_Requests": int(item["requests"]),
            "x_UnpricedEvents": int(item["unpriced"]),
        }
    )
    return row


def _json(value: dict[str, str]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def charge_row(
    provider: str,
    model: str,
    driver: str,
    period: datetime,
    billing: tuple[datetime, datetime],
    cost: Decimal,
) -> dict[str, Any]:
    """Every column, with those all rows share set: costs (all equal: ours), periods, provider
    and service; the rest null (commitment discounts, regions, resources, unit prices)."""
    row: dict[str, Any] = dict.fromkeys(TYPES)
    row.update(
        {
            "BilledCost": cost,
            "EffectiveCost": cost,
            "ListCost": cost,
            "ContractedCost": cost,
            "BillingAccountId": provider,
            "BillingAccountName": provider,
            "BillingCurrency": CURRENCY,
            # Priced in USD; the pricing-currency figures stay in USD when a higher layer
            # converts the billing figures (spendstream.currency.focus).
            "PricingCurrency": CURRENCY,
            "PricingCurrencyEffectiveCost": cost,
            "BillingPeriodStart": billing[0],
            "BillingPeriodEnd": billing[1],
            "ChargePeriodStart": period,
            "ChargePeriodEnd": period + timedelta(days=1),
            "ChargeCategory": "Usage",
            "ChargeFrequency": "Usage-Based",
            "PricingCategory": "Standard",
            "ServiceName": provider,
            "ServiceCategory": SERVICE_CATEGORY,
            "ServiceSubcategory": SERVICE_SUBCATEGORY,
            "ProviderName": provider,
            "PublisherName": provider,
            "InvoiceIssuerName": provider,
            "x_Model": model,
            "x_Events": 0,
            "x_Requests": 0,
            "x_UnpricedEvents": 0,
            "x_BilledCostSource": "estimate",
            "x_CostDriver": driver,
        }
    )
    return row


def ledger_total(reader: Reader, month: str, cutoff: datetime | None = None) -> Decimal:
    """``sum(cost_total)`` of the month in the deduplicated ledger (the export must match it),
    of the rows ingested by ``cutoff`` when given (:func:`focus_rows`)."""
    start, end = month_bounds(month)
    parameters: dict[str, Any] = {"start": start, "end": end}
    value = reader.query(as_of(TOTAL_SQL, parameters, cutoff), parameters).rows[0][0]
    return Decimal(str(value))


def _csv_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Always with a decimal point: readers (pandas, the FOCUS validator) take "100" for an
        # integer column, "100.0" for a decimal one.
        text = format(value, "f")
        return text if "." in text else text + ".0"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def write_csv(
    rows: Sequence[dict[str, Any]],
    path: Path,
    version: str = DEFAULT_VERSION,
    money_scale: int = MONEY_SCALE,
) -> None:
    """Write FOCUS rows as CSV (header = the version's columns; decimals exact, nulls empty;
    ``money_scale`` is for Parquet: CSV writes every digit)."""
    names = columns(version)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for row in rows:
            writer.writerow([_csv_value(row[name]) for name in names])


def write_parquet(
    rows: Sequence[dict[str, Any]],
    path: Path,
    version: str = DEFAULT_VERSION,
    money_scale: int = MONEY_SCALE,
) -> None:
    """Write FOCUS rows as Parquet (costs ``decimal128(38, 18)``, wider for converted money:
    :func:`~spendstream.sinks.focus_columns.schema`; times UTC milliseconds)."""
    names = columns(version)
    # first: without pyarrow, the error that names the extra
    arrow_schema = schema(version, money_scale)
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = {name: [row[name] for row in rows] for name in names}
    pq.write_table(pa.Table.from_pydict(data, schema=arrow_schema), path)


WRITERS = {"csv": write_csv, "parquet": write_parquet}
