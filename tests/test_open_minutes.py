"""The open minutes deferred too (issue 29 part 2, ``Deferral(minutes=True)``: the worker's).

A batch in an open minute writes no minute rollup row: the minute is marked like the open hour
and day, and refreshed by the next flush (a drain, its closing, the timer). After a settle every
rollup equals a full recompute from the ledger; a mark survives the writer's death; the stream
settles when it has drained (``stream.drain``), or once idle after a full batch.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.pricing import default_pricer
from spendstream.sinks import open_windows
from spendstream.sinks.client import connect
from spendstream.sinks.ledger import Deferral, LedgerWriter
from spendstream.stream.drain import drained, steady
from spendstream.stream.pipeline import Pipeline
from spendstream.stream.processor import BatchProcessor
from tests.support.ledger_template import DATABASE, copy_template
from tests.test_open_windows import (
    START,
    _no_stop,
    _NoLetters,
    assert_equal_to_a_full_recompute,
    batches,
    usage_lines,
)

MINUTE_TABLES = ("rollup_minute", "rollup_minute_drivers", "agent_minute")
FIRST = START + timedelta(hours=20)  # the first event of tests.test_open_windows.batches


def minute_events(client: Client) -> dict[str, int]:
    return {
        table: int(client.command(f"SELECT sum(events) FROM {table} FINAL") or 0)
        for table in MINUTE_TABLES
    }


def test_a_batch_in_open_minutes_writes_no_minute_row_until_a_settle(ledger_client: Client) -> None:
    entries = next(batches(60, 60))  # 20 minutes of events, every one open at the clock
    writer = LedgerWriter(
        ledger_client, 1, deferral=Deferral(clock=lambda: FIRST, minutes=True, min_interval_s=600)
    )
    writer.insert(entries)
    writer.refresh_rollups([entry.event.event_time for entry in entries])
    assert minute_events(ledger_client) == dict.fromkeys(MINUTE_TABLES, 0)
    marked = open_windows.marked(ledger_client)
    assert {unit for unit, _start in marked} == {"minute", "hour", "day"}
    assert len([1 for unit, _start in marked if unit == "minute"]) == 20
    writer.settle()
    assert not open_windows.marked(ledger_client)
    assert minute_events(ledger_client) == dict.fromkeys(MINUTE_TABLES, 60)
    assert_equal_to_a_full_recompute(ledger_client)


def test_marked_minutes_of_a_dead_writer_are_flushed_by_the_next_drain(
    ledger_client: Client,
) -> None:
    entries = next(batches(60, 60))
    dead = LedgerWriter(
        ledger_client, 1, deferral=Deferral(clock=lambda: FIRST, minutes=True, min_interval_s=600)
    )
    dead.insert(entries)
    dead.refresh_rollups([entry.event.event_time for entry in entries])
    assert minute_events(ledger_client)["rollup_minute"] == 0  # then it is SIGKILLed
    survivor = LedgerWriter(ledger_client, 1, deferral=Deferral(clock=lambda: FIRST, minutes=True))
    survivor.settle()
    assert_equal_to_a_full_recompute(ledger_client)


def test_a_closed_minute_is_flushed_by_the_next_batch_with_its_hour_and_day_after_it(
    ledger_client: Client,
) -> None:
    first, second = batches(6, 3)  # 20 s apart: one minute, then the next
    clock = [FIRST]
    writer = LedgerWriter(
        ledger_client,
        1,
        deferral=Deferral(clock=lambda: clock[0], minutes=True, min_interval_s=600),
    )
    for batch in (first, second):
        clock[0] = max(entry.event.event_time for entry in batch)
        writer.insert(batch)
        writer.refresh_rollups([entry.event.event_time for entry in batch])
    # The first minute closed when the second batch came: refreshed, and its hour and day
    # after it (built from it: tests/test_open_windows_peers.py); the second minute is still
    # open and marked, and its flush will refresh the hour and day again.
    assert minute_events(ledger_client)["rollup_minute"] == 3
    assert open_windows.marked(ledger_client) == {("minute", FIRST + timedelta(minutes=1))}
    assert ledger_client.command("SELECT sum(events) FROM rollup_hour FINAL") == 3
    writer.settle()
    assert minute_events(ledger_client)["rollup_minute"] == 6
    assert_equal_to_a_full_recompute(ledger_client)


def test_a_late_minute_of_an_open_hour_waits_for_its_hour_to_close(ledger_client: Client) -> None:
    first, second, third = batches(9, 3)  # minutes 0, 1, 2 of 20:00
    clock = [FIRST + timedelta(minutes=5)]  # a worker catching up: minutes closed, hour open
    writer = LedgerWriter(
        ledger_client,
        1,
        deferral=Deferral(clock=lambda: clock[0], minutes=True, min_interval_s=600),
    )
    for batch in (first, second):
        writer.insert(batch)
        writer.refresh_rollups([entry.event.event_time for entry in batch])
    # Not re-read from the ledger for every batch: marked (durably), as open minutes are.
    assert minute_events(ledger_client) == dict.fromkeys(MINUTE_TABLES, 0)
    late = {("minute", FIRST), ("minute", FIRST + timedelta(minutes=1))}
    assert late <= open_windows.marked(ledger_client)
    # The hour has closed when the next batch comes: its late minutes are flushed with it.
    clock[0] = FIRST + timedelta(hours=1)
    writer.insert(third)
    writer.refresh_rollups([entry.event.event_time for entry in third])
    assert minute_events(ledger_client) == dict.fromkeys(MINUTE_TABLES, 9)
    assert ledger_client.command("SELECT sum(events) FROM rollup_hour FINAL") == 9
    assert not late & open_windows.marked(ledger_client)
    writer.settle()
    assert_equal_to_a_full_recompute(ledger_client)


def test_late_minutes_of_an_open_hour_are_flushed_by_the_timer_and_a_drain(
    ledger_client: Client,
) -> None:
    first, second = batches(6, 3)
    clock = FIRST + timedelta(minutes=5)
    deferral = Deferral(clock=lambda: clock, minutes=True, min_interval_s=600)
    writer = LedgerWriter(ledger_client, 1, deferral=deferral)
    writer.insert(first)
    writer.refresh_rollups([entry.event.event_time for entry in first])
    assert minute_events(ledger_client)["rollup_minute"] == 0
    deferral.min_interval_s = 0.0  # the timer is due at the next batch
    writer.insert(second)
    writer.refresh_rollups([entry.event.event_time for entry in second])
    assert minute_events(ledger_client) == dict.fromkeys(MINUTE_TABLES, 6)
    assert not open_windows.marked(ledger_client)
    # The open hour's insight cells alone wait for its close or a drain (session 12).
    held = open_windows.marked(ledger_client, open_windows.MARK_TABLES)
    assert held == {(open_windows.CELLS, FIRST)}
    writer.settle()
    assert_equal_to_a_full_recompute(ledger_client)


def test_the_stream_has_drained_only_after_a_batch_cut_by_time() -> None:
    assert drained(backlog=0, taken=120, batch_size=2_000)
    assert not drained(backlog=0, taken=2_000, batch_size=2_000)  # a steady stream: not yet
    assert not drained(backlog=5, taken=120, batch_size=2_000)


def test_an_idle_pipeline_settles_after_a_batch_that_did_not(ledger_client: Client) -> None:
    now = datetime.now(UTC)
    writer = LedgerWriter(ledger_client, 1, deferral=Deferral(minutes=True, min_interval_s=600))
    pipeline = Pipeline(BatchProcessor(default_pricer()), writer, _NoLetters(), stop=_no_stop)
    lines = usage_lines(now, 20)
    try:
        asyncio.run(pipeline.handle(lines, caught_up=False))
        assert minute_events(ledger_client)["rollup_minute"] == 0  # deferred
        asyncio.run(pipeline.settle_if_idle(idle_s=3600))  # not idle long enough yet
        assert minute_events(ledger_client)["rollup_minute"] == 0
        asyncio.run(pipeline.settle_if_idle(idle_s=0))
        assert minute_events(ledger_client) == dict.fromkeys(MINUTE_TABLES, 20)
        assert not open_windows.marked(ledger_client)
        assert not pipeline.unsettled
    finally:
        pipeline.close()


def test_a_new_pipeline_settles_what_a_previous_process_left_marked(
    ledger_client: Client,
) -> None:
    """A worker killed while deferring leaves marks in rollup_pending; its successor settles
    them once idle even when no batch ever comes."""
    entries = next(batches(60, 60))
    killed = LedgerWriter(
        ledger_client, 1, deferral=Deferral(clock=lambda: FIRST, minutes=True, min_interval_s=600)
    )
    killed.insert(entries)
    killed.refresh_rollups([entry.event.event_time for entry in entries])
    assert open_windows.marked(ledger_client)  # the process dies here: nothing flushed
    writer = LedgerWriter(
        ledger_client, 1, deferral=Deferral(clock=lambda: FIRST, minutes=True, min_interval_s=600)
    )
    pipeline = Pipeline(BatchProcessor(default_pricer()), writer, _NoLetters(), stop=_no_stop)
    try:
        asyncio.run(pipeline.settle_if_idle(idle_s=0))  # no batch handled in this process
        assert minute_events(ledger_client) == dict.fromkeys(MINUTE_TABLES, 60)
        assert_equal_to_a_full_recompute(ledger_client)
        assert not open_windows.marked(ledger_client)
        assert not pipeline.unsettled
    finally:
        pipeline.close()


KILLED_WRITER = """
import os, signal, sys
from datetime import timedelta
from spendstream.sinks.client import connect
from spendstream.sinks.ledger import Deferral, LedgerWriter
from tests.test_open_windows import batches, START

client = connect(f"chdb://{sys.argv[1]}", sys.argv[2])
entries = next(batches(60, 60))
clock = START + timedelta(hours=20)
writer = LedgerWriter(client, 1, deferral=Deferral(clock=lambda: clock, minutes=True))
writer.insert(entries)
writer.refresh_rollups([entry.event.event_time for entry in entries])
assert writer.deferral is not None and writer.deferral.pending
os.kill(os.getpid(), signal.SIGKILL)  # marked, never flushed
"""


@pytest.mark.storage
def test_a_writer_killed_between_mark_and_flush_loses_nothing(
    tmp_path: Path, migrated_template: Path
) -> None:
    data = copy_template(migrated_template, tmp_path / "clickhouse")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(data), DATABASE],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    client = connect(f"chdb://{data}", DATABASE)
    try:
        assert int(client.command("SELECT count() FROM ledger FINAL")) == 60
        assert minute_events(client)["rollup_minute"] == 0
        assert {unit for unit, _start in open_windows.marked(client)} == {"minute", "hour", "day"}
        LedgerWriter(client, 1, deferral=Deferral(minutes=True)).settle()
        assert_equal_to_a_full_recompute(client)
    finally:
        client.close()


def test_a_timer_flush_takes_a_dead_writers_closed_minutes(ledger_client: Client) -> None:
    first, second = batches(6, 3)  # one minute, then the next
    dead = LedgerWriter(
        ledger_client, 1, deferral=Deferral(clock=lambda: FIRST, minutes=True, min_interval_s=600)
    )
    dead.insert(first)
    dead.refresh_rollups([entry.event.event_time for entry in first])  # then it is SIGKILLed
    # A live writer whose batches never touch the dead writer's minute, its timer due: the
    # dead writer's minute has closed and is flushed with it, before any drain.
    later = max(entry.event.event_time for entry in second)
    live = LedgerWriter(
        ledger_client, 1, deferral=Deferral(clock=lambda: later, minutes=True, min_interval_s=0)
    )
    live.insert(second)
    live.refresh_rollups([entry.event.event_time for entry in second])
    assert minute_events(ledger_client)["rollup_minute"] == 6
    assert ("minute", FIRST) not in open_windows.marked(ledger_client)
    live.settle()
    assert_equal_to_a_full_recompute(ledger_client)


def test_a_timer_flush_takes_a_dead_writers_late_minute_of_an_open_hour(
    ledger_client: Client,
) -> None:
    first, second = batches(6, 3)  # minutes 0 and 1 of 20:00
    clock = FIRST + timedelta(minutes=5)  # both minutes closed, their hour open: late minutes
    dead = LedgerWriter(
        ledger_client, 1, deferral=Deferral(clock=lambda: clock, minutes=True, min_interval_s=600)
    )
    dead.insert(first)
    dead.refresh_rollups([entry.event.event_time for entry in first])  # then it is SIGKILLed
    assert ("minute", FIRST) in open_windows.marked(ledger_client)
    # A live writer whose batches never touch the dead writer's minute, its timer due: the
    # late minute is flushed with its own, before the hour closes and before any drain.
    live = LedgerWriter(
        ledger_client, 1, deferral=Deferral(clock=lambda: clock, minutes=True, min_interval_s=0)
    )
    live.insert(second)
    live.refresh_rollups([entry.event.event_time for entry in second])
    assert minute_events(ledger_client) == dict.fromkeys(MINUTE_TABLES, 6)
    assert ("minute", FIRST) not in open_windows.marked(ledger_client)
    live.settle()
    assert_equal_to_a_full_recompute(ledger_client)


def test_a_steady_stream_slower_than_the_batch_rate_is_steady() -> None:
    # Every batch cut by time with nothing behind it (SDK-packed messages at 10 k events/s).
    assert steady(caught_up=True, previous_caught_up=True, gap_s=0.1, idle_s=1.0)
    assert not steady(caught_up=True, previous_caught_up=False, gap_s=0.1, idle_s=1.0)
    assert not steady(caught_up=True, previous_caught_up=True, gap_s=2.0, idle_s=1.0)  # paused
    assert not steady(caught_up=False, previous_caught_up=True, gap_s=0.1, idle_s=1.0)


def test_a_steady_stream_settles_once_then_when_idle(ledger_client: Client) -> None:
    """A caught-up batch right after another does not settle (stream.drain.steady): the open
    windows wait for the timer or the idle check, which settles them all."""
    now = datetime.now(UTC)
    writer = LedgerWriter(ledger_client, 1, deferral=Deferral(minutes=True, min_interval_s=600))
    pipeline = Pipeline(
        BatchProcessor(default_pricer()), writer, _NoLetters(), stop=_no_stop, idle_s=3600
    )
    lines = usage_lines(now, 30)
    try:
        asyncio.run(pipeline.handle(lines[:10], caught_up=True))  # after a quiet spell: settles
        assert minute_events(ledger_client) == dict.fromkeys(MINUTE_TABLES, 10)
        asyncio.run(pipeline.handle(lines[10:20], caught_up=True))  # steady: deferred
        asyncio.run(pipeline.handle(lines[20:], caught_up=True))
        assert minute_events(ledger_client) == dict.fromkeys(MINUTE_TABLES, 10)
        assert pipeline.unsettled
        asyncio.run(pipeline.settle_if_idle(idle_s=0))
        assert minute_events(ledger_client) == dict.fromkeys(MINUTE_TABLES, 30)
        assert not open_windows.marked(ledger_client)
        assert_equal_to_a_full_recompute(ledger_client)
    finally:
        pipeline.close()
