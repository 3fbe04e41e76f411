"""Explain's drivers minutes and the runs' minutes from one read of the ledger (migration 1008,
``sinks.minute_fanout``).

The statement that groups the touched minutes both ways must leave every row the two statements
before it left, row for row (agent runs, plain calls, replays and a re-rating in the ledger); a
ledger and rollups written by the release before keep every row and total through the migration,
and the new writer then goes on from them with every rollup equal to the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.pricing import default_pricer
from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks.client import connect
from spendstream.sinks.cluster import cluster_statements
from spendstream.sinks.ledger import (
    AGENT_MINUTE,
    DRIVERS_MINUTE,
    LedgerEntry,
    LedgerWriter,
    window_starts,
)
from spendstream.sinks.minute_fanout import MIGRATIONS as FANOUT_MIGRATIONS
from spendstream.sinks.minute_fanout import MINUTE_FANOUT
from spendstream.worker.schema import MIGRATIONS
from tests.support.agent_data import agent_runs
from tests.test_open_windows import START, _rows_sql, batches, snapshot

MINUTE_TABLES = ("rollup_minute_drivers", "agent_minute")
TOTALS = (
    "SELECT count(), sum(cost_total), sum(input_tokens), groupBitXor(cityHash64(event_id)) "
    "FROM ledger FINAL"
)


class RecordingWriter(LedgerWriter):
    """A writer that records the SQL of every refresh statement it runs."""

    ran: list[str]

    def _run(self, sql: str, unit: str, starts: list[Any]) -> None:
        self.ran.append(sql)
        super()._run(sql, unit, starts)


def recording(client: Client, price_version: int = 1, **options: Any) -> RecordingWriter:
    writer = RecordingWriter(client, price_version, **options)
    writer.ran = []
    return writer


def mixed_batches() -> Iterator[list[LedgerEntry]]:
    """Agent runs (steps, tool calls, sessions, customers) and the plain calls of the other
    tests, in time order, 60 at a time: many minutes hold both kinds."""
    pricer = default_pricer()
    plain = [entry.event for batch in batches(300, 300) for entry in batch]
    runs = list(agent_runs(40, start=START + timedelta(hours=20)))
    events = sorted([*plain, *runs], key=lambda event: (event.event_time, event.event_id))
    for start in range(0, len(events), 60):
        yield [LedgerEntry(event, pricer.rate(event)) for event in events[start : start + 60]]


def minute_rows(client: Client) -> dict[str, list[Any]]:
    return {table: client.query(_rows_sql(client, table)).result_rows for table in MINUTE_TABLES}


def recomputed_by_the_two_statements(client: Client) -> dict[str, list[Any]]:
    """Every minute of the ledger recomputed by the release before's two statements."""
    times = client.query("SELECT DISTINCT toStartOfMinute(event_time) FROM ledger").result_rows
    minutes = window_starts([row[0] for row in times], "minute")
    for table in MINUTE_TABLES:
        client.command(f"TRUNCATE TABLE {table}")
    for _unit, sql in (DRIVERS_MINUTE, AGENT_MINUTE):
        client.command(
            sql,
            parameters={
                "starts": minutes,
                "lo": minutes[0],
                "hi": minutes[-1] + timedelta(minutes=1),
            },
        )
    return minute_rows(client)


def test_one_read_leaves_the_rows_the_two_statements_left(ledger_client: Client) -> None:
    writer = recording(ledger_client)
    stream = list(mixed_batches())
    for batch in stream:
        writer.write(batch)
    for batch in stream[:3]:  # a replay: stored once
        writer.write(batch)
    recording(ledger_client, price_version=2).write(stream[4])  # a re-rating: the newer row
    assert MINUTE_FANOUT in writer.ran
    assert DRIVERS_MINUTE[1] not in writer.ran and AGENT_MINUTE[1] not in writer.ran
    kept = minute_rows(ledger_client)
    assert all(kept.values())
    assert any(row[6] for row in kept["agent_minute"])  # runs' rows (run_id), not only plain ones
    assert recomputed_by_the_two_statements(ledger_client) == kept


def test_a_writer_without_fanout_runs_the_two_statements(ledger_client: Client) -> None:
    writer = recording(ledger_client, fanout=False)
    writer.write(next(mixed_batches()))
    assert MINUTE_FANOUT not in writer.ran
    assert DRIVERS_MINUTE[1] in writer.ran and AGENT_MINUTE[1] in writer.ran


@pytest.mark.storage
def test_migration_1008_keeps_a_previous_ledger_and_every_total(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'previous'}", "spendstream")
    ledger_schema.migrate(client, [step for step in MIGRATIONS if step.version != 1008])
    previous = LedgerWriter(client, 1, fanout=False)  # the release before's statements
    stream = list(mixed_batches())
    for batch in stream[: len(stream) // 2]:
        previous.write(batch)
    before = snapshot(client), client.query(TOTALS).result_rows
    assert ledger_schema.migrate(client, MIGRATIONS) == [1008]
    assert (snapshot(client), client.query(TOTALS).result_rows) == before
    writer = LedgerWriter(client, 1)
    for batch in stream:  # the first half again (a replay), then the rest
        writer.write(batch)
    after = snapshot(client)
    assert minute_rows(client) == {table: after[table] for table in MINUTE_TABLES}
    assert recomputed_by_the_two_statements(client) == {t: after[t] for t in MINUTE_TABLES}
    # The ledger's total equals each minute table's (each event is in exactly one row of each).
    ledger_cost = client.command("SELECT toString(sum(cost_total)) FROM ledger FINAL")
    for table in MINUTE_TABLES:
        assert client.command(f"SELECT toString(sum(cost_total)) FROM {table} FINAL") == (
            ledger_cost
        )
    client.close()


def test_the_null_table_and_its_views_are_created_on_every_node_of_a_cluster() -> None:
    *_agent_minute, create, first, second = FANOUT_MIGRATIONS[0].statements
    assert cluster_statements(create, "prod") == [
        create.replace("minute_fanout (", "minute_fanout ON CLUSTER `prod` (", 1)
    ]
    for view in (first, second):
        (statement,) = cluster_statements(view, "prod")
        name = view.split()[6]
        assert statement.startswith(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name} ON CLUSTER `prod` TO "
        )
