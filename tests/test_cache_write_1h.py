"""Anthropic's 1-hour cache writes priced at the 1-hour rate (hostile report 13, item 3), on a
real chDB ledger: a ledger written by the previous release (no migration 1012, every write at
the 5-minute rate) is migrated with its totals unchanged and nothing re-rated; events written
after carry their 1-hour writes, cost them at the 1-hour rate, re-rate to the same cost from the
ledger alone, and the FOCUS export shows each write rate on its own row, summing to the ledger.

The end-to-end path (SDK -> broker -> worker's fast decoder -> ledger) is in
``test_a_recorded_1h_write_reaches_the_ledger_at_the_1h_rate``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendstream.events import UsageEvent
from spendstream.pricing import default_pricer
from spendstream.producers import Recorder
from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from spendstream.sinks.entry import LEDGER_COLUMNS, LedgerEntry, ledger_columns
from spendstream.sinks.focus_export import export_focus
from spendstream.sinks.ledger import LedgerWriter
from spendstream.sinks.migrations import CACHE_HOUR_COLUMNS
from spendstream.sinks.price_versions import next_price_version
from spendstream.sinks.rerating import reprice
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 3, 9, tzinfo=UTC)
MILLION = Decimal(1_000_000)
FIVE_MINUTE, ONE_HOUR = Decimal("3.75") / MILLION, Decimal("6.00") / MILLION  # sonnet 4.5
TOTALS = (
    "SELECT count(), sum(cost_total), sum(cost_cache_write), sum(cache_write_tokens), "
    "sum(cost_input) FROM ledger FINAL"
)
HOUR_SUMS = "SELECT sum(cache_write_1h_tokens), sum(cost_cache_write_1h) FROM ledger FINAL"


def sonnet(number: int, hour: int) -> UsageEvent:
    """A call writing 400 + number tokens to the cache, ``hour`` of them for 1 hour."""
    writes = 400 + number
    return UsageEvent(
        event_id=f"cw-{number}-{hour}",
        event_time=START + timedelta(minutes=number),
        provider="anthropic",
        model="claude-sonnet-4-5",
        input_tokens=1_000 + writes,
        cache_write_tokens=writes,
        cache_write_1h_tokens=hour,
        output_tokens=50,
        tags={"team": "search"},
    )


def write_as_the_previous_release(client: Any, events: list[UsageEvent]) -> None:
    """The rows the release before migration 1012 wrote: its columns (these less the two it
    adds), every write rated at the 5-minute rate (its events had no 1-hour field)."""
    pricer = default_pricer()
    version = next_price_version(client, "stream", pricer.catalog_digest)
    entries = [LedgerEntry(event, pricer.rate(event)) for event in events]
    added = {name for name, _kind in CACHE_HOUR_COLUMNS}
    kept = [index for index, name in enumerate(LEDGER_COLUMNS) if name not in added]
    columns = ledger_columns(entries, version, datetime.now(UTC))
    names = [LEDGER_COLUMNS[index] for index in kept]
    client.insert("ledger", [columns[i] for i in kept], names, column_oriented=True)
    LedgerWriter(client, version).refresh_rollups([event.event_time for event in events])


def test_an_old_ledger_migrates_unchanged_and_1h_writes_after_cost_their_rate(
    tmp_path: Path,
) -> None:
    client = connect(f"chdb://{tmp_path / 'clickhouse'}", "spendstream")
    ledger_schema.migrate(client, [m for m in MIGRATIONS if m.version != 1012])
    write_as_the_previous_release(client, [sonnet(n, 0) for n in range(40)])
    totals = client.query(TOTALS).result_rows
    assert migrate(client) == [1012]
    assert client.query(TOTALS).result_rows == totals  # the ledger is untouched
    assert client.query(HOUR_SUMS).result_rows == [(0, 0)]
    period = (START, START + timedelta(days=1))
    assert reprice(client, default_pricer(), *period, dry_run=True).changed == 0  # no re-rating

    later = [sonnet(n, hour) for n in range(40, 80) for hour in (0, 150)]
    pricer = default_pricer()
    version = next_price_version(client, "stream", pricer.catalog_digest)
    LedgerWriter(client, version).write([LedgerEntry(e, pricer.rate(e)) for e in later])
    hours = sum(e.cache_write_1h_tokens for e in later)
    fives = sum(e.cache_write_tokens for e in later) - hours
    hour_cost = hours * ONE_HOUR
    assert client.query(HOUR_SUMS).result_rows == [(hours, hour_cost)]
    written = client.query(
        "SELECT sum(cost_cache_write) FROM ledger FINAL WHERE event_id IN {ids:Array(String)}",
        {"ids": [e.event_id for e in later]},
    ).result_rows[0][0]
    assert written == fives * FIVE_MINUTE + hour_cost
    # The hostile report's call: 200 tokens written for 1 hour cost 200 x $6/M, not $3.75/M.
    one = sonnet(0, 0).model_copy(update={"cache_write_tokens": 200, "cache_write_1h_tokens": 200})
    assert pricer.rate(one).cost_cache_write == Decimal("0.0012")
    # Re-rated from the ledger alone, every row costs what it was stored at.
    assert reprice(client, pricer, *period, dry_run=True).changed == 0

    rows = export_focus(ClientReader(client), "2026-11", tmp_path / "focus.csv")
    writes = {row["x_CostDriver"]: row for row in rows if "cache_write" in row["x_CostDriver"]}
    assert writes["cache_write_1h"]["ListUnitPrice"] == Decimal("6")  # per million tokens
    assert writes["cache_write_1h"]["ConsumedQuantity"] == hours
    assert writes["cache_write"]["ListUnitPrice"] == Decimal("3.75")
    total = client.query("SELECT sum(cost_total) FROM ledger FINAL").result_rows[0][0]
    assert sum(Decimal(str(row["BilledCost"])) for row in rows) == total
    client.close()


def test_a_recorded_1h_write_reaches_the_ledger_at_the_1h_rate(
    tmp_path: Path, broker: Any, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    recorder = Recorder(
        bootstrap_servers=broker.bootstrap_servers, spool_dir=str(tmp_path / "spool")
    )
    usage = {
        "input_tokens": 100,
        "cache_creation_input_tokens": 200,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 200},
        "output_tokens": 50,
    }
    plain = {**usage, "cache_creation": {"ephemeral_5m_input_tokens": 200}}
    # With an id the event travels without a time (the worker dates it: parse_event); without
    # one it has both and takes the worker's fast decoder. Both ways, each rate.
    for index, shape in enumerate((usage, plain)):
        recorder.record(provider="anthropic", model="claude-sonnet-4-5", usage=shape)
        recorder.record(
            provider="anthropic", model="claude-sonnet-4-5", usage=shape, event_id=f"cw-{index}"
        )
    recorder.flush(timeout=10)
    recorder.close()
    worker.wait_for_ledger_count(4)
    stored = worker.query(
        "SELECT cache_write_tokens, cache_write_1h_tokens, cost_cache_write, "
        "cost_cache_write_1h FROM ledger FINAL ORDER BY cache_write_1h_tokens"
    ).rows
    found = [(int(w), int(h), Decimal(str(c)), Decimal(str(ch))) for w, h, c, ch in stored]
    five, hour = (200, 0, Decimal("0.00075"), 0), (200, 200, Decimal("0.0012"), Decimal("0.0012"))
    assert found == [five, five, hour, hour]
