"""A bill that matches exactly has no variance when some calls were answered from the app's own
response cache (real chDB ledger): those calls never reached the provider, so no bill holds them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.events import UsageEvent
from spendstream.pricing import default_pricer
from spendstream.reconcile.ledger_side import AccountMap
from spendstream.reconcile.providers import parse_pages
from spendstream.reconcile.store import InvoiceStore
from spendstream.reconcile.variance import Variance, compute_variance
from spendstream.sinks.access import ClientReader
from tests.support.ledger_data import fill_ledger

pytestmark = pytest.mark.storage

DAY = date(2026, 10, 15)
START = datetime(2026, 10, 15, tzinfo=UTC)


def page(*results: dict[str, Any]) -> dict[str, Any]:
    bucket = {
        "object": "bucket",
        "start_time": int(START.timestamp()),
        "end_time": int((START + timedelta(days=1)).timestamp()),
        "results": list(results),
    }
    return {"object": "page", "data": [bucket], "has_more": False, "next_page": None}


def cost(amount: str, kind: str) -> dict[str, Any]:
    return {
        "object": "organization.costs.result",
        "amount": {"value": amount, "currency": "usd"},
        "line_item": f"gpt-4o-2024-08-06, {kind}",
        "project_id": "proj_1",
    }


# The provider's bill for the one paid call: 1,000 input ($0.0025) and 100 output ($0.001).
COSTS = page(cost("0.0025", "input"), cost("0.001", "output"))
USAGE = page(
    {
        "object": "organization.usage.completions.result",
        "input_tokens": 1000,
        "output_tokens": 100,
        "input_cached_tokens": 0,
        "num_model_requests": 1,
        "model": "gpt-4o-2024-08-06",
        "project_id": "proj_1",
        "batch": False,
    }
)


def call(event_id: str, minute: int, input_tokens: int, cached: bool) -> UsageEvent:
    return UsageEvent(
        event_id=event_id,
        event_time=START + timedelta(hours=10, minutes=minute),
        provider="openai",
        model="gpt-4o",
        input_tokens=input_tokens,
        output_tokens=100,
        response_cached=cached,
        tags={"team": "rc", "app": "a"},
    )


def test_an_exact_bill_has_no_variance_beside_response_cached_calls(
    ledger_client: Client,
) -> None:
    fill_ledger(ledger_client, [call("rc-1", 0, 1000, False), call("rc-2", 1, 6000, True)])
    store = InvoiceStore(ledger_client)
    store.load(parse_pages("openai", [("costs.json", COSTS)]), "costs")
    store.load(parse_pages("openai", [("usage.json", USAGE)]), "usage")
    accounts = {"openai": AccountMap({"proj_1": {"team": "rc"}})}
    end = DAY + timedelta(days=1)
    cells = compute_variance(
        ClientReader(ledger_client), store.lines(DAY, end), default_pricer(), accounts, DAY, end
    )
    total = Variance()
    for cell in cells:
        total.add(cell.variance)
    assert total.invoiced_usd == total.our_usd == Decimal("0.0035")
    assert total.our_tokens == total.invoiced_tokens == 1100
    parts = (total.price_drift, total.never_seen, total.hidden, total.unpriced, total.unexplained)
    assert parts == (0, 0, 0, 0, 0)
