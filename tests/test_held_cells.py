"""The insight cells' open hour held back from the timer (session 12, ``sinks.open_windows``).

A timer flush refreshes the open hour's rollups but not its insight cells, which wait for the
hour's close or a drain; while they lag, the hour is marked (``rollup_pending`` or
``rollup_pending_cells``, migration 1007) and every read of the cells takes it from the ledger,
so the insights stay exact. A held mark survives its writer's death; an hour mark left by a
release before this one brings that hour's cells back too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks import open_windows
from spendstream.sinks.client import connect
from spendstream.sinks.insight_cells import CELLS_TABLE, cells_source
from spendstream.sinks.ledger import Deferral, LedgerEntry, LedgerWriter
from spendstream.sinks.windows import window_parameters
from spendstream.worker.schema import MIGRATIONS
from tests.test_insight_cells import figures
from tests.test_open_windows import START, assert_equal_to_a_full_recompute, batches, snapshot

HOUR_22 = START + timedelta(hours=22)
HELD = (open_windows.CELLS, HOUR_22)
# batches(600, 50): events 20 s apart from 20:00; the first nine batches end at 22:29:40, the
# last one lies in 23:03:20-23:19:40.
STREAM = list(batches(600, 50))
TO_22_30, IN_23 = STREAM[:9], STREAM[11]


def last(batch: list[LedgerEntry]) -> datetime:
    return max(entry.event.event_time for entry in batch)


def timer_writer(client: Client, now: datetime | list[datetime]) -> LedgerWriter:
    """A writer at ``now`` (or at ``now[0]``, a clock the test moves) whose timer is due at
    every batch."""
    clock = now if isinstance(now, list) else [now]
    deferral = Deferral(clock=lambda: clock[0], minutes=True, min_interval_s=0, cost_factor=0)
    return LedgerWriter(client, 1, deferral=deferral)


def write(writer: LedgerWriter, stream: list[list[LedgerEntry]]) -> None:
    for batch in stream:
        writer.insert(batch)
        writer.refresh_rollups([entry.event.event_time for entry in batch])


def cell_events(client: Client, hour: datetime) -> int:
    query = f"SELECT sum(events) FROM {CELLS_TABLE} FINAL WHERE window_start = {{h:DateTime}}"
    return int(client.command(query, parameters={"h": hour}) or 0)


def hourly(client: Client, since: datetime, until: datetime) -> tuple[list[Any], list[Any]]:
    """Events and cost per hour of [since, until): (read through the cells, from the ledger)."""
    source = cells_source({"events", "cost_total"})
    cells = client.query(
        f"SELECT window_start, sum(m_events), sum(m_cost_total) FROM ({source}) "
        "GROUP BY window_start ORDER BY window_start",
        parameters=window_parameters(since, until),
    ).result_rows
    ledger = client.query(
        "SELECT toDateTime(toStartOfHour(event_time), 'UTC') AS h, count(), sum(cost_total) "
        "FROM ledger FINAL WHERE event_time >= {since:DateTime64(3)} "
        "AND event_time < {until:DateTime64(3)} GROUP BY h ORDER BY h",
        parameters={"since": since, "until": until},
    ).result_rows
    return cells, ledger


def assert_reads_exact(client: Client, until: datetime) -> None:
    cells, ledger = hourly(client, START + timedelta(hours=20), until)
    assert len(ledger) >= 3 and cells == ledger


def test_a_timer_flush_holds_the_open_hours_cells_and_reads_of_it_stay_exact(
    ledger_client: Client,
) -> None:
    now = [last(TO_22_30[-1])]
    writer = timer_writer(ledger_client, now)
    write(writer, TO_22_30)
    # The timer refreshed the open hour's rollups, not its cells: they are held, and marked.
    hour_rows = ledger_client.command(
        "SELECT sum(events) FROM rollup_hour FINAL WHERE window_start = {h:DateTime}",
        parameters={"h": HOUR_22},
    )
    assert int(hour_rows) == 90
    assert cell_events(ledger_client, HOUR_22) == 0
    assert cell_events(ledger_client, HOUR_22 - timedelta(hours=1)) == 180  # closed: at once
    assert ("hour", HOUR_22) not in open_windows.marked(ledger_client)
    assert HELD in open_windows.marked(ledger_client, open_windows.MARK_TABLES)
    # A read whose period holds the whole open hour (until beyond now) takes it from the ledger.
    assert_reads_exact(ledger_client, START + timedelta(days=1))
    since = START + timedelta(hours=20)
    for until in (HOUR_22 + timedelta(hours=1), START + timedelta(days=1)):
        assert figures(ledger_client, since, until, False) == figures(
            ledger_client, since, until, True
        )
    # The hour closes: the next batch flushes its cells (the rest of it came late: at once).
    now[0] = last(IN_23)
    write(writer, [STREAM[9], STREAM[10], IN_23])
    assert cell_events(ledger_client, HOUR_22) == 180
    assert HELD not in open_windows.marked(ledger_client, open_windows.MARK_TABLES)
    assert_reads_exact(ledger_client, START + timedelta(days=1))
    writer.settle()
    assert_equal_to_a_full_recompute(ledger_client)


def test_a_held_hour_of_a_dead_writer_is_refreshed_after_its_close_by_a_timer_flush(
    ledger_client: Client,
) -> None:
    write(timer_writer(ledger_client, last(TO_22_30[-1])), TO_22_30)  # then it is SIGKILLed
    assert cell_events(ledger_client, HOUR_22) == 0
    assert_reads_exact(ledger_client, START + timedelta(days=1))
    # A live writer whose batches never touch hour 22 takes the dead writer's held cells once
    # the hour has closed, at its timer, before any drain.
    write(timer_writer(ledger_client, last(IN_23)), [IN_23])
    assert cell_events(ledger_client, HOUR_22) == 90
    assert HELD not in open_windows.marked(ledger_client, open_windows.MARK_TABLES)


def test_a_held_hour_of_a_dead_writer_is_refreshed_by_the_next_drain(
    ledger_client: Client,
) -> None:
    write(timer_writer(ledger_client, last(TO_22_30[-1])), TO_22_30)  # then it is SIGKILLed
    survivor = LedgerWriter(ledger_client, 1, deferral=Deferral(clock=lambda: last(TO_22_30[-1])))
    survivor.settle()
    assert cell_events(ledger_client, HOUR_22) == 90
    assert not open_windows.marked(ledger_client, open_windows.MARK_TABLES)
    assert_equal_to_a_full_recompute(ledger_client)


def test_an_hour_mark_left_by_a_release_before_brings_its_cells_back(
    ledger_client: Client,
) -> None:
    # A writer killed after it marked its batch, before any flush: as a release before 1007
    # leaves it (it marked a batch's minutes, hour and day, never cells), so does this one.
    entries = [entry for batch in TO_22_30 for entry in batch]
    LedgerWriter(ledger_client, 1).write([e for e in entries if e.event.event_time < HOUR_22])
    deferral = Deferral(clock=lambda: last(TO_22_30[-1]), minutes=True, min_interval_s=600)
    write(
        LedgerWriter(ledger_client, 1, deferral=deferral),
        [[e for e in entries if e.event.event_time >= HOUR_22]],
    )
    assert {unit for unit, _ in open_windows.marked(ledger_client, open_windows.MARK_TABLES)} == {
        "minute",
        "hour",
        "day",
    }
    assert cell_events(ledger_client, HOUR_22) == 0
    assert_reads_exact(ledger_client, START + timedelta(days=1))  # the hour mark: the ledger
    write(timer_writer(ledger_client, last(IN_23)), [IN_23])  # a timer flush after its close
    assert cell_events(ledger_client, HOUR_22) == 90
    LedgerWriter(ledger_client, 1, deferral=Deferral()).settle()
    assert_equal_to_a_full_recompute(ledger_client)


@pytest.mark.storage
def test_migration_1007_keeps_a_previous_ledger_and_every_rollup(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'previous'}", "spendstream")
    try:
        ledger_schema.migrate(client, [m for m in MIGRATIONS if m.version != 1007])
        write(LedgerWriter(client, 1), STREAM[:4])
        totals = "SELECT count(), sum(cost_total), sum(input_tokens) FROM ledger FINAL"
        before = snapshot(client), client.query(totals).result_rows
        assert ledger_schema.migrate(client, MIGRATIONS) == [1007]
        assert (snapshot(client), client.query(totals).result_rows) == before
        assert not open_windows.marked(client, open_windows.MARK_TABLES)
    finally:
        client.close()
