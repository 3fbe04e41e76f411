"""The open hour and day refreshed on a drain or a timer (sinks.open_windows, issue 29).

The writer with a deferral must end, after ``settle``, with exactly the rollups a refresh of every
window from the ledger gives; a mark no flush has covered must survive a writer's death and a
flush that began before it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.pricing import default_pricer
from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks import open_windows
from spendstream.sinks.client import connect
from spendstream.sinks.ledger import (
    REFRESH_STEPS,
    Deferral,
    LedgerEntry,
    LedgerWriter,
    rebuild_rollups,
)
from spendstream.sinks.prompt_sightings import REPEATS_TABLE, SIGHTINGS_TABLE
from spendstream.sinks.team_repeats import TEAM_REPEATS_TABLE
from spendstream.stream.pipeline import Pipeline
from spendstream.stream.processor import BatchProcessor, RawMessage
from spendstream.worker.schema import MIGRATIONS
from tests.support import ledger_data

TABLES = sorted({sql.split()[2] for _unit, sql in REFRESH_STEPS} | {"rollup_minute"})
START = ledger_data.START
EMPTY = ("agent_runs", SIGHTINGS_TABLE, REPEATS_TABLE, TEAM_REPEATS_TABLE)


def snapshot(client: Client) -> dict[str, list[Any]]:
    """Every rollup row (latest version of each key), without its computation time; aggregate
    states (the insight cells' quantiles and app sets) as their finalised, sorted values."""
    return {table: client.query(_rows_sql(client, table)).result_rows for table in TABLES}


def _rows_sql(client: Client, table: str) -> str:
    columns = client.query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
        "AND table = {t:String} AND name != 'computed_at' ORDER BY position",
        parameters={"t": table},
    ).result_rows
    shown = [
        f"arraySort(finalizeAggregation({name}))" if kind.startswith("AggregateFunction") else name
        for name, kind in columns
    ]
    return f"SELECT {', '.join(shown)} FROM {table} FINAL ORDER BY ALL"


def day_total(client: Client, table: str, day: datetime) -> int:
    return int(
        client.command(
            f"SELECT sum(events) FROM {table} FINAL WHERE window_start = {{day:DateTime}}",
            parameters={"day": day},
        )
        or 0
    )


def batches(count: int, size: int) -> Iterator[list[LedgerEntry]]:
    """``count`` events 20 s apart from 20:00 on ``START`` (across a midnight), in time order,
    ``size`` at a time, as a stream delivers them."""
    pricer = default_pricer()
    first = START + timedelta(hours=20)
    events = [
        event.model_copy(update={"event_time": first + timedelta(seconds=20 * index)})
        for index, event in enumerate(ledger_data.generate(count, seed=4))
    ]
    for start in range(0, count, size):
        yield [LedgerEntry(event, pricer.rate(event)) for event in events[start : start + size]]


def assert_equal_to_a_full_recompute(client: Client) -> None:
    settled = snapshot(client)
    # every rollup has rows but the runs table and the prompt sightings (these events belong to
    # no agent run and carry no prompt hash)
    assert all(rows for table, rows in settled.items() if table not in EMPTY)
    rebuild_rollups(client, START, START + timedelta(days=2))
    assert snapshot(client) == settled


def test_deferred_rollups_settle_to_a_full_recompute(ledger_client: Client) -> None:
    now = [START]
    # Only a closed window or a drain flushes here (the timer would need 10 minutes).
    deferral = Deferral(clock=lambda: now[0], min_interval_s=600)
    writer = LedgerWriter(ledger_client, 1, deferral=deferral)
    stale_seen = False
    for batch in batches(1_200, 30):  # 10 minutes a batch, 6 hours 40 minutes in all
        now[0] = max(entry.event.event_time for entry in batch)
        writer.insert(batch)
        writer.refresh_rollups([entry.event.event_time for entry in batch])
        assert all(deferral.is_open(window) for window in deferral.pending)
        today = now[0].replace(hour=0, minute=0, second=0, microsecond=0)
        ledger_today = int(
            ledger_client.command(
                "SELECT count() FROM ledger FINAL WHERE toDate(event_time) = {d:Date}",
                parameters={"d": today.date()},
            )
        )
        # The minutes are always current; the open day waits for a flush.
        minutes = ledger_client.command("SELECT sum(events) FROM rollup_minute FINAL")
        assert int(minutes) == int(ledger_client.command("SELECT count() FROM ledger FINAL"))
        stale_seen |= day_total(ledger_client, "rollup_day", today) < ledger_today
    assert stale_seen  # the open day really was deferred
    assert open_windows.marked(ledger_client)  # durable marks wait for the drain
    writer.settle()
    assert not open_windows.marked(ledger_client)
    assert_equal_to_a_full_recompute(ledger_client)


def test_marks_of_a_dead_writer_are_flushed_by_the_next_drain(ledger_client: Client) -> None:
    entries = next(batches(60, 60))
    now = max(entry.event.event_time for entry in entries)
    dead = LedgerWriter(ledger_client, 1, deferral=Deferral(clock=lambda: now, min_interval_s=600))
    dead.insert(entries)
    dead.refresh_rollups([entry.event.event_time for entry in entries])
    assert dead.deferral is not None and dead.deferral.pending  # then it is SIGKILLed
    survivor = LedgerWriter(ledger_client, 1, deferral=Deferral(clock=lambda: now))
    survivor.settle()
    assert_equal_to_a_full_recompute(ledger_client)


def test_a_mark_made_after_a_flush_began_outlives_it(ledger_client: Client) -> None:
    hour = ("hour", datetime(2026, 10, 1, 5, tzinfo=UTC))
    day = ("day", datetime(2026, 10, 1, tzinfo=UTC))
    open_windows.mark(ledger_client, [hour])
    as_of = open_windows.server_now(ledger_client)  # a flush begins
    open_windows.mark(ledger_client, [day])  # a batch lands while it runs
    open_windows.done(ledger_client, [hour, day], as_of)
    assert open_windows.marked(ledger_client) == {day}


def test_closed_windows_are_refreshed_at_once_and_a_due_timer_flushes(
    ledger_client: Client,
) -> None:
    entries = next(batches(60, 60))
    times = [entry.event.event_time for entry in entries]
    late = max(times) + timedelta(days=1)  # every window of the batch has closed
    writer = LedgerWriter(ledger_client, 1, deferral=Deferral(clock=lambda: late))
    writer.insert(entries)
    writer.refresh_rollups(times)
    assert writer.deferral is not None and not writer.deferral.pending
    assert not open_windows.marked(ledger_client)
    assert_equal_to_a_full_recompute(ledger_client)

    hour, day = ("hour", START + timedelta(hours=20)), ("day", START)
    clock = [START + timedelta(hours=20, minutes=30)]
    timer = Deferral(clock=lambda: clock[0], min_interval_s=3600)
    timer.pending |= {hour, day}
    assert timer.due() == set()  # both open, the timer far off
    clock[0] += timedelta(hours=1)
    assert timer.due() == {hour}  # the hour closed: it alone, the day waits
    timer.flushed({hour}, started=time.monotonic())
    timer.min_interval_s = 0.0
    assert timer.due() == {day}  # the timer is due: everything marked
    timer.flushed({day}, started=time.monotonic())
    assert timer.due() == set()


def test_the_pipeline_settles_once_caught_up(ledger_client: Client) -> None:
    now = datetime.now(UTC)
    writer = LedgerWriter(ledger_client, 1, deferral=Deferral(min_interval_s=600))
    pipeline = Pipeline(BatchProcessor(default_pricer()), writer, _NoLetters(), stop=_no_stop)
    lines = usage_lines(now, 20)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        asyncio.run(pipeline.handle(lines[:10], caught_up=False))
        assert day_total(ledger_client, "rollup_day", today) == 0  # a backlog: deferred
        asyncio.run(pipeline.handle(lines[10:], caught_up=True))
        assert day_total(ledger_client, "rollup_day", today) == 20
        assert not open_windows.marked(ledger_client)
    finally:
        pipeline.close()


def usage_lines(now: datetime, count: int) -> list[RawMessage]:
    """``count`` one-event messages at ``now`` (ids ``e0``…)."""
    return [
        RawMessage(
            f'{{"event_id": "e{index}", "event_time": "{now.isoformat()}", "provider": "openai",'
            f' "model": "gpt-4o", "input_tokens": 10}}'.encode(),
            "usage",
            0,
            index,
        )
        for index in range(count)
    ]


def _no_stop(reason: str) -> NoReturn:
    raise AssertionError(f"the pipeline stopped: {reason}")


class _NoLetters:
    async def publish(self, letters: Any) -> None:
        raise AssertionError(f"nothing here is dead-lettered: {letters}")


@pytest.mark.storage
def test_migration_20_keeps_a_previous_ledger_and_its_rollups(tmp_path: Path) -> None:
    """A ledger and rollups written by the previous release (no ``rollup_pending``): the
    migration changes no total, and a deferring writer then settles onto the same rollups."""
    client = connect(f"chdb://{tmp_path / 'previous'}", "spendstream")
    previous = [migration for migration in MIGRATIONS if migration.version not in (20, 21)]
    ledger_schema.migrate(client, previous)
    old_writer = LedgerWriter(client, 1)
    for batch in batches(300, 100):
        old_writer.write(batch)
    before = snapshot(client), client.query(TOTALS).result_rows
    assert ledger_schema.migrate(client, MIGRATIONS) == [20, 21]
    assert (snapshot(client), client.query(TOTALS).result_rows) == before
    LedgerWriter(client, 1, deferral=Deferral()).settle()
    assert (snapshot(client), client.query(TOTALS).result_rows) == before
    client.close()


TOTALS = "SELECT count(), sum(cost_total), sum(input_tokens) FROM ledger FINAL"


@pytest.mark.storage
def test_migration_21_drops_week_old_done_marks_and_keeps_every_total(tmp_path: Path) -> None:
    """On the previous release's ledger (every migration but 21): no total changes; at the next
    merge the done marks older than a week go, pending marks and recent done marks stay."""
    client = connect(f"chdb://{tmp_path / 'previous'}", "spendstream")
    ledger_schema.migrate(client, [step for step in MIGRATIONS if step.version != 21])
    LedgerWriter(client, 1).write(next(batches(100, 100)))
    client.command(
        "INSERT INTO rollup_pending VALUES "
        "('hour', '2026-01-01 00:00:00', now64(6) - INTERVAL 8 DAY, true), "
        "('hour', '2026-01-01 01:00:00', now64(6) - INTERVAL 8 DAY, false), "
        "('hour', '2026-01-01 02:00:00', now64(6), true)"
    )
    before = snapshot(client), client.query(TOTALS).result_rows
    assert ledger_schema.migrate(client, MIGRATIONS) == [21]
    client.command("OPTIMIZE TABLE rollup_pending FINAL")
    kept = client.query("SELECT toHour(window_start), done FROM rollup_pending ORDER BY 1")
    assert kept.result_rows == [(1, False), (2, True)]
    assert (snapshot(client), client.query(TOTALS).result_rows) == before
    client.close()
