"""FOCUS rows hold one rate each (real chDB ledger): app-cached calls are no provider
consumption, and an override re-rated under its own name does not merge two rates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.events import UsageEvent
from spendstream.pricing import Pricer
from spendstream.sinks.access import ClientReader
from spendstream.sinks.focus import focus_rows, ledger_total
from spendstream.sinks.ledger import LedgerEntry, LedgerWriter
from spendstream.sinks.price_versions import next_price_version
from tests.support.ledger_data import fill_ledger, generate

pytestmark = pytest.mark.storage

MONTH = "2026-12"
DAY = datetime(2026, 12, 7, 10, tzinfo=UTC)


def gpt4o(event_id: str, tokens: int, **fields: Any) -> UsageEvent:
    return UsageEvent(
        event_id=event_id,
        event_time=DAY + timedelta(minutes=len(event_id)),
        provider="openai",
        model="gpt-4o",
        input_tokens=tokens,
        tags={"team": "qa"},
        **fields,
    )


def deal(input_rate: str) -> Pricer:
    override = {"name": "qa-deal", "provider": "openai", "model": "gpt-4o"}
    return Pricer.from_config({"overrides": [override | {"input": input_rate, "output": "10"}]})


def write(client: Client, pricer: Pricer, events: list[UsageEvent]) -> None:
    version = next_price_version(client, "stream", pricer.catalog_digest)
    LedgerWriter(client, version).write([LedgerEntry(e, pricer.rate(e)) for e in events])


def exact_rows(client: Client, month: str = MONTH) -> list[dict[str, Any]]:
    """The month's rows, each checked: unit price x pricing quantity = cost, exactly."""
    reader = ClientReader(client)
    rows = focus_rows(reader, month)
    for row in rows:
        if row["ListUnitPrice"] is not None:
            assert row["ListUnitPrice"] * row["PricingQuantity"] == row["ListCost"], row
    assert sum((row["ListCost"] for row in rows), Decimal(0)) == ledger_total(reader, month)
    return rows


def test_response_cached_calls_are_not_provider_consumption(ledger_client: Client) -> None:
    write(
        ledger_client, deal("2.50"), [gpt4o("paid", 1000), gpt4o("hit", 6000, response_cached=True)]
    )
    (row,) = exact_rows(ledger_client)
    assert (row["ConsumedQuantity"], row["ListCost"]) == (Decimal(1000), Decimal("0.0025"))
    assert row["ListUnitPrice"] == Decimal("2.5") and row["x_Events"] == 1


def test_an_override_rerated_under_its_name_keeps_its_two_rates_apart(
    ledger_client: Client,
) -> None:
    events = [gpt4o("e" * (i + 1), 1000 * (i + 1)) for i in range(4)]
    write(ledger_client, deal("1.11"), events)
    write(ledger_client, deal("2.22"), events[1:])  # as `reprice` does: a newer version
    rows = exact_rows(ledger_client)
    prices = {row["SkuPriceId"]: row["ListUnitPrice"] for row in rows}
    assert sorted(prices.values()) == [Decimal("1.11"), Decimal("2.22")]
    assert all("+override:qa-deal#v" in sku_price for sku_price in prices)
    quantities = sorted(row["ConsumedQuantity"] for row in rows)
    assert quantities == [Decimal(1000), Decimal(9000)]


def test_the_same_rate_under_two_versions_is_one_row(ledger_client: Client) -> None:
    events = [gpt4o("a", 1000), gpt4o("bb", 2000)]
    write(ledger_client, deal("1.11"), events[:1])
    write(ledger_client, deal("1.11"), events[1:])
    (row,) = exact_rows(ledger_client)
    assert row["SkuPriceId"] == "openai/gpt-4o:input@openai/gpt-4o+override:qa-deal"
    assert row["ConsumedQuantity"] == Decimal(3000)


def test_every_generated_row_prices_its_quantity_exactly(ledger_client: Client) -> None:
    fill_ledger(ledger_client, generate(600, seed=3))
    assert exact_rows(ledger_client, "2026-10")
