"""``agent_runs`` (migration 1102): one row per run, tested on a ledger written by the previous
release (totals identical), then kept exact by the writer's refresh when a run's steps arrive in
several batches, out of order, late (a minute before the run's first) or twice (real chDB)."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.events import UsageEvent
from spendstream.pricing import default_pricer
from spendstream.sinks.client import connect
from spendstream.sinks.entry import LedgerEntry
from spendstream.sinks.ledger import REFRESH_STEPS, LedgerWriter
from spendstream.sinks.migrations import migrate as apply
from spendstream.sinks.run_rollup import RUNS_REFRESH_SQL
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support.agent_data import agent_runs

pytestmark = pytest.mark.integration
PREVIOUS_STEPS = tuple(step for step in REFRESH_STEPS if step[1] != RUNS_REFRESH_SQL)
PER_RUN = (
    "SELECT agent, run_id, team, sum(events), sumIf(events, tool != ''), sum(cost_total), "
    "sumIf(cost_total, tool != ''), min(window_start), max(window_start) "
    "FROM agent_minute FINAL WHERE run_id != '' GROUP BY agent, run_id, team"
)
RUNS = (
    "SELECT agent, run_id, team, steps, tool_steps, cost, tool_cost, first_minute, last_minute "
    "FROM agent_runs FINAL"
)


def rows(client: Client, sql: str) -> set[tuple[Any, ...]]:
    return {tuple(row) for row in client.query(sql).result_rows}


def entries(events: list[UsageEvent]) -> list[LedgerEntry]:
    pricer = default_pricer()
    return [LedgerEntry(e, pricer.rate(e)) for e in events]


def test_migration_1102_on_a_ledger_written_by_the_previous_release(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'clickhouse'}", "spendstream")
    apply(client, [m for m in MIGRATIONS if m.version != 1102])
    events = list(agent_runs(150))
    LedgerWriter(client, 1, PREVIOUS_STEPS).write(entries(events))  # the previous writer
    ledger = "SELECT count(), sum(cost_total), sum(input_tokens) FROM ledger FINAL"
    before = rows(client, ledger)
    minutes_before = rows(client, PER_RUN)
    assert migrate(client) == [1102]
    assert rows(client, ledger) == before
    assert rows(client, RUNS) == minutes_before and len(minutes_before) == 150
    [[in_runs]] = client.query("SELECT sum(cost) FROM agent_runs FINAL").result_rows
    [[runs_in_ledger]] = client.query(
        "SELECT sum(cost_total) FROM ledger FINAL WHERE run_id != ''"
    ).result_rows
    assert in_runs == runs_in_ledger
    assert migrate(client) == []
    client.close()


def test_a_run_split_over_batches_late_and_redelivered_stays_exact(ledger_client: Client) -> None:
    events = list(agent_runs(60, seed=11))
    writer = LedgerWriter(ledger_client, 1)
    # Every run's steps in three batches, last batch first (out of order).
    thirds = [events[i::3] for i in range(3)]
    for batch in reversed(thirds):
        writer.write(entries(batch))
    writer.write(entries(thirds[1]))  # a redelivery
    first = events[0]
    assert first.event_time is not None and first.run_id is not None
    late = UsageEvent(
        provider="openai",
        model="gpt-4o",
        input_tokens=5_000,
        output_tokens=100,
        event_id="late-step",
        event_time=first.event_time - timedelta(minutes=30),
        run_id=first.run_id,
        agent=first.agent,
        customer=first.customer,
        session_id=first.session_id,
        step=1,
        tags=first.tags,
    )
    writer.write(entries([late]))  # a step half an hour before the run's first
    per_run = rows(ledger_client, PER_RUN)
    assert rows(ledger_client, RUNS) == per_run
    [late_run] = [r for r in per_run if r[1] == first.run_id]
    started = late_run[7] if late_run[7].tzinfo else late_run[7].replace(tzinfo=UTC)
    assert started == late.event_time.replace(second=0, microsecond=0)  # the span grew back
    [[in_runs, steps]] = ledger_client.query(
        "SELECT sum(cost), sum(steps) FROM agent_runs FINAL"
    ).result_rows
    [[ledger_cost, ledger_events]] = ledger_client.query(
        "SELECT sum(cost_total), count() FROM ledger FINAL WHERE run_id != ''"
    ).result_rows
    assert (in_runs, steps) == (ledger_cost, ledger_events)
