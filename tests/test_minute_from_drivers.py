"""``rollup_minute`` summed from Explain's drivers minutes (session 12, ``sinks.ledger``).

The drivers minutes hold every dimension and measure of ``rollup_minute``: a writer that
refreshes them sums ``rollup_minute`` from them, one read of the minutes from ``ledger FINAL``
fewer per flush. Its rows must equal a recompute from the ledger, row for row; a writer without
the drivers step still reads the ledger.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from spendstream.sinks.ledger import (
    MINUTE_FROM_DRIVERS,
    REFRESH_STEPS,
    Deferral,
    LedgerWriter,
    rollup_from_ledger_sql,
    window_starts,
)
from spendstream.sinks.minute_fanout import MINUTE_FANOUT
from tests.test_open_windows import START, _rows_sql, batches

MINUTE_FROM_LEDGER = rollup_from_ledger_sql("minute")


class RecordingWriter(LedgerWriter):
    """A writer that records the SQL of every refresh statement it runs."""

    ran: list[str]

    def _run(self, sql: str, unit: str, starts: list[Any]) -> None:
        self.ran.append(sql)
        super()._run(sql, unit, starts)


def recording(client: Client, **options: Any) -> RecordingWriter:
    writer = RecordingWriter(client, 1, **options)
    writer.ran = []
    return writer


def assert_minutes_equal_a_ledger_recompute(client: Client) -> None:
    kept = client.query(_rows_sql(client, "rollup_minute")).result_rows
    assert kept
    minutes = window_starts([START + timedelta(minutes=m) for m in range(3 * 1440)], "minute")
    client.command(
        MINUTE_FROM_LEDGER,
        parameters={"starts": minutes, "lo": minutes[0], "hi": minutes[-1] + timedelta(minutes=1)},
    )
    assert client.query(_rows_sql(client, "rollup_minute")).result_rows == kept


def test_rollup_minute_is_summed_from_the_drivers_minutes_and_equals_the_ledger(
    ledger_client: Client,
) -> None:
    writer = recording(ledger_client)
    for batch in batches(400, 40):
        writer.write(batch)
    assert MINUTE_FROM_LEDGER not in writer.ran
    assert writer.ran.count(MINUTE_FROM_DRIVERS) == 10
    # The drivers minutes are written first, with the runs' (one read: sinks.minute_fanout).
    assert writer.ran.index(MINUTE_FANOUT) < writer.ran.index(MINUTE_FROM_DRIVERS)
    assert_minutes_equal_a_ledger_recompute(ledger_client)


def test_deferred_minutes_summed_from_the_drivers_equal_the_ledger_after_a_settle(
    ledger_client: Client,
) -> None:
    first = START + timedelta(hours=20)
    writer = recording(ledger_client, deferral=Deferral(clock=lambda: first, minutes=True))
    for batch in batches(400, 40):
        writer.insert(batch)
        writer.refresh_rollups([entry.event.event_time for entry in batch])
    writer.settle()
    assert MINUTE_FROM_LEDGER not in writer.ran
    assert_minutes_equal_a_ledger_recompute(ledger_client)


def test_a_writer_without_the_drivers_reads_rollup_minute_from_the_ledger(
    ledger_client: Client,
) -> None:
    steps = [step for step in REFRESH_STEPS if "drivers" not in step[1]]
    writer = RecordingWriter(ledger_client, 1, steps)
    writer.ran = []
    writer.write(next(batches(40, 40)))
    assert MINUTE_FROM_LEDGER in writer.ran and MINUTE_FROM_DRIVERS not in writer.ran
    assert_minutes_equal_a_ledger_recompute(ledger_client)
