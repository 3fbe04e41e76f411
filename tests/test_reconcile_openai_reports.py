"""OpenAI's current admin API fields (Usage ``input_cache_write_tokens`` and
``input_uncached_tokens``, Costs ``quantity`` and ``api_key_id``) and empty report pages: an
empty cost bucket replaces its day, and never withdraws usage lines."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.pricing import default_pricer
from spendstream.reconcile.fetch import ENDPOINTS
from spendstream.reconcile.ledger_side import AccountMap
from spendstream.reconcile.lines import ReportError
from spendstream.reconcile.loading import import_files
from spendstream.reconcile.providers import parse_pages
from spendstream.reconcile.store import InvoiceStore
from spendstream.reconcile.variance import invoice_cells

DAY = date(2026, 10, 2)


def bucket(results: list[dict[str, Any]], day: date = DAY) -> dict[str, Any]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return {
        "object": "bucket",
        "start_time": int(start.timestamp()),
        "end_time": int((start + timedelta(days=1)).timestamp()),
        "results": results,
    }


def page(*buckets: dict[str, Any]) -> dict[str, Any]:
    return {"object": "page", "data": list(buckets), "has_more": False, "next_page": None}


USAGE = {
    "object": "organization.usage.completions.result",
    "input_tokens": 10_000,  # uncached 6,000 + cached 3,000 + cache writes 1,000
    "input_cached_tokens": 3_000,
    "input_cache_write_tokens": 1_000,
    "input_uncached_tokens": 6_000,
    "output_tokens": 500,
    "num_model_requests": 7,
    "project_id": "proj_1",
    "api_key_id": "key_abc",
    "model": "gpt-4o-2024-08-06",
    "batch": False,
}
COST = {
    "object": "organization.costs.result",
    "amount": {"value": Decimal("0.015"), "currency": "usd"},
    "line_item": "gpt-4o-2024-08-06, input",
    "project_id": "proj_1",
    "api_key_id": "key_abc",
    "quantity": Decimal("6000"),
}


def test_usage_reports_cache_writes_apart_from_uncached_input() -> None:
    parsed = parse_pages("openai", [("usage.json", page(bucket([USAGE])))])
    tokens = {line.token_type: line.tokens for line in parsed.lines}
    assert tokens == {"input": 6_000, "cache_read": 3_000, "cache_write": 1_000, "output": 500}
    assert {line.api_key for line in parsed.lines} == {"key_abc"}
    assert sum(line.requests for line in parsed.lines) == 7
    # An older report without the new fields: uncached = total - cached - cache writes.
    older = {k: v for k, v in USAGE.items() if k != "input_uncached_tokens"}
    again = parse_pages("openai", [("usage.json", page(bucket([older])))])
    assert {line.token_type: line.tokens for line in again.lines} == tokens


def test_costs_carry_quantity_and_api_key_counted_once_beside_usage() -> None:
    cost = parse_pages("openai", [("costs.json", page(bucket([COST])))])
    (line,) = cost.lines
    assert (line.api_key, line.tokens, line.token_type) == ("key_abc", 6_000, "input")
    accounts = {"openai": AccountMap({"key_abc": {"team": "search"}})}
    cells, _, metered = invoice_cells(cost.lines, default_pricer(), accounts)
    ((key, only),) = cells.items()
    assert key == (DAY, "openai", "key_abc", "gpt-4o")  # the API-key mapping applies
    assert only.tokens["input"] == 6_000 and metered == {("openai", DAY)}
    usage = parse_pages("openai", [("usage.json", page(bucket([USAGE])))])
    cells, _, _ = invoice_cells([*cost.lines, *usage.lines], default_pricer(), accounts)
    assert cells[key].tokens["input"] == 6_000  # the usage report's count, not twice


def test_fetch_asks_for_api_key_ids_and_knows_each_report_kind() -> None:
    openai = {endpoint.name: endpoint for endpoint in ENDPOINTS["openai"]}
    assert ("group_by", "api_key_id") in openai["costs"].params
    assert ("group_by", "api_key_id") in openai["usage-completions"].params
    assert [e.kind for e in ENDPOINTS["openai"]] == ["cost", "usage", "usage"]
    assert [e.kind for e in ENDPOINTS["anthropic"]] == ["cost", "usage"]


def test_an_empty_page_takes_its_kind_from_the_endpoint_or_file_name() -> None:
    empty = page(bucket([]))
    assert parse_pages("openai", [("openai costs", empty)], "cost").buckets == {
        ("openai", "cost", DAY)
    }
    assert parse_pages("openai", [("/d/costs-2026-10-02.json", empty)]).buckets == {
        ("openai", "cost", DAY)
    }
    with pytest.raises(ReportError, match="cost or a usage report"):
        parse_pages("openai", [("/d/usage/export.json", page(bucket([]))), ("x.json", empty)])


@pytest.mark.integration
def test_an_empty_cost_page_replaces_its_day_and_keeps_usage(
    ledger_client: Client, tmp_path: Path
) -> None:
    store = InvoiceStore(ledger_client)
    usage = tmp_path / "usage.json"
    costs = tmp_path / "costs.json"
    usage.write_text(json.dumps(page(bucket([USAGE])), default=str))
    costs.write_text(json.dumps(page(bucket([COST])), default=str))
    import_files(store, "openai", [usage, costs])
    kinds = {line.kind for line in store.lines(DAY, DAY + timedelta(days=1))}
    assert kinds == {"usage", "cost"}

    # The corrected cost report: nothing billed that day. Imported with the usage page again.
    costs.write_text(json.dumps(page(bucket([])), default=str))
    ((_, result),) = import_files(store, "openai", [usage, costs])
    assert (result.replaced, result.unchanged, result.lines_removed) == (1, 1, 1)
    left = store.lines(DAY, DAY + timedelta(days=1))
    assert {line.kind for line in left} == {"usage"}
    assert sum(line.tokens for line in left) == 10_500
