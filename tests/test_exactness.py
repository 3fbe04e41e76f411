"""Exact totals under replays: re-sent ids, SIGKILLed workers, a rebalance and late events.

One event in ten of the 50,000 carries no ``event_id`` (its id is derived from its content).

Faust delivers at least once (INFRA.md: it over-counts after kill -9 and on rebalances); the
ledger (ReplacingMergeTree on the event, read with FINAL) and the rollups recomputed from it must
still give every total to the last digit. Expectations are Decimal sums computed here from the
list-price table in ``test_pipeline_e2e`` (independent of the shipped catalog).
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import pytest

from spendstream.config import load_settings
from spendstream.embedded import TansuBroker
from spendstream.events import UsageEvent, derived_event_id
from spendstream.sinks.access import DirectReader, QueryResult
from tests.support.chdb_http import ChdbHttpServer
from tests.support.traffic import LIST_PRICES, TEAMS, expected_cost, publish
from tests.support.worker import WorkerProcess, decimal_rows, wait_until, write_config

pytestmark = pytest.mark.integration


class Reader(Protocol):
    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult: ...


def make_events(
    count: int, prefix: str, start: datetime, span: timedelta, seed: int
) -> list[UsageEvent]:
    """``count`` events with ids ``prefix-N``, spread at random over ``[start, start+span)``."""
    rng = random.Random(seed)
    models = list(LIST_PRICES)
    span_ms = int(span.total_seconds() * 1000)
    return [
        UsageEvent(
            event_id=f"{prefix}-{index}",
            event_time=start + timedelta(milliseconds=rng.randrange(span_ms)),
            provider=models[index % len(models)][0],
            model=models[index % len(models)][1],
            input_tokens=rng.randrange(1, 30_000),
            output_tokens=rng.randrange(0, 4_000),
            tags={"team": TEAMS[rng.randrange(len(TEAMS))], "env": "prod"},
        )
        for index in range(count)
    ]


def without_id(event: UsageEvent) -> bytes:
    """The event's wire form with no ``event_id`` (producers that do not set one)."""
    return event.model_dump_json(exclude={"event_id"}, exclude_none=True).encode()


def window_key(moment: datetime, unit: str) -> str:
    """ClickHouse's ``toString(window_start)`` for the ``unit`` window containing ``moment``."""
    moment = moment.astimezone(UTC)
    if unit == "minute":
        moment = moment.replace(second=0, microsecond=0)
    elif unit == "hour":
        moment = moment.replace(minute=0, second=0, microsecond=0)
    else:
        moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def event_window(event: UsageEvent, unit: str) -> str:
    return window_key(event.event_time, unit)


def expected_totals(events: list[UsageEvent], key: Callable[[UsageEvent], str]) -> dict[str, Any]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for event in events:
        totals[key(event)] += expected_cost(event)
    return dict(totals)


# Every rollup table and its window unit (lean: every dimension but user; user: team and user).
ROLLUPS = (
    ("minute", "rollup_minute"),
    ("hour", "rollup_hour"),
    ("day", "rollup_day"),
    ("hour", "rollup_hour_lean"),
    ("day", "rollup_day_lean"),
    ("hour", "rollup_hour_user"),
    ("day", "rollup_day_user"),
)


def assert_exact_totals(reader: Reader, events: list[UsageEvent]) -> None:
    """Every total the ledger and the rollups give equals the independent Decimal sums."""
    ids = {row[0] for row in reader.query("SELECT event_id FROM ledger FINAL").rows}
    assert int(reader.query("SELECT count() FROM ledger FINAL").rows[0][0]) == len(events)
    assert ids == {event.event_id for event in events}

    by_team = expected_totals(events, lambda event: event.tags["team"])
    by_model = expected_totals(events, lambda event: event.model)
    total = sum(by_team.values(), Decimal(0))
    ledger = "SELECT {key}, sum(cost_total) FROM ledger FINAL GROUP BY {key}"
    assert decimal_rows(reader.query(ledger.format(key="team"))) == by_team
    assert decimal_rows(reader.query(ledger.format(key="model"))) == by_model

    for unit, table in ROLLUPS:
        expected = expected_totals(events, partial(event_window, unit=unit))
        windows = f"SELECT toString(window_start), sum({{column}}) FROM {table} FINAL GROUP BY 1"
        assert decimal_rows(reader.query(windows.format(column="cost_total"))) == expected, table
        counts = Counter(event_window(event, unit) for event in events)
        got_counts = decimal_rows(reader.query(windows.format(column="events")))
        assert got_counts == {key: Decimal(value) for key, value in counts.items()}, table
        teams = f"SELECT team, sum(cost_total) FROM {table} FINAL GROUP BY team"
        assert decimal_rows(reader.query(teams)) == by_team, table
        assert decimal_rows(reader.query(f"SELECT 'all', sum(cost_total) FROM {table} FINAL")) == {
            "all": total
        }


# --- 50,000 events, 10 % re-sent, three SIGKILLs and a two-worker rebalance ------------------


class Workers:
    """Worker processes on one config (the same consumer group); all stopped at teardown."""

    def __init__(self, config: Path, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.config, self.log_dir, self.env = config, log_dir, env or {}
        self.started: list[WorkerProcess] = []

    def start(self, name: str) -> WorkerProcess:
        worker = WorkerProcess(self.config, self.log_dir / f"{name}.log", env=dict(self.env))
        self.started.append(worker)
        return worker.start()

    def stop_all(self) -> None:
        for worker in self.started:
            if worker.process is not None:
                worker.stop()


@pytest.fixture
def http_workers(
    tmp_path: Path, broker: TansuBroker, clickhouse_server: ChdbHttpServer
) -> Iterator[Workers]:
    config = write_config(tmp_path / "http.toml", broker.bootstrap_servers, clickhouse_server.dsn)
    # A shorter group session (INFRA.md: joins take session/2) so a SIGKILLed member is
    # replaced sooner; heartbeats stay at 1 s.
    workers = Workers(config, tmp_path, {"SPENDSTREAM_WORKER__SESSION_TIMEOUT_S": "6"})
    yield workers
    workers.stop_all()


def redelivered(reader: Reader) -> tuple[int, int]:
    """(ledger rows, rows beyond one per Kafka record): the second counts records Faust
    delivered again and the worker wrote again (merges are stopped, so rows stay visible)."""
    rows, records = reader.query(
        "SELECT count(), uniqExact(kafka_partition, kafka_offset) FROM ledger"
    ).rows[0]
    return int(rows), int(rows) - int(records)


def wait_rows(reader: Reader, at_least: int, timeout_s: float = 60.0) -> None:
    wait_until(
        lambda: int(reader.query("SELECT count() FROM ledger").rows[0][0]) >= at_least,
        timeout_s,
        f"{at_least} ledger rows",
    )


@pytest.mark.heavy
def test_50k_events_with_resends_kills_and_rebalance_are_exact(
    broker: TansuBroker, http_workers: Workers
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    events = make_events(50_000, "ex", now - timedelta(hours=2), timedelta(minutes=100), seed=11)
    rng = random.Random(5)
    # One event in ten is published without event_id: the worker derives its id from the
    # event's content, so its re-sends and replays must collapse like the others.
    for index in range(0, len(events), 10):
        events[index] = events[index].model_copy(
            update={"event_id": derived_event_id(events[index])}
        )
    payloads = [
        without_id(event) if index % 10 == 0 else event.to_json_bytes()
        for index, event in enumerate(events)
    ]
    for index in rng.sample(range(len(events)), 5_000):  # 10 % re-sent, byte for byte
        payloads.insert(rng.randrange(index + 1, len(payloads) + 1), payloads[index])
    slices = [payloads[start : start + 11_000] for start in range(0, len(payloads), 11_000)]
    assert len(slices) == 5 and sum(map(len, slices)) == 55_000

    worker = http_workers.start("worker")
    reader = DirectReader(load_settings(http_workers.config))
    # Keep every delivered row visible (no background merge folds duplicates) so the replays
    # Faust makes can be counted; FINAL must then do all the de-duplication itself.
    reader.client.command("SYSTEM STOP MERGES ledger")
    replays: list[tuple[str, int, float]] = []
    published, delivered = 0, 0.0
    for number, chunk in enumerate(slices[:3], start=1):
        publish(broker.bootstrap_servers, chunk)
        published += len(chunk)
        wait_rows(reader, published - 6_000)  # mid-stream: thousands still to process
        before = redelivered(reader)[1]
        delivered += worker.metric("spendstream_events_in")  # scraped just before the kill
        worker.stop(signal.SIGKILL)
        killed = time.monotonic()
        worker = http_workers.start("worker")
        wait_rows(reader, published - 1_000)
        replays.append(
            (f"kill {number}", redelivered(reader)[1] - before, time.monotonic() - killed)
        )

    publish(broker.bootstrap_servers, slices[3])
    published += len(slices[3])
    wait_rows(reader, published - 8_000)
    before = redelivered(reader)[1]
    joined = time.monotonic()
    second = http_workers.start("second")  # same group: both workers rebalance mid-stream
    for start in range(0, len(slices[4]), 1_100):  # events keep flowing through the rebalance
        publish(broker.bootstrap_servers, slices[4][start : start + 1_100])
        time.sleep(1)
    wait_until(
        lambda: int(reader.query("SELECT count() FROM ledger FINAL").rows[0][0]) >= len(events),
        120,
        "all events in the ledger",
    )
    replays.append(("rebalance", redelivered(reader)[1] - before, time.monotonic() - joined))
    worker.wait_for_rollups()  # rollups equal the ledger after the drain that follows
    # Both workers must have written: the rebalance really split the partitions.
    assert second.metric("spendstream_batches_written") > 0
    assert worker.metric("spendstream_batches_written") > 0
    rows, extra = redelivered(reader)
    delivered += worker.metric("spendstream_events_in") + second.metric("spendstream_events_in")
    print(
        f"\nmessages delivered to the pipeline: {delivered:.0f} of {len(payloads)} published; "
        f"ledger rows without FINAL: {rows}; rows written again for a record: {extra}; "
        f"(phase, rows written again, seconds to catch up): {replays}"
    )

    assert_exact_totals(reader, events)
    tokens = reader.query("SELECT sum(input_tokens), sum(output_tokens) FROM ledger FINAL").rows
    assert [int(value) for value in tokens[0]] == [
        sum(event.input_tokens for event in events),
        sum(event.output_tokens for event in events),
    ]


# --- Late events ---------------------------------------------------------------------------


def test_late_events_land_in_their_own_windows_exactly(
    broker: TansuBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    recent = make_events(3_000, "recent", now - timedelta(minutes=20), timedelta(minutes=20), 1)
    three_hours = (now - timedelta(hours=3)).replace(minute=20)  # 8 minutes inside one hour
    late = make_events(1_000, "late", three_hours, timedelta(minutes=8), seed=2)
    again = make_events(300, "again", three_hours, timedelta(minutes=8), seed=3)
    old_day = make_events(200, "day", now - timedelta(hours=26), timedelta(minutes=3), seed=4)
    into_existing = make_events(500, "fill", now - timedelta(minutes=20), timedelta(minutes=10), 5)

    worker = start_worker()
    publish(broker.bootstrap_servers, [event.to_json_bytes() for event in recent])
    worker.wait_for_ledger_count(len(recent))
    publish(broker.bootstrap_servers, [event.to_json_bytes() for event in late])
    worker.wait_for_ledger_count(len(recent) + len(late))
    # One more wave mixing windows hours and a day apart: into the late windows already rolled
    # up, into the recent windows already rolled up, and into yesterday.
    mixed = again + into_existing + old_day
    random.Random(9).shuffle(mixed)
    publish(broker.bootstrap_servers, [event.to_json_bytes() for event in mixed])
    everything = recent + late + mixed
    worker.wait_for_ledger_count(len(everything))

    assert_exact_totals(worker, everything)
    late_hour = window_key(three_hours, "hour")
    late_total = decimal_rows(
        worker.query(
            "SELECT toString(window_start), sum(cost_total) FROM rollup_hour FINAL "
            "WHERE toString(window_start) = {hour:String} GROUP BY 1",
            {"hour": late_hour},
        )
    )
    assert late_total == {late_hour: sum(map(expected_cost, late + again), Decimal(0))}
