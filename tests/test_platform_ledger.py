"""The ledger records where each call was priced (migration 80, tested on a ledger written by the
previous release), reports group by platform and region, and re-rating after a platform price
change re-prices history, on real chDB."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.events import UsageEvent
from spendstream.pricing import Pricer, default_pricer
from spendstream.pricing.catalog import load_catalog
from spendstream.sinks.client import connect
from spendstream.sinks.entry import LEDGER_COLUMNS, LedgerEntry
from spendstream.sinks.ledger import LedgerWriter
from spendstream.sinks.migrations import migrate as apply
from spendstream.sinks.queries import spend_report_sql
from spendstream.sinks.rerating import reprice
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support.ledger_data import START, generate

pytestmark = pytest.mark.integration

# The previous release priced every call at its model's base rate: no platform rows.
PREVIOUS = Pricer(load_catalog().model_copy(update={"platforms": []}))
PLACED = (
    ("azure", "azure/eu/gpt-4o"),
    ("bedrock", "eu.anthropic.claude-haiku-4-5-20251001-v1:0"),
    ("vertex_ai", "gemini-2.0-flash"),
)


def placed_events(count: int) -> list[UsageEvent]:
    return [
        UsageEvent(
            event_time=START + timedelta(hours=1, seconds=index),
            provider=PLACED[index % 3][0],
            model=PLACED[index % 3][1],
            input_tokens=1_000 + index,
            output_tokens=100 + index,
            tags={"team": "search"},
        )
        for index in range(count)
    ]


def totals(client: Client) -> tuple[Any, ...]:
    return tuple(
        client.query(
            "SELECT count(), sum(cost_total), sum(input_tokens), uniqExact(event_id) "
            "FROM ledger FINAL"
        ).result_rows[0]
    )


def test_migration_80_on_a_ledger_written_by_the_previous_release(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'clickhouse'}", "spendstream")
    apply(client, [m for m in MIGRATIONS if m.version != 80])
    old_columns = [name for name in LEDGER_COLUMNS if name not in ("platform", "region")]
    events = [*generate(1_500), *placed_events(60)]
    rows = [LedgerEntry(e, PREVIOUS.rate(e)).row(1, e.event_time) for e in events]
    kept = [LEDGER_COLUMNS.index(name) for name in old_columns]
    client.insert("ledger", [[row[i] for i in kept] for row in rows], column_names=old_columns)
    before = totals(client)
    assert migrate(client) == [80]
    assert totals(client) == before
    assert client.query("SELECT DISTINCT platform, region FROM ledger").result_rows == [("", "")]

    # After a platform price change, re-rating history prices the Azure EU, Bedrock EU and
    # Vertex calls at their platform rows and keeps the old rows in ledger_rerated.
    since, until = START, START + timedelta(days=30)
    done = reprice(client, default_pricer(), since, until)
    assert done.changed == 60
    by_place = client.query(
        "SELECT model, platform, region, sum(cost_total) FROM ledger FINAL "
        "WHERE platform != '' GROUP BY model, platform, region ORDER BY model"
    ).result_rows
    old = client.query(
        "SELECT model, sum(cost_total) FROM ledger_rerated GROUP BY model ORDER BY model"
    ).result_rows
    assert [row[:3] for row in by_place] == [
        ("azure/eu/gpt-4o", "azure", "eu"),
        ("eu.anthropic.claude-haiku-4-5-20251001-v1:0", "bedrock", "eu"),
        ("gemini-2.0-flash", "vertex", ""),
    ]
    factors = {model: new / dict(old)[model] for model, _p, _r, new in by_place}
    assert factors["azure/eu/gpt-4o"] == Decimal("1.1")  # 10 % above base
    assert factors["eu.anthropic.claude-haiku-4-5-20251001-v1:0"] == Decimal("1.1")
    assert factors["gemini-2.0-flash"] == Decimal("1.5")  # $0.15 / $0.60 against $0.10 / $0.40
    expected = sum(default_pricer().rate(e).cost_total for e in events)
    assert totals(client)[1] == expected
    assert migrate(client) == []
    client.close()


def test_reports_group_by_platform_and_region(ledger_client: Client) -> None:
    events = [*generate(300), *placed_events(30)]
    pricer = default_pricer()
    LedgerWriter(ledger_client, 1).write([LedgerEntry(e, pricer.rate(e)) for e in events])
    since, until = START - timedelta(days=1), START + timedelta(days=60)
    sql, params = spend_report_sql(["platform", "region"], since, until, limit=100)
    report = {
        (row[0], row[1]): row[2] for row in ledger_client.query(sql, parameters=params).result_rows
    }
    expected: dict[tuple[str, str], Decimal] = {}
    for event in events:
        rating = pricer.rate(event)
        key = (rating.platform, rating.region)
        expected[key] = expected.get(key, Decimal(0)) + rating.cost_total
    assert report == expected
    assert {("azure", "eu"), ("bedrock", "eu"), ("vertex", ""), ("api", "")} <= set(report)
