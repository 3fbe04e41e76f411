"""Usage units downstream, on real chDB: the migration from the previous schema keeps every total,
rollups stay equal to the ledger, and reports, audits, FOCUS and budget figures see unit costs.
Expected costs are computed here by hand from the price pages, not read from the catalog."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from clickhouse_connect.driver.client import Client
from typer.testing import CliRunner

from spendstream.alerts.config import load_alerting
from spendstream.alerts.figures import compute_figures
from spendstream.cli.data import report
from spendstream.config import Settings
from spendstream.dashboard.burndown import burndown
from spendstream.events import UsageEvent
from spendstream.pricing import Pricer
from spendstream.reconcile.ledger_side import AccountMap
from spendstream.reconcile.lines import InvoiceLine
from spendstream.reconcile.variance import compute_variance
from spendstream.sinks.access import ClientReader
from spendstream.sinks.audits import AUDITS
from spendstream.sinks.client import connect
from spendstream.sinks.focus import focus_rows, ledger_total
from spendstream.sinks.ledger import LedgerEntry, LedgerWriter
from spendstream.sinks.migrations import (
    LEAN_TABLES,
    ROLLUP_TABLES,
    USER_TABLES,
    migrate,
)
from spendstream.sinks.queries import spend_report_sql
from spendstream.sinks.rerating import reprice
from spendstream.worker.schema import MIGRATIONS
from tests.support.ledger_data import write_config
from tests.support.units import (
    VECTOR_OVERRIDE,
    hand_cost,
    unit_events,
    write_as_before_units,
)

pytestmark = pytest.mark.integration

D = Decimal
START = datetime(2026, 11, 2, 9, tzinfo=UTC)
PRICER = Pricer.from_config({"overrides": [VECTOR_OVERRIDE]})
ALL_ROLLUPS = (*ROLLUP_TABLES.values(), *LEAN_TABLES.values(), *USER_TABLES.values())


def write(client: Client, events: list[UsageEvent], version: int = 1) -> None:
    LedgerWriter(client, version).write([LedgerEntry(e, PRICER.rate(e)) for e in events])


def one(client: Client, sql: str) -> Any:
    return client.query(sql).result_rows[0][0]


SNAPSHOT = (
    "SELECT count(), sum(cost_total), sum(input_tokens), sum(output_tokens), "
    "sum(cityHash64(event_id, toString(cost_total))) FROM ledger FINAL"
)


def rollup_totals(client: Client) -> list[tuple[Any, ...]]:
    return [
        client.query(
            f"SELECT sum(events), sum(cost_total), sum(input_tokens) FROM {table} FINAL"
        ).result_rows[0]
        for table in ROLLUP_TABLES.values()
    ]


def test_migration_keeps_a_ledger_written_by_the_previous_schema(chdb_path: Path) -> None:
    client = connect(f"chdb://{chdb_path}", "spendstream")
    # The release before units (40) also predates Explain's drivers rollups (60), whose backfill
    # reads the unit columns, the lean drivers rollups (70) filled from them and the runs rollups
    # (1101), whose backfill reads them too, and the insight cells (75) and runs (1102) on them,
    # with what is built on those: the cells' audit counts (78), narrow quantile states (79) and
    # the group hashes (1004), and the view writing the drivers minutes (1008).
    later = (40, 60, 70, 75, 78, 79, 1004, 1008, 1101, 1102)
    previous = [migration for migration in MIGRATIONS if migration.version not in later]
    migrate(client, previous)
    rng = random.Random(1)
    token_events = [
        UsageEvent(
            event_time=START + timedelta(seconds=rng.randrange(0, 3 * 3600)),
            provider=("openai", "anthropic")[i % 2],
            model=("gpt-4o-mini", "claude-sonnet-4-5")[i % 2],
            input_tokens=rng.randrange(1, 40_000),
            output_tokens=rng.randrange(0, 3_000),
            tags={"team": "search"},
        )
        for i in range(400)
    ]
    write_as_before_units(client, [LedgerEntry(e, PRICER.rate(e)) for e in token_events], 1)
    before, rollups_before = client.query(SNAPSHOT).result_rows[0], rollup_totals(client)
    assert before[1] > 0

    assert migrate(client, MIGRATIONS) == list(later)
    assert client.query(SNAPSHOT).result_rows[0] == before  # totals identical
    assert rollup_totals(client) == rollups_before
    assert one(client, "SELECT countIf(cost_units != 0 OR notEmpty(unit_costs)) FROM ledger") == 0

    # New unit-bearing events in the same windows: rollups = ledger, units included.
    events = unit_events(60, START, 3 * 3600)
    write(client, events, version=2)
    ledger = client.query(
        "SELECT sum(cost_total), sum(cost_units), sumMap(unit_costs), sumMap(unit_quantities) "
        "FROM ledger FINAL"
    ).result_rows[0]
    expected_units = sum((sum(hand_cost(e).values(), D(0)) for e in events), D(0))
    expected_units -= sum((hand_cost(e).get("tokens", D(0)) for e in events), D(0))
    assert ledger[1] == expected_units.quantize(D("1e-18"))
    assert ledger[0] == before[1] + sum((sum(hand_cost(e).values(), D(0)) for e in events), D(0))
    for table in ALL_ROLLUPS:
        rolled = client.query(
            "SELECT sum(cost_total), sum(cost_units), sumMap(unit_costs), "
            f"sumMap(unit_quantities) FROM {table} FINAL"
        ).result_rows[0]
        assert rolled == ledger, table
    client.close()


@pytest.fixture
def filled(ledger_client: Client) -> tuple[Client, list[UsageEvent]]:
    events = unit_events(90, START, 3 * 3600)
    write(ledger_client, events)
    return ledger_client, events


def test_report_audit_and_focus_by_unit(filled: tuple[Client, list[UsageEvent]]) -> None:
    client, events = filled
    expected: dict[str, list[Decimal]] = {}
    for event in events:
        costs = hand_cost(event)
        for unit, quantity in event.units.items():
            row = expected.setdefault(unit, [D(0), D(0)])
            row[0] += costs.get(unit, D(0))
            row[1] += quantity
        if event.input_tokens:
            row = expected.setdefault("tokens", [D(0), D(0)])
            row[0] += costs["tokens"]
            row[1] += event.input_tokens + event.output_tokens
    sql, params = spend_report_sql(["unit"], START - timedelta(days=1), START + timedelta(days=1))
    report = {row[0]: [row[1], row[-1]] for row in client.query(sql, parameters=params).result_rows}
    assert report == {unit: [cost.quantize(D("1e-18")), q] for unit, (cost, q) in expected.items()}
    total = one(client, "SELECT sum(cost_total) FROM ledger FINAL")
    assert sum((row[0] for row in report.values()), D(0)) == total

    audit = AUDITS["cost_by_unit"]
    rows = client.query(
        audit.sql, parameters=audit.parameters(START - timedelta(days=1), START + timedelta(days=1))
    ).result_rows
    assert sum((row[6] for row in rows), D(0)) == total
    assert {row[3] for row in rows if row[7]} == {"custom_widgets"}  # unpriced, flagged

    reader = ClientReader(client)
    focus = focus_rows(reader, "2026-11")
    assert sum((row["BilledCost"] for row in focus), D(0)) == ledger_total(reader, "2026-11")
    by_unit: dict[str, Decimal] = {}
    for row in focus:
        by_unit[row["ConsumedUnit"]] = (
            by_unit.get(row["ConsumedUnit"], D(0)) + row["ConsumedQuantity"]
        )
    assert by_unit.pop("Tokens") == expected["tokens"][1]
    assert by_unit == {unit: q for unit, (_cost, q) in expected.items() if unit != "tokens"}
    image_rows = [row for row in focus if row["x_CostDriver"] == "images.1024x1024.hd"]
    assert image_rows and all(
        row["SkuId"] == "openai/dall-e-3:images.1024x1024.hd" for row in image_rows
    )


def test_budget_figures_on_one_unit(filled: tuple[Client, list[UsageEvent]]) -> None:
    client, events = filled
    settings = Settings(
        budgets=[
            {"name": "vq", "unit": "vector_queries", "limit": "1", "period": "day"},
            {"name": "images", "unit": "images", "limit": "1", "period": "day"},
            {"name": "search-tokens", "unit": "tokens", "scope": {"team": "search"}, "limit": "1"},
            {"name": "all", "limit": "1", "period": "day"},
        ]
    )
    config = load_alerting(settings)
    now = START + timedelta(hours=3, minutes=30)
    vq, images, tokens, everything = compute_figures(
        ClientReader(client), config.budgets, config.alerts, now
    )

    def spent(unit: str, team: str | None = None) -> Decimal:
        return sum(
            (
                cost
                for e in events
                if team is None or e.tag("team") == team
                for name, cost in hand_cost(e).items()
                if name == unit or name.startswith(unit + ".")
            ),
            D(0),
        ).quantize(D("1e-18"))

    assert vq.spend == spent("vector_queries") > 0
    assert images.spend == spent("images") > 0  # both image variants
    assert tokens.spend == spent("tokens", "search") > 0
    assert everything.spend == one(client, "SELECT sum(cost_total) FROM ledger FINAL")
    for figure in (vq, images, tokens, everything):  # the dashboard's burn-down ends there too
        assert burndown(ClientReader(client), figure.budget, now)["spend"] == figure.spend


def test_bad_budget_unit_names_the_key_and_fix() -> None:
    with pytest.raises(Exception) as caught:
        load_alerting(Settings(budgets=[{"name": "x", "unit": "Vector Queries", "limit": "1"}]))
    assert "budgets[0].unit" in str(caught.value) and 'unit = "vector_queries"' in str(caught.value)
    with pytest.raises(Exception) as blocked:
        load_alerting(
            Settings(budgets=[{"name": "x", "unit": "images", "limit": "1", "block_at": 100}])
        )
    assert "block_at does not apply to a budget with unit" in str(blocked.value)


def test_report_cli_by_unit_and_reprice_of_a_unit_price(
    filled: tuple[Client, list[UsageEvent]], tmp_path: Path, chdb_path: Path
) -> None:
    client, events = filled
    config = str(write_config(tmp_path, chdb_path))
    app = typer.Typer()
    app.command()(report)
    app.command()(lambda: None)  # two commands: the first is invoked by name
    window = ["--since", "2026-11-01", "--until", "2026-11-03"]
    ran = CliRunner().invoke(
        app, ["report", "--by", "unit", "--by", "team", *window, "-c", config, "-f", "json"]
    )
    assert ran.exit_code == 0, ran.output
    lines = [json.loads(line) for line in ran.output.splitlines()]
    vq = {line["team"]: line for line in lines if line["unit"] == "vector_queries"}
    for team, line in vq.items():
        mine = [e for e in events if e.tag("team") == team and "vector_queries" in e.units]
        assert D(line["cost_usd"]) == sum((hand_cost(e)["vector_queries"] for e in mine), D(0))
        assert D(line["quantity"]) == sum((e.units["vector_queries"] for e in mine), D(0))

    # The self-hosted vector DB gets cheaper from the start: re-rate the period.
    cheaper = dict(
        VECTOR_OVERRIDE, unit_prices={"vector_queries": {"price": D("0.25"), "per": 1000}}
    )
    result = reprice(
        client, Pricer.from_config({"overrides": [cheaper]}), START, START + timedelta(days=1)
    )
    queries = sum((e.units.get("vector_queries", D(0)) for e in events), D(0))
    assert result.changed == sum(1 for e in events if "vector_queries" in e.units)
    assert result.old_total - result.new_total == queries * (D("0.40") - D("0.25")) / 1000
    ledger = client.query(
        "SELECT sum(cost_total), sumMap(unit_costs) FROM ledger FINAL"
    ).result_rows[0]
    assert ledger[0] == result.new_total
    assert ledger[1]["vector_queries"] == queries * D("0.25") / 1000
    for table in ALL_ROLLUPS:
        rolled = client.query(f"SELECT sum(cost_total), sumMap(unit_costs) FROM {table} FINAL")
        assert rolled.result_rows[0] == ledger, table


def test_reconcile_compares_unit_costs_with_the_invoice_lines_that_are_not_tokens(
    ledger_client: Client,
) -> None:
    day = START.date()
    events = [
        UsageEvent(
            event_id=f"ws-{i}",
            event_time=START + timedelta(minutes=i),
            provider="anthropic",
            model="claude-sonnet-4-5",
            input_tokens=10_000,
            output_tokens=1_000,
            units={"web_search_calls": D(4)},
            tags={"team": "search"},
        )
        for i in range(5)
    ]
    write(ledger_client, events)
    tokens = 5 * (D(10_000) * 3 + D(1_000) * 15) / 10**6  # $3 / $15 per million
    searches = 5 * 4 * D(10) / 1000  # $10 per 1,000 searches: $0.20
    billed_searches = D("0.25")  # the invoice says 25 searches' worth
    line = dict(provider="anthropic", kind="cost", day=day, model="claude-sonnet-4-5")
    lines = [
        InvoiceLine(**line, line_item="input", token_type="input", amount_usd=D("0.15")),
        InvoiceLine(**line, line_item="output", token_type="output", amount_usd=D("0.075")),
        InvoiceLine(**line, line_item="web_search", token_type="other", amount_usd=billed_searches),
        InvoiceLine(
            provider="anthropic",
            kind="usage",
            day=day,
            model="claude-sonnet-4-5",
            line_item="input",
            token_type="input",
            tokens=50_000,
        ),
        InvoiceLine(
            provider="anthropic",
            kind="usage",
            day=day,
            model="claude-sonnet-4-5",
            line_item="output",
            token_type="output",
            tokens=5_000,
        ),
    ]
    (cell,) = compute_variance(
        ClientReader(ledger_client),
        lines,
        PRICER,
        {"anthropic": AccountMap({})},
        day,
        day + timedelta(days=1),
    )
    v = cell.variance
    assert v.our_usd == tokens + searches
    assert v.invoiced_usd == D("0.225") + billed_searches
    assert v.unexplained == billed_searches - searches  # 5 searches we did not log
    assert v.price_drift == 0 and v.never_seen == 0
    assert v.difference == v.explained
