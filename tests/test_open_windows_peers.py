"""Two writers and deferred windows: a window refreshed by one writer has its hour and day
refreshed after it, even when the other writer's flush recorded them done before its rows were
in (the first writer gone by then, SIGKILLed or stopped without a drain). Found in review: the
live writer flushed the hour (its own mark) while the dead writer's minute was still open, the
done mark hid the dead writer's mark on the hour, and the minute's later flush left the hour and
day short of its rows for good."""

from __future__ import annotations

from datetime import timedelta

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.sinks import open_windows
from spendstream.sinks.ledger import Deferral, LedgerWriter
from tests.test_open_minutes import FIRST
from tests.test_open_windows import START, assert_equal_to_a_full_recompute, batches

pytestmark = pytest.mark.storage


def test_a_dead_writers_open_minute_then_the_live_writers_hour_flush(
    ledger_client: Client,
) -> None:
    first, _second, third = batches(9, 3)  # minutes 20:00, 20:01, 20:02 (one hour, one day)
    now = FIRST + timedelta(minutes=2, seconds=50)  # 20:02:50: minute 20:02 still open
    dead = LedgerWriter(
        ledger_client, 1, deferral=Deferral(clock=lambda: now, minutes=True, min_interval_s=600)
    )
    dead.insert(third)
    dead.refresh_rollups([e.event.event_time for e in third])  # marks 20:02, the hour, the day
    live = LedgerWriter(
        ledger_client, 1, deferral=Deferral(clock=lambda: now, minutes=True, min_interval_s=0)
    )
    live.insert(first)  # a lagging partition: the closed minute 20:00
    live.refresh_rollups([e.event.event_time for e in first])  # timer due: hour and day flushed
    assert ("minute", FIRST + timedelta(minutes=2)) in open_windows.marked(ledger_client)
    live.settle()  # drained: the dead writer's minute 20:02, and its hour and day after it
    assert open_windows.marked(ledger_client) == set()
    assert_equal_to_a_full_recompute(ledger_client)


def test_a_dead_writers_open_hour_then_the_live_writers_day_flush(ledger_client: Client) -> None:
    h20, h21 = batches(360, 180)  # 20 s apart from 20:00: hours 20 and 21
    now = START + timedelta(hours=21, minutes=59)  # hour 21 open, the day open
    dead = LedgerWriter(ledger_client, 1, deferral=Deferral(clock=lambda: now, min_interval_s=600))
    dead.insert(h21)
    dead.refresh_rollups([e.event.event_time for e in h21])  # marks hour 21 and the day
    live = LedgerWriter(ledger_client, 1, deferral=Deferral(clock=lambda: now, min_interval_s=0))
    live.insert(h20)  # lagging: the closed hour 20
    live.refresh_rollups([e.event.event_time for e in h20])  # timer due: the day flushed
    live.settle()  # drained: the dead writer's hour 21, and its day after it
    assert_equal_to_a_full_recompute(ledger_client)


def test_a_lagging_writer_with_nothing_of_its_own_pending_flushes_a_dead_writers_closed_minute(
    ledger_client: Client,
) -> None:
    first, second = batches(6, 3)  # minutes 20:00 and 20:01
    clock = [FIRST + timedelta(seconds=50)]  # 20:00:50: minute 20:00 open
    dead = LedgerWriter(
        ledger_client,
        1,
        deferral=Deferral(clock=lambda: clock[0], minutes=True, min_interval_s=600),
    )
    dead.insert(first)
    dead.refresh_rollups([e.event.event_time for e in first])  # marks 20:00, the hour, the day
    clock[0] = FIRST + timedelta(hours=2)  # everything above has closed since
    live = LedgerWriter(
        ledger_client, 1, deferral=Deferral(clock=lambda: clock[0], minutes=True, min_interval_s=0)
    )
    live.insert(second)  # lagging: closed windows only, so nothing of its own to mark
    live.refresh_rollups([e.event.event_time for e in second])
    assert open_windows.marked(ledger_client) == set()  # the timer flush took the dead one's
    assert_equal_to_a_full_recompute(ledger_client)
