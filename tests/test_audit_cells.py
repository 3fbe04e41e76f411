"""``cache_savings`` over the insight cells (their cached calls: migration 78) equals the grouped
scans of ``ledger FINAL`` it replaced, to the last digit: periods cut mid-hour, under an hour and
whole days, all spend and one team; and migration 78 fills the cached calls of cells written by
the release before it, every total unchanged."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.pricing import default_pricer
from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks.audits import AUDITS
from spendstream.sinks.client import connect
from spendstream.sinks.insight_cells import CELLS_TABLE
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support.ledger_data import DAYS, START, fill_ledger, generate
from tests.test_audits import as_map, audited, cache_rows

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
    "SELECT g.day AS day, g.provider AS provider, g.model AS model, "
    "sum(g.cr) AS cache_read_tokens, sum(g.cw) AS cache_write_tokens, "
    "sum(g.ccr) AS cost_cache_read, sum(g.ccw) AS cost_cache_write, "
    "sumIf(g.cr * r.input_rate - g.ccr, r.price_ref != '') AS gross_savings, "
    "sumIf(g.ccw - g.cw * r.input_rate, r.price_ref != '') AS write_premium, "
    "gross_savings - write_premium AS net_savings, "
    "sumIf(g.events, r.price_ref = '') AS events_without_rate "
    "FROM groups AS g LEFT JOIN rates AS r ON g.price_ref = r.price_ref AND g.batch = r.batch "
    "GROUP BY day, provider, model ORDER BY day, provider, model"
)
TOTALS = "SELECT count(), sum(cost_total), sum(cache_read_tokens) FROM ledger FINAL"


def assert_cells_equal_ledger(client: Client, since: datetime, until: datetime) -> None:
    audit = AUDITS["cache_savings"]
    periods = [
        (since, until),
        (since + timedelta(hours=5, minutes=17, seconds=3), until - timedelta(hours=7, minutes=41)),
        (since + timedelta(hours=30, minutes=5), since + timedelta(hours=30, minutes=50)),
    ]
    compared = 0
    for lo, hi in periods:
        for condition in ("1", "team = 'search'"):
            got = client.query(
                audit.scoped(condition), parameters=audit.parameters(lo, hi)
            ).result_rows
            want = client.query(
                CACHE_SAVINGS_FROM_LEDGER.replace("/*scope*/1", f"({condition})"),
                parameters={"since": lo, "until": hi},
            ).result_rows
            assert got == want
            compared += len(got)
    assert compared > 20  # the comparison is not of empties


def test_cache_savings_from_the_cells_equals_the_ledger_scan(
    audited: tuple[Client, Any, datetime, datetime],
) -> None:
    client, _rated, since, until = audited
    assert_cells_equal_ledger(client, since, until)


def test_migration_78_fills_the_cached_calls_of_cells_written_before(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'clickhouse'}", "spendstream")
    try:
        ledger_schema.migrate(client, [m for m in MIGRATIONS if m.version != 78])
        rated = fill_ledger(client, generate(1_500))
        # The cells as the release before left them: migration 75 then made no such column.
        client.command(f"ALTER TABLE {CELLS_TABLE} DROP COLUMN cached_events")
        totals = client.query(TOTALS).result_rows
        assert migrate(client) == [78]
        assert client.query(TOTALS).result_rows == totals
        cells = (
            "SELECT sum(events), sum(cost_total), sum(cache_read_tokens), sum(cached_events) "
            f"FROM {CELLS_TABLE} FINAL"
        )
        cached = "countIf(cache_read_tokens + cache_write_tokens > 0)"
        ledger = TOTALS.replace(" FROM", f", {cached} FROM")
        assert client.query(cells).result_rows == client.query(ledger).result_rows
        assert client.query(ledger).result_rows[0][3] > 0
        since, until = START, START + timedelta(days=DAYS)
        audit = AUDITS["cache_savings"]
        found = client.query(audit.sql, parameters=audit.parameters(since, until)).result_rows
        expected = cache_rows(rated, default_pricer())
        assert as_map("cache_savings", [list(row) for row in found]) == expected
        assert_cells_equal_ledger(client, since, until)
    finally:
        client.close()
