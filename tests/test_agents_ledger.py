"""The agent fields in the ledger (migrations 1100 and 1101, tested on a ledger written by the
previous release), written by the worker's writer and kept by a re-rating, on real chDB."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.events import AGENT_FIELDS, UsageEvent, parse_event
from spendstream.pricing import default_pricer
from spendstream.sinks.client import connect
from spendstream.sinks.entry import LEDGER_COLUMNS, LedgerEntry
from spendstream.sinks.ledger import LedgerWriter
from spendstream.sinks.migrations import AGENT_COLUMNS
from spendstream.sinks.migrations import migrate as apply
from spendstream.sinks.rerating import reprice
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support.agent_data import START, agent_runs
from tests.support.ledger_data import generate

pytestmark = pytest.mark.integration


def totals(client: Client) -> tuple[Any, ...]:
    return tuple(
        client.query(
            "SELECT count(), sum(cost_total), sum(input_tokens), sum(cost_units), "
            "uniqExact(event_id) FROM ledger FINAL"
        ).result_rows[0]
    )


def test_v1_events_stay_valid_and_keep_their_ids() -> None:
    payload = (
        b'{"schema_version":1,"event_time":"2026-11-28T10:00:00Z","provider":"openai",'
        b'"model":"gpt-4o","input_tokens":10}'
    )
    event = parse_event(payload)
    assert all(getattr(event, name) is None for name in AGENT_FIELDS)
    # The derived id of an event without agent fields is what the previous release derived.
    assert event.event_id == parse_event(payload.replace(b"10}", b'10,"tags":{}}')).event_id
    assert b"run_id" not in event.to_json_bytes()


def test_migration_1100_on_a_ledger_written_by_the_previous_release(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'clickhouse'}", "spendstream")
    apply(client, [m for m in MIGRATIONS if m.version not in (1100, 1101, 1102)])
    new = {name for name, _kind in AGENT_COLUMNS}
    old_columns = [name for name in LEDGER_COLUMNS if name not in new]
    pricer = default_pricer()
    events = generate(1_500)
    rows = [LedgerEntry(e, pricer.rate(e)).row(1, e.event_time) for e in events]
    client.insert("ledger", [row[: len(old_columns)] for row in rows], column_names=old_columns)
    before = totals(client)
    assert migrate(client) == [1100, 1101, 1102]
    assert totals(client) == before
    # The run and customer rollups were filled from the old rows: their totals are the ledger's.
    for table in ("agent_minute", "customer_hour", "customer_day"):
        [[cost, count]] = client.query(
            f"SELECT sum(cost_total), sum(events) FROM {table} FINAL"
        ).result_rows
        assert (cost, count) == (before[1], before[0])
    assert client.query(
        "SELECT DISTINCT run_id, agent, customer, step, session_id, tool FROM ledger"
    ).result_rows == [("", "", "", 0, "", "")]
    # New events carry their runs next to the old rows; totals add up exactly.
    runs = list(agent_runs(200))
    LedgerWriter(client, 1).write([LedgerEntry(e, pricer.rate(e)) for e in runs])
    after = totals(client)
    assert after[0] == before[0] + len(runs)
    assert after[1] == before[1] + sum(pricer.rate(e).cost_total for e in runs)
    assert migrate(client) == []
    client.close()


def test_fields_round_trip_and_survive_a_re_rating(ledger_client: Client) -> None:
    pricer = default_pricer()
    runs = list(agent_runs(60))
    LedgerWriter(ledger_client, 1).write([LedgerEntry(e, pricer.rate(e)) for e in runs])
    stored = {
        row[0]: row[1:]
        for row in ledger_client.query(
            f"SELECT event_id, {', '.join(AGENT_FIELDS)} FROM ledger FINAL"
        ).result_rows
    }
    for event in runs:
        expected = tuple(getattr(event, n) or (0 if n == "step" else "") for n in AGENT_FIELDS)
        assert stored[event.event_id] == expected
    # Without gpt-4o-mini in the catalog its rows are re-rated (unpriced): rewritten rows.
    cheaper = pricer.catalog.model_copy(
        update={"models": [m for m in pricer.catalog.models if m.model != "gpt-4o-mini"]}
    )
    done = reprice(
        ledger_client,
        type(pricer)(cheaper),
        START - timedelta(days=1),
        START + timedelta(days=10),
    )
    assert done.changed > 0
    after = {
        row[0]: row[1:]
        for row in ledger_client.query(
            f"SELECT event_id, {', '.join(AGENT_FIELDS)} FROM ledger FINAL"
        ).result_rows
    }
    assert after == stored


def test_a_tool_event_is_priced_as_units(ledger_client: Client) -> None:
    event = UsageEvent(
        provider="openai",
        model="gpt-4o",
        operation="other",
        tool="web_search",
        units={"web_search_calls": 3},
        run_id="r",
        step=2,
    )
    rating = default_pricer().rate(event)
    assert rating.priced and rating.cost_units > 0
