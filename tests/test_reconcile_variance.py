"""Reconciliation end to end on chDB: provider reports generated in their documented formats,
loaded twice and corrected; ledger traffic with planted causes, each recovered exactly."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.events import UsageEvent
from spendstream.pricing import default_pricer
from spendstream.reconcile.ledger_side import AccountMap
from spendstream.reconcile.providers import parse_pages
from spendstream.reconcile.report import variance_table
from spendstream.reconcile.store import InvoiceStore
from spendstream.reconcile.variance import CellVariance, Variance, compute_variance
from spendstream.sinks.access import ClientReader
from tests.support import provider_reports as reports
from tests.support.ledger_data import fill_ledger
from tests.support.reconcile_data import (
    DAYS,
    PROJECTS,
    START,
    M,
    saved_reports,
    true_traffic,
    what_we_logged,
)


def write_pages(tmp_path: Path, name: str, pages: list[Any]) -> list[Path]:
    paths = []
    for index, page in enumerate(pages):
        path = tmp_path / f"{name}-{index}.json"
        path.write_text(reports.dumps(page))
        paths.append(path)
    return paths


def load_all(store: InvoiceStore, saved: dict[str, list[Any]], tmp_path: Path) -> list[Any]:
    from spendstream.reconcile.providers import load_json

    results = []
    for name, pages in saved.items():
        paths = write_pages(tmp_path, name, pages)
        parsed = parse_pages(name.split("-")[0], [(str(p), load_json(p)) for p in paths])
        results.append(store.load(parsed, name))
    return results


def by_model(cells: list[CellVariance]) -> dict[str, Variance]:
    sums: dict[str, Variance] = {}
    for cell in cells:
        sums.setdefault(cell.key[3], Variance()).add(cell.variance)
    return sums


@pytest.fixture
def planted(ledger_client: Client, tmp_path: Path) -> dict[str, Any]:
    true = true_traffic()
    logged, dropped = what_we_logged(true)
    fill_ledger(ledger_client, logged)
    store = InvoiceStore(ledger_client)
    saved = saved_reports(true)
    first = load_all(store, saved, tmp_path)
    return {"true": true, "dropped": dropped, "store": store, "saved": saved, "first": first}


def variance(client: Client, store: InvoiceStore) -> list[CellVariance]:
    start, end = START.date(), START.date() + timedelta(days=DAYS)
    accounts = {"openai": AccountMap(PROJECTS)}
    return compute_variance(
        ClientReader(client), store.lines(start, end), default_pricer(), accounts, start, end
    )


def test_each_planted_cause_is_recovered_exactly(
    ledger_client: Client, planted: dict[str, Any]
) -> None:
    cells = variance(ledger_client, planted["store"])
    models = by_model(cells)
    true = planted["true"]
    for cell in cells:  # the parts add up to the difference exactly, cell by cell
        assert cell.variance.explained == cell.variance.difference
    zero = Decimal(0)

    drift = models["gpt-4o"]
    expected_drift = sum(
        (
            (e.input_tokens - e.cache_read_tokens) * (Decimal("2.75") - Decimal("2.50")) / M
            for e in true
            if e.model == "gpt-4o"
        ),
        zero,
    )
    assert drift.price_drift == expected_drift > 0
    assert (drift.never_seen, drift.unpriced, drift.hidden, drift.unexplained) == (0, 0, 0, 0)

    missing = models["gpt-4o-mini"]
    pricer = default_pricer()
    expected_missing = sum((pricer.rate(e).cost_total for e in planted["dropped"]), zero)
    assert len(planted["dropped"]) == 6  # 2 % of 300 calls
    assert missing.never_seen == expected_missing > 0
    assert (missing.price_drift, missing.unpriced, missing.hidden, missing.unexplained) == (
        0,
        0,
        0,
        0,
    )

    reasoning = models["o4-mini"]
    omitted = sum(e.reasoning_tokens for e in true if e.model == "o4-mini")
    assert reasoning.hidden == omitted * Decimal("4.40") / M > 0
    assert reasoning.invoiced_tokens - reasoning.our_tokens == omitted
    assert (reasoning.price_drift, reasoning.never_seen, reasoning.unpriced) == (0, 0, 0)

    unpriced = models["gpt-9-preview"]
    assert unpriced.our_usd == 0 and unpriced.unpriced == unpriced.invoiced_usd > 0
    assert (unpriced.price_drift, unpriced.never_seen, unpriced.hidden) == (0, 0, 0)

    cache = models["claude-sonnet-4-5"]
    writes = sum(e.cache_write_tokens for e in true if e.provider == "anthropic")
    assert cache.hidden == writes * Decimal("3.75") / M > 0
    assert (cache.price_drift, cache.never_seen, cache.unpriced, cache.unexplained) == (
        0,
        0,
        0,
        0,
    )
    # Every OpenAI project is mapped; Anthropic's workspace is not: attributed by tagged spend.
    total = Variance()
    for cell in cells:
        total.add(cell.variance)
    assert total.explained == total.difference
    assert 0 < total.attributed_usd < total.invoiced_usd
    openai = [c.variance for c in cells if c.key[1] == "openai"]
    assert sum((v.attributed_usd for v in openai), zero) == sum(
        (v.invoiced_usd for v in openai), zero
    )


def test_loading_twice_changes_nothing_and_a_correction_replaces(
    ledger_client: Client, planted: dict[str, Any], tmp_path: Path
) -> None:
    store: InvoiceStore = planted["store"]
    start, end = START.date(), START.date() + timedelta(days=DAYS)
    assert all(r.new == DAYS and r.replaced == 0 for r in planted["first"])
    before = store.lines(start, end)
    rows_before = ledger_client.query("SELECT count() FROM invoice_lines").result_rows[0][0]

    again = load_all(store, planted["saved"], tmp_path)
    assert all(r.unchanged == DAYS and r.lines_written == 0 for r in again)
    assert store.lines(start, end) == before
    assert ledger_client.query("SELECT count() FROM invoice_lines").result_rows[0][0] == rows_before

    # The provider re-issues day 2 of the Anthropic cost report: one amount corrected, the
    # cache-write line withdrawn.
    pages = planted["saved"]["anthropic-cost"]
    corrected = [dict(page) for page in pages]
    bucket = dict(corrected[1]["data"][0])
    results = [dict(r) for r in bucket["results"] if "cache_creation" not in r["token_type"]]
    results[0]["amount"] = "12345.6789"
    bucket["results"] = results
    corrected[1] = {**corrected[1], "data": [bucket]}
    paths = write_pages(tmp_path, "anthropic-cost-v2", corrected)
    from spendstream.reconcile.providers import load_json

    parsed = parse_pages("anthropic", [(str(p), load_json(p)) for p in paths])
    result = store.load(parsed, "anthropic-cost-v2")
    assert (result.new, result.replaced, result.unchanged) == (0, 1, DAYS - 1)
    assert result.lines_removed == 1
    after = store.lines(start, end, "anthropic", ("cost",))
    day2 = START.date() + timedelta(days=1)
    on_day2 = [line for line in after if line.day == day2]
    assert len(on_day2) == 3
    assert any(line.amount_usd == Decimal("123.456789") for line in on_day2)
    assert not any(line.token_type == "cache_write" for line in on_day2)
    untouched = [line for line in after if line.day != day2]
    assert untouched == [
        line
        for line in before
        if line.provider == "anthropic" and line.kind == "cost" and line.day != day2
    ]
    # Loading the corrected report again changes nothing either.
    assert store.load(parsed, "anthropic-cost-v2").unchanged == DAYS
    assert store.lines(start, end, "anthropic", ("cost",)) == after


def test_cents_strings_and_usage_lines_parse_exactly() -> None:
    page = {
        "data": [
            {
                "starting_at": "2026-11-02T00:00:00Z",
                "ending_at": "2026-11-03T00:00:00Z",
                "results": [
                    {
                        "currency": "USD",
                        "amount": "123.45",
                        "cost_type": "tokens",
                        "token_type": "output_tokens",
                        "model": "claude-haiku-4-5",
                        "workspace_id": None,
                        "service_tier": "batch",
                        "context_window": "0-200k",
                        "description": "x",
                    },
                    {
                        "currency": "USD",
                        "amount": "0.1",
                        "cost_type": "web_search",
                        "token_type": None,
                        "model": None,
                        "workspace_id": "w",
                        "service_tier": None,
                        "context_window": None,
                        "description": "search",
                    },
                ],
            }
        ],
        "has_more": False,
        "next_page": None,
    }
    parsed = parse_pages("anthropic", [("page", page)])
    amounts = {line.line_item: line.amount_usd for line in parsed.lines}
    assert amounts == {"output_tokens": Decimal("1.2345"), "web_search:": Decimal("0.001")}
    assert {line.token_type for line in parsed.lines} == {"output", "other"}
    assert parsed.buckets == {("anthropic", "cost", date(2026, 11, 2))}
    assert replace(parsed.lines[0]).service_tier in ("batch", "")


def test_an_empty_day_in_a_reissued_report_withdraws_that_day(ledger_client: Client) -> None:
    pages = saved_reports(true_traffic())["openai-usage"]
    store = InvoiceStore(ledger_client)
    store.load(parse_pages("openai", [("usage-v1", page) for page in pages]), "v1")
    last = pages[-1]
    emptied = {**last, "data": [{**last["data"][0], "results": []}]}
    # The empty page's kind comes from its name (nothing else says it is a usage report).
    reissue = [("usage-v2", page) for page in pages[:-1]] + [("usage-v2", emptied)]
    result = store.load(parse_pages("openai", reissue), "v2")
    assert (result.unchanged, result.replaced, result.lines_written) == (DAYS - 1, 1, 0)
    assert result.lines_removed > 0
    days = {line.day for line in store.lines(START.date(), START.date() + timedelta(days=DAYS))}
    assert days == {START.date() + timedelta(days=d) for d in range(DAYS - 1)}


def anthropic_day(day: date, results: list[dict[str, Any]]) -> dict[str, Any]:
    start = f"{day.isoformat()}T00:00:00Z"
    end = f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z"
    return {
        "data": [{"starting_at": start, "ending_at": end, "results": results}],
        "has_more": False,
        "next_page": None,
    }


def test_web_search_lines_split_into_drift_and_unseen_searches_per_driver(
    ledger_client: Client,
) -> None:
    moment, model, calls, searches = START.replace(hour=9), "claude-sonnet-4-5", 40, 3
    missed = {2, 11, 17, 23, 31}  # the SDK lost the server_tool_use count of these calls
    events = [
        UsageEvent(
            event_id=f"ws-{i}",
            event_time=moment + timedelta(minutes=i),
            provider="anthropic",
            model=model,
            input_tokens=2_000,
            output_tokens=300,
            units={} if i in missed else {"web_search_calls": Decimal(searches)},
        )
        for i in range(calls)
    ]
    fill_ledger(ledger_client, events)
    billed_rate, our_rate = Decimal(12) / 1000, Decimal(10) / 1000  # the provider's vs catalog's
    invoiced_searches = calls * searches
    cents = {  # cost_report amounts are cents as decimal strings; tokens at the catalog's rates
        ("tokens", "uncached_input_tokens"): calls * 2_000 * Decimal(3) / M * 100,
        ("tokens", "output_tokens"): calls * 300 * Decimal(15) / M * 100,
        ("web_search", None): invoiced_searches * billed_rate * 100,
        ("web_fetch", None): Decimal("7.5"),  # a cost type the mapping table does not know
    }
    cost = [
        {
            "currency": "USD",
            "amount": str(amount),
            "cost_type": kind,
            "token_type": token,
            "model": model,
            "workspace_id": None,
            "service_tier": "standard",
            "context_window": "0-200k",
            "description": kind,
        }
        for (kind, token), amount in cents.items()
    ]
    usage = {
        "uncached_input_tokens": calls * 2_000, "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": calls * 300, "server_tool_use": {"web_search_requests": invoiced_searches},
        "model": model, "workspace_id": None, "api_key_id": None, "service_tier": "standard",
        "context_window": "0-200k",
    }  # fmt: skip
    store = InvoiceStore(ledger_client)
    day = START.date()
    for name, results in (("cost", cost), ("usage", [usage])):
        store.load(parse_pages("anthropic", [(name, anthropic_day(day, results))]), name)
    start, end = day, day + timedelta(days=1)
    (cell,) = compute_variance(
        ClientReader(ledger_client), store.lines(start, end), default_pricer(), {}, start, end
    )
    assert set(cell.drivers) == {"tokens", "web_search_calls", "unmapped:web_fetch:"}
    logged = (calls - len(missed)) * searches
    web = cell.drivers["web_search_calls"]
    assert (web.invoiced_quantity, web.our_quantity) == (invoiced_searches, logged)
    assert web.variance.our_usd == logged * our_rate
    assert web.variance.price_drift == logged * (billed_rate - our_rate) > 0  # the rate drifted
    assert web.variance.never_seen == len(missed) * searches * billed_rate > 0  # searches missed
    assert (web.variance.unpriced, web.variance.hidden, web.variance.unexplained) == (0, 0, 0)
    tokens = cell.drivers["tokens"].variance
    assert tokens.difference == 0 and tokens.explained == 0
    fetch = cell.drivers["unmapped:web_fetch:"].variance
    assert fetch.unexplained == fetch.difference == Decimal("0.075") and fetch.our_usd == 0
    v = cell.variance
    assert (
        v.explained
        == v.difference
        == sum((d.variance.difference for d in cell.drivers.values()), Decimal(0))
    )
    assert v.unexplained == Decimal("0.075") and v.price_drift == web.variance.price_drift

    columns, rows, _ = variance_table([cell], "model", {})
    table = [dict(zip(columns, row, strict=True)) for row in rows]
    assert [(r["model"], r["driver"]) for r in table] == [
        (model, "tokens"), (model, "unmapped:web_fetch:"), (model, "web_search_calls"),
        (model, "all"), ("", "tokens"), ("", "unmapped:web_fetch:"), ("", "web_search_calls"),
        ("", "all"),
    ]  # fmt: skip
    assert table[-1]["provider"] == "TOTAL" and table[-1]["difference_usd"] == v.difference
    assert table[2]["invoiced_quantity"] == invoiced_searches and table[2]["our_quantity"] == logged
    parts = ("price_drift", "never_seen", "unpriced", "hidden", "unexplained")
    for row in table:
        assert sum(row[p] for p in parts) == row["difference_usd"]
    assert sum(r["difference_usd"] for r in table[:3]) == table[3]["difference_usd"]
