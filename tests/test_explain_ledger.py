"""Explain over a real ledger: its cells (drivers rollups + ledger edges) equal ``ledger FINAL``
to the last digit for periods cut anywhere, the drivers add up to the delta exactly, a team
scope never sees another team, and migration 60 fills the drivers rollups of a ledger written
by the previous release without changing any total."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.events import UsageEvent
from spendstream.explain import Scope, explain
from spendstream.explain.cells import read_cells
from spendstream.pricing import default_pricer
from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from spendstream.sinks.ledger import REFRESH_STEPS, LedgerEntry, LedgerWriter
from spendstream.sinks.migrations import DRIVER_DIMENSIONS
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support import ledger_data

pytestmark = pytest.mark.integration

START = ledger_data.START
PERIODS = (  # (period, baseline): whole days, cut mid-hour, under an hour
    ((START + timedelta(days=2), START + timedelta(days=3)), (START, START + timedelta(days=1))),
    (
        (START + timedelta(days=2, hours=3, minutes=7), START + timedelta(days=3, hours=5)),
        (START + timedelta(hours=1, seconds=30), START + timedelta(days=1, minutes=59)),
    ),
    (
        (START + timedelta(hours=30, minutes=5), START + timedelta(hours=30, minutes=50)),
        (START + timedelta(hours=6, minutes=5), START + timedelta(hours=6, minutes=50)),
    ),
)


def ledger_cells(client: Client, since: datetime, until: datetime, where: str = "1") -> dict:
    dims = ", ".join(DRIVER_DIMENSIONS)
    found = client.query(
        f"SELECT {dims}, sum(request_count), sum(input_tokens), sum(cache_read_tokens), "
        "sum(cost_total) FROM ledger FINAL "
        "WHERE event_time >= {since:DateTime64(3)} AND event_time < {until:DateTime64(3)} "
        f"AND {where} GROUP BY {dims}",
        parameters={"since": since, "until": until},
    ).result_rows
    return {tuple(row[:8]): tuple(row[8:]) for row in found}


def test_cells_and_drivers_equal_the_ledger(ledger_client: Client) -> None:
    ledger_data.fill_ledger(ledger_client, ledger_data.generate(4_000))
    reader = ClientReader(ledger_client)
    for period, baseline in PERIODS:
        for since, until in (period, baseline):
            cells = read_cells(reader, Scope(), since, until)
            got = {
                key: (c.requests, c.input_tokens, c.cache_read_tokens, c.cost_total)
                for key, c in cells.items()
            }
            assert got == ledger_cells(ledger_client, since, until)
        answer = explain(reader, Scope(), period, baseline)
        total = ledger_cells(ledger_client, *period)
        assert answer.after == sum((v[3] for v in total.values()), Decimal(0))
        assert sum((d.amount for d in answer.drivers), Decimal(0)) == answer.delta
        for node in answer.contributors:
            assert sum((d.amount for d in node.drivers), Decimal(0)) == node.delta
        assert answer.sentence.startswith("all spend ")


def test_a_team_scope_never_mentions_another_team(ledger_client: Client) -> None:
    ledger_data.fill_ledger(ledger_client, ledger_data.generate(3_000, seed=3))
    reader = ClientReader(ledger_client)
    scope = Scope({}, "team IN {scope_teams:Array(String)}", {"scope_teams": ["search"]})
    period, baseline = PERIODS[0]
    answer = explain(reader, scope, period, baseline)
    assert answer.after == sum(
        (v[3] for v in ledger_cells(ledger_client, *period, "team = 'search'").values()),
        Decimal(0),
    )
    text = repr(answer.to_json())
    assert "support" not in text and "growth" not in text
    assert read_cells(reader, scope, *period) and all(
        key[0] == "search" for key in read_cells(reader, scope, *period)
    )
    filtered = explain(
        reader, Scope({"feature": ["qa"]}, scope.team_sql, scope.team_params), period, baseline
    )
    assert filtered.after == sum(
        (
            v[3]
            for v in ledger_cells(
                ledger_client, *period, "team = 'search' AND feature = 'qa'"
            ).values()
        ),
        Decimal(0),
    )


def test_drivers_migration_keeps_every_total(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'old'}", "spendstream")
    # 70: filled from 60's; 1004: hashes on 60's tables; 1008: a view writing 60's
    later = (60, 70, 1004, 1008)
    previous = [m for m in MIGRATIONS if m.version not in later]
    ledger_schema.migrate(client, previous)
    # Written by the previous release's writer: no drivers steps.
    pricer = default_pricer()
    events = ledger_data.generate(3_000, seed=5)
    old_steps = [step for step in REFRESH_STEPS if "drivers" not in step[1]]
    LedgerWriter(client, 1, old_steps).write([LedgerEntry(e, pricer.rate(e)) for e in events])
    totals = (
        "SELECT (SELECT sum(cost_total) FROM ledger FINAL), (SELECT count() FROM ledger FINAL), "
        "(SELECT sum(cost_total) FROM rollup_hour FINAL), "
        "(SELECT sum(events) FROM rollup_day FINAL)"
    )
    before = client.query(totals).result_rows[0]
    assert migrate(client) == list(later)
    assert client.query(totals).result_rows[0] == before
    for unit in ("minute", "hour", "day"):
        found = client.query(
            f"SELECT sum(cost_total), sum(events) FROM rollup_{unit}_drivers FINAL"
        ).result_rows[0]
        assert found == (before[0], before[1])
    reader = ClientReader(client)
    for period, _baseline in PERIODS:
        got = {k: c.cost_total for k, c in read_cells(reader, Scope(), *period).items()}
        assert got == {k: v[3] for k, v in ledger_cells(client, *period).items()}
    client.close()


def test_the_apps_response_cache_is_not_a_price_change(ledger_client: Client) -> None:
    # 10 paid calls on Dec 6, 10 on Dec 7 of which 5 the app answered from its own cache.
    day = datetime(2026, 12, 7, 10, tzinfo=UTC)
    events = [
        UsageEvent(
            event_time=when + timedelta(minutes=3 * i),
            provider="openai",
            model="gpt-4o",
            input_tokens=1000,
            output_tokens=100,
            response_cached=cached and i % 2 == 1,
            tags={"team": "rcx", "app": "a"},
        )
        for when, cached in ((day - timedelta(days=1), False), (day, True))
        for i in range(10)
    ]
    ledger_data.fill_ledger(ledger_client, events)
    period = (day, day + timedelta(hours=1))
    baseline = (day - timedelta(days=1), day - timedelta(days=1) + timedelta(hours=1))
    answer = explain(ClientReader(ledger_client), Scope({"team": ["rcx"]}), period, baseline)
    # Each paid call: 1000 x 2.50 + 100 x 10.00 per million = 0.0035; 5 fewer paid: -0.0175.
    assert answer.delta == Decimal("-0.0175")
    assert [(d.name, d.amount) for d in answer.drivers] == [
        ("response_cache_share", Decimal("-0.0175"))
    ]
    assert "unit prices" not in answer.sentence and "response cache" in answer.sentence
