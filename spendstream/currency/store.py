"""Imported exchange rates in ClickHouse: migration 1300 (listed in
:mod:`spendstream.worker.schema`), the import and the reads.

``fx_rates`` holds one row per (currency, day): ReplacingMergeTree on ``version``, so importing a
corrected file replaces the days it names and leaves the others; reads use ``FINAL``. Who
imported a rate, from which file and when is kept beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from spendstream.config import CurrencySettings
from spendstream.currency.rates import ImportedRate, RateTable, check_currency, table_of
from spendstream.errors import InputError
from spendstream.sinks.access import Reader
from spendstream.sinks.migrations import Migration
from spendstream.sinks.params import Params, string
from spendstream.sinks.versions import next_version

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

FX_RATES = """
CREATE TABLE IF NOT EXISTS fx_rates (
    currency LowCardinality(String),
    day Date,
    rate Decimal(38, 12),
    source String,
    imported_by String,
    imported_at DateTime64(3, 'UTC'),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (currency, day)
"""
COLUMNS = ("currency", "day", "rate", "source", "imported_by", "imported_at", "version")

MIGRATIONS: tuple[Migration, ...] = (Migration(1300, "fx_rates", (FX_RATES,)),)


@dataclass(frozen=True)
class ImportSummary:
    """What one import stored: rows, and per currency its first and last day."""

    rows: int
    currencies: dict[str, tuple[date, date]]

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "currencies": {
                code: {"first": first.isoformat(), "last": last.isoformat()}
                for code, (first, last) in sorted(self.currencies.items())
            },
        }


def store_rates(
    client: Client, rates: Sequence[ImportedRate], source: str, imported_by: str
) -> ImportSummary:
    """Insert ``rates`` (one INSERT: all or nothing); a day already stored is replaced."""
    now, version = datetime.now(UTC), next_version()
    rows = [[r.currency, r.day, r.per_usd, source, imported_by, now, version] for r in rates]
    client.insert("fx_rates", rows, column_names=COLUMNS)
    spans: dict[str, tuple[date, date]] = {}
    for r in rates:
        first, last = spans.get(r.currency, (r.day, r.day))
        spans[r.currency] = (min(first, r.day), max(last, r.day))
    return ImportSummary(len(rows), spans)


def stored_rates(reader: Reader, currency: str) -> list[ImportedRate]:
    params: Params = {}
    rows = reader.query(
        f"SELECT day, rate FROM fx_rates FINAL WHERE currency = {string(params, currency)} "
        "ORDER BY day",
        params,
    ).rows
    return [ImportedRate(currency, as_date(day), Decimal(str(rate))) for day, rate in rows]


def currencies_with_rates(reader: Reader, settings: CurrencySettings) -> list[str]:
    """The codes a report can convert to: those with imported rates, and the fixed ones."""
    rows = reader.query("SELECT DISTINCT currency FROM fx_rates FINAL", {}).rows
    return sorted({str(row[0]) for row in rows} | set(settings.fixed_rates))


def as_date(value: object) -> date:
    """A ClickHouse Date, native or JSON-encoded (the worker's /sql)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def rate_table(reader: Reader, settings: CurrencySettings, currency: str) -> RateTable:
    """The rates of ``currency``: its configured fixed rate, else the imported ones."""
    fixed = settings.fixed_rates.get(currency)
    rates = [] if fixed is not None else stored_rates(reader, currency)
    return table_of(currency, rates, fixed, settings.max_rate_age_days)


def currency_table(reader: Reader, settings: CurrencySettings, code: str) -> RateTable:
    """:func:`rate_table` for a code a caller typed (InputError when it is not one)."""
    try:
        currency = check_currency(code.strip().upper())
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return rate_table(reader, settings, currency)


__all__ = [
    "MIGRATIONS",
    "ImportSummary",
    "currency_table",
    "rate_table",
    "store_rates",
    "stored_rates",
]
