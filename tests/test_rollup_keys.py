"""Key-restricted rollup refreshes (``sinks.ledger``): after every write, every rollup table
equals the same sums computed from ``ledger FINAL``, through replays, overlapping batches, late
events and the full-refresh fallback; and a batch rewrites only the rows of the keys it touched
(the point of it: a batch's cost no longer grows with its hour and day)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.pricing import default_pricer
from spendstream.sinks.ledger import (
    KEY_DIMENSIONS,
    REFRESH_STEPS,
    LedgerEntry,
    LedgerWriter,
    keyed_sql,
    rollup_from_ledger_sql,
    rollup_from_rollup_sql,
    step_dimensions,
)
from spendstream.sinks.migrations import MEASURES
from tests.support import ledger_data

pytestmark = pytest.mark.integration

# Every rollup table a step writes, with its window unit and dimensions.
TABLES = {
    sql.split()[2]: (unit, step_dimensions(sql))
    for unit, sql in (("minute", rollup_from_ledger_sql("minute")), *REFRESH_STEPS)
}


def entries(events: Sequence[Any]) -> list[LedgerEntry]:
    pricer = default_pricer()
    return [LedgerEntry(event, pricer.rate(event)) for event in events]


def sums(client: Client, sql: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    rows = client.query(sql).result_rows
    return {tuple(row[:-len(MEASURES)]): tuple(row[-len(MEASURES) :]) for row in rows}


def assert_rollups_equal_ledger(client: Client) -> None:
    measures = ", ".join(f"sum({name})" for name in MEASURES)
    ledger_measures = (
        "count(), sum(request_count), countIf(NOT priced), "
        + ", ".join(f"sum({name})" for name in MEASURES[3:])
    )
    for table, (unit, dims) in TABLES.items():
        group = ", ".join(dims)
        got = sums(
            client,
            f"SELECT toString(window_start), {group}, {measures} FROM {table} FINAL "
            f"GROUP BY window_start, {group} HAVING sum(events) > 0",
        )
        expected = sums(
            client,
            f"SELECT toString(toDateTime(toStartOfInterval(event_time, INTERVAL 1 {unit}))) AS w,"
            f" {group}, {ledger_measures} FROM ledger FINAL GROUP BY w, {group}",
        )
        assert got == expected, table


def now(client: Client) -> Any:
    return client.query("SELECT now64(6)").result_rows[0][0]


def rewritten_since(client: Client, table: str, mark: Any) -> int:
    """Rows of ``table`` written after ``mark`` (the newest version of a key survives merges)."""
    found = client.query(
        f"SELECT count() FROM {table} WHERE computed_at > {{mark:DateTime64(6)}}",
        parameters={"mark": mark},
    )
    return int(found.result_rows[0][0])


def test_rollups_equal_the_ledger_after_every_keyed_write(ledger_client: Client) -> None:
    events = ledger_data.generate(3_000, seed=29)
    rng = random.Random(29)
    writer = LedgerWriter(ledger_client, price_version=1)
    written: list[Any] = []
    for start in range(0, len(events), 500):
        batch = events[start : start + 500]
        again = rng.sample(written, min(len(written), 120))  # replays mixed into new batches
        writer.write(entries(batch + again))
        written += batch
        assert_rollups_equal_ledger(ledger_client)
    writer.write(entries(events[:700]))  # a whole replay
    assert_rollups_equal_ledger(ledger_client)
    assert int(ledger_client.query("SELECT count() FROM ledger FINAL").result_rows[0][0]) == 3_000


def test_past_the_key_limit_the_windows_are_refreshed_in_full(ledger_client: Client) -> None:
    events = ledger_data.generate(1_500, seed=5)
    writer = LedgerWriter(ledger_client, price_version=1, max_refresh_keys=3)
    for start in range(0, len(events), 300):
        writer.write(entries(events[start : start + 300]))
        assert_rollups_equal_ledger(ledger_client)


def test_a_batch_rewrites_only_the_rows_of_its_keys(ledger_client: Client) -> None:
    events = ledger_data.generate(2_000, seed=7)
    writer = LedgerWriter(ledger_client, price_version=1)
    writer.write(entries(events))
    late = events[0].model_copy(update={"event_id": "late-one"})
    day_keys = int(
        ledger_client.query(
            "SELECT count() FROM rollup_day FINAL WHERE window_start = toStartOfDay({t:DateTime})",
            parameters={"t": late.event_time.replace(tzinfo=None)},
        ).result_rows[0][0]
    )
    assert day_keys > 20  # a day with many keys: a full refresh rewrites every one of them

    mark = now(ledger_client)
    writer.write(entries([late]))
    for table in TABLES:
        assert rewritten_since(ledger_client, table, mark) == 1, table  # its own key, once
    assert_rollups_equal_ledger(ledger_client)

    # A writer that inserted nothing (a re-rating, a rebuild) refreshes the windows in full.
    mark = now(ledger_client)
    LedgerWriter(ledger_client, price_version=1).refresh_rollups([late.event_time])
    assert rewritten_since(ledger_client, "rollup_day", mark) == day_keys
    assert_rollups_equal_ledger(ledger_client)


def test_a_step_over_a_dimension_without_keys_is_refreshed_in_full() -> None:
    assert set(KEY_DIMENSIONS) >= {"team", "user", "batch"}
    keyed = keyed_sql(rollup_from_rollup_sql("day", "hour", dims=("team", "user")))
    assert keyed is not None and "(team, user) IN {keys:Array(Tuple(String, String))}" in keyed
    assert keyed.endswith("GROUP BY ws, team, user")
    single = keyed_sql(rollup_from_rollup_sql("day", "hour", dims=("team",)))
    assert single is not None and "team IN {keys:Array(String)}" in single
    assert keyed_sql(rollup_from_rollup_sql("day", "hour", dims=("team", "operation"))) is None


def test_windows_moved_by_an_hour_still_match(ledger_client: Client) -> None:
    events = ledger_data.generate(600, seed=3)
    shifted = [
        event.model_copy(
            update={
                "event_id": f"shift-{index}",
                "event_time": event.event_time + timedelta(hours=1, minutes=7),
            }
        )
        for index, event in enumerate(events)
    ]
    writer = LedgerWriter(ledger_client, price_version=1)
    writer.write(entries(events))
    writer.write(entries(shifted[:300]))
    writer.write(entries(shifted[200:]))
    assert_rollups_equal_ledger(ledger_client)
