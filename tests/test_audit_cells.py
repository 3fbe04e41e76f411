"""``cache_savings`` and ``cost_by_unit`` over the insight cells (their cached calls and per-unit
counts: migration 78) equal the scans of ``ledger FINAL`` they replaced, to the last digit:
periods cut mid-hour, under an hour and whole days, all spend and one team; and migration 78
fills those measures in cells written by the release before them, every total unchanged."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.events import UsageEvent
from spendstream.pricing import default_pricer
from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks.audits import AUDITS
from spendstream.sinks.client import connect
from spendstream.sinks.insight_cells import ADDED_MEASURES, CELLS_TABLE
from spendstream.sinks.queries import UNIT_ARRAY_JOIN, UNIT_COST, UNIT_QUANTITY
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support.ledger_data import DAYS, START, fill_ledger, generate
from tests.test_audits import as_map, assert_audit_equals, audited, cache_rows, unit_rows

__all__ = ["audited"]  # the fixture, shared with test_audits

pytestmark = pytest.mark.integration

# cache_savings before it read the insight cells: two grouped scans of ledger FINAL.
PERIOD = "event_time >= {since:DateTime64(3)} AND event_time < {until:DateTime64(3)} AND /*scope*/1"
CACHE_SAVINGS_FROM_LEDGER = (
    "WITH rates AS (SELECT price_ref, batch, sum(cost_input) / "
    "sum(input_tokens - cache_read_tokens - cache_write_tokens) AS input_rate "
    f"FROM ledger FINAL WHERE priced AND NOT response_cached AND {PERIOD} "
    "AND input_tokens > cache_read_tokens + cache_write_tokens GROUP BY price_ref, batch), "
    "groups AS (SELECT toDate(event_time) AS day, provider, model, price_ref, batch, "
    "count() AS events, sum(cache_read_tokens) AS cr, sum(cache_write_tokens) AS cw, "
    "sum(cost_cache_read) AS ccr, sum(cost_cache_write) AS ccw "
    f"FROM ledger FINAL WHERE priced AND NOT response_cached AND {PERIOD} "
    "AND cache_read_tokens + cache_write_tokens > 0 "
    "GROUP BY day, provider, model, price_ref, batch) "
    # the join of the two, unchanged
    + AUDITS["cache_savings"].template[AUDITS["cache_savings"].template.index("SELECT g.day") :]
)
COST_BY_UNIT_FROM_LEDGER = (
    "SELECT toDate(event_time) AS day, provider, model, unit, count() AS events, "
    f"sum({UNIT_QUANTITY}) AS quantity, sum({UNIT_COST}) AS cost_usd, "
    "countIf(NOT priced) AS unpriced_events "
    f"FROM ledger FINAL {UNIT_ARRAY_JOIN} WHERE {PERIOD} "
    "GROUP BY day, provider, model, unit ORDER BY day, provider, model, unit"
)
BEFORE = {"cache_savings": CACHE_SAVINGS_FROM_LEDGER, "cost_by_unit": COST_BY_UNIT_FROM_LEDGER}
TOTALS = "SELECT count(), sum(cost_total), sum(cache_read_tokens) FROM ledger FINAL"


def assert_cells_equal_ledger(client: Client, since: datetime, until: datetime) -> None:
    for name, before in BEFORE.items():
        assert_audit_equals(client, name, before, since, until)


def unit_events() -> list[UsageEvent]:
    """Tool calls priced as units (some with tokens too), and a unit the catalog has no price
    for, over the audited days."""
    events = []
    for i in range(120):
        units = {"web_search_calls": Decimal(1 + i % 4)}
        if i % 5 == 0:
            units["images"] = Decimal(2)
        events.append(
            UsageEvent(
                provider="openai",
                model="gpt-4o",
                operation="other",
                tool="web_search",
                units=units,
                input_tokens=(50 + i) if i % 3 else 0,
                output_tokens=7 if i % 3 else 0,
                event_time=START + timedelta(minutes=37 * i + 5),
                tags={"team": "search" if i % 2 else "growth"},
            )
        )
    return events


def test_cache_savings_and_cost_by_unit_from_the_cells_equal_the_ledger_scans(
    audited: tuple[Client, Any, datetime, datetime],
) -> None:
    client, _rated, since, until = audited
    assert_cells_equal_ledger(client, since, until)


def test_migration_78_fills_the_cells_written_before(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'clickhouse'}", "spendstream")
    try:
        ledger_schema.migrate(client, [m for m in MIGRATIONS if m.version != 78])
        rated = fill_ledger(client, [*generate(1_500), *unit_events()])
        # The cells as the release before left them: migration 75 then made no such columns.
        client.command(
            f"ALTER TABLE {CELLS_TABLE} "
            + ", ".join(f"DROP COLUMN {name}" for name in ADDED_MEASURES)
        )
        totals = client.query(TOTALS).result_rows
        assert migrate(client) == [78]
        assert client.query(TOTALS).result_rows == totals
        cells = (
            "SELECT sum(events), sum(cost_total), sum(cache_read_tokens), sum(cached_events), "
            f"sum(token_events), sumMap(unit_events) FROM {CELLS_TABLE} FINAL"
        )
        ledger = (
            "SELECT count(), sum(cost_total), sum(cache_read_tokens), "
            "countIf(cache_read_tokens + cache_write_tokens > 0), "
            "countIf(input_tokens + output_tokens > 0 OR cost_total != cost_units), "
            "sumMap(mapApply((k, v) -> (k, toUInt64(1)), unit_quantities)) FROM ledger FINAL"
        )
        found = client.query(cells).result_rows
        assert found == client.query(ledger).result_rows
        assert found[0][3] > 0 and found[0][5]  # cached calls and usage units were written
        since, until = START, START + timedelta(days=DAYS)
        pricer = default_pricer()
        for name, expected in (
            ("cache_savings", cache_rows(rated, pricer)),
            ("cost_by_unit", unit_rows(rated)),
        ):
            audit = AUDITS[name]
            rows = client.query(audit.sql, parameters=audit.parameters(since, until)).result_rows
            assert as_map(name, [list(row) for row in rows]) == expected
        assert_cells_equal_ledger(client, since, until)
    finally:
        client.close()
