"""A FOCUS export with every kind of row, for the validator and specification tests: token rows
of all four types (reasoning inside output, batch calls, cached calls), an unpriced model,
usage-unit rows (images, audio seconds, web searches, an override-priced unit and an unpriced
one), invoiced rows and an invoiced group without ledger events."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from spendstream.currency import RateTable
from spendstream.currency.focus import FocusInCurrency
from spendstream.events import UsageEvent
from spendstream.pricing import Pricer
from spendstream.reconcile.billed import invoiced_amounts
from spendstream.reconcile.providers import parse_pages
from spendstream.reconcile.store import InvoiceStore
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from spendstream.sinks.focus import ledger_total
from spendstream.sinks.focus_export import export_focus
from spendstream.worker.schema import migrate
from tests.support.ledger_data import fill_ledger, generate
from tests.support.units import VECTOR_OVERRIDE, unit_events

MONTH = "2026-10"
START = datetime(2026, 10, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Files:
    """Rows as returned, files as read back (CSV dicts per version, Parquet records)."""

    rows: list[dict[str, Any]]
    csv_paths: dict[str, Path]
    csv_rows: dict[str, list[dict[str, str]]]
    parquet_rows: list[dict[str, Any]]


@dataclass(frozen=True)
class Exported(Files):
    """The USD export's files, the ledger's total, and the same export billed in EUR
    (:data:`EUR_RATES`)."""

    ledger_total: Decimal
    in_euros: Files


# Imported on Thursday and Friday only: the weekend's events (Oct 3 and 4) use Friday's rate.
EUR_RATES = {date(2026, 10, 1): Decimal("0.861234567891"), date(2026, 10, 2): Decimal("0.8675")}


def events() -> list[UsageEvent]:
    reasoning = UsageEvent(
        event_id="reasoning-1",
        event_time=START + timedelta(hours=5),
        provider="openai",
        model="o3",
        input_tokens=1_200,
        output_tokens=4_000,
        reasoning_tokens=3_000,
        tags={"team": "search"},
    )
    return [*generate(600, seed=3, start=START), *unit_events(40, START, 86_400), reasoning]


def cost_page() -> dict[str, Any]:
    """An Anthropic cost report for Oct 2: a billed model and one without ledger events."""
    day = "2026-10-02T00:00:00Z"
    results = [
        {"currency": "USD", "amount": "1234.5", "cost_type": "tokens", "model": model,
         "token_type": "output_tokens", "workspace_id": "wrk_1"}
        for model in ("claude-sonnet-4-5", "claude-opus-4-1")
    ]  # fmt: skip
    bucket = {"starting_at": day, "ending_at": "2026-10-03T00:00:00Z", "results": results}
    return {"data": [bucket], "has_more": False, "next_page": None}


def export_everything(directory: Path) -> Exported:
    """Fill a fresh ledger in ``directory``, load the invoice, export both versions."""
    client = connect(f"chdb://{directory / 'clickhouse'}", "spendstream")
    try:
        migrate(client)
        pricer = Pricer.from_config({"overrides": [VECTOR_OVERRIDE]})
        fill_ledger(client, events(), pricer)
        InvoiceStore(client).load(parse_pages("anthropic", [("cost", cost_page())]), "cost")
        reader = ClientReader(client)
        invoices = invoiced_amounts(reader, pricer, MONTH)
        paths = {version: directory / f"focus-{version}.csv" for version in ("1.0", "1.2")}
        rows = export_focus(reader, MONTH, paths["1.2"], "csv", invoices, "1.2")
        export_focus(reader, MONTH, paths["1.0"], "csv", invoices, "1.0")
        export_focus(reader, MONTH, directory / "focus.parquet", "parquet", invoices, "1.2")
        euros = FocusInCurrency(RateTable("EUR", EUR_RATES, max_age_days=4))
        eur_paths = {v: directory / f"focus-{v}-eur.csv" for v in ("1.0", "1.2")}
        eur_rows = export_focus(reader, MONTH, eur_paths["1.2"], "csv", invoices, "1.2", euros)
        export_focus(reader, MONTH, eur_paths["1.0"], "csv", invoices, "1.0", euros)
        eur_parquet = directory / "focus-eur.parquet"
        export_focus(reader, MONTH, eur_parquet, "parquet", invoices, "1.2", euros)
        total = ledger_total(reader, MONTH)
    finally:
        client.close()
    in_euros = Files(
        eur_rows, eur_paths, read_csv(eur_paths), pq.read_table(eur_parquet).to_pylist()
    )
    parquet = pq.read_table(directory / "focus.parquet").to_pylist()
    return Exported(rows, paths, read_csv(paths), parquet, total, in_euros)


def read_csv(paths: dict[str, Path]) -> dict[str, list[dict[str, str]]]:
    read: dict[str, list[dict[str, str]]] = {}
    for version, path in paths.items():
        with path.open(newline="") as handle:
            read[version] = list(csv.DictReader(handle))
    return read
