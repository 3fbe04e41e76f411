"""Poison messages, without a broker: validation edges, letters that fit, slice isolation and the
dead-letter limit (issue 18; issue 10 defects 2, 3, 12)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from clickhouse_connect.driver.client import Client

from spendstream.events import EventError, UsageEvent, derived_event_id, parse_event
from spendstream.pricing import default_pricer
from spendstream.sinks.entry import LEDGER_COLUMNS, LedgerEntry
from spendstream.sinks.ledger import LedgerWriter
from spendstream.sinks.price_versions import register_price_version
from spendstream.stream.deadletter import MAX_LETTER_BYTES, DeadLetter
from spendstream.stream.dlq import DlqGuard, DlqLimit, DlqLimitExceeded
from spendstream.stream.pipeline import Pipeline
from spendstream.stream.processor import BatchProcessor, RawMessage, TimeBounds
from tests.support.fuzz import OUT_OF_RANGE_TIMES

BASE = {"schema_version": 1, "provider": "openai", "model": "gpt-4o", "input_tokens": 5}


def line(**fields: object) -> bytes:
    return json.dumps({**BASE, "event_id": "e1", **fields}).encode()


def reason_of(payload: bytes) -> str:
    with pytest.raises(EventError) as info:
        parse_event(payload)
    return info.value.reason


# --- the contract -----------------------------------------------------------------------------


@pytest.mark.parametrize("moment", OUT_OF_RANGE_TIMES)
def test_times_outside_the_supported_range_are_refused_with_the_reason(moment: str) -> None:
    assert "outside the supported range" in reason_of(line(event_time=moment))


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("event_time", 1764500000, "epoch numbers are not accepted"),
        ("event_time", 1764500000000, "epoch numbers are not accepted"),
        ("event_time", "10", "RFC 3339"),
        ("event_time", "2026-11-01", "RFC 3339"),
        ("event_time", "2026-11-01T10:00:00", "timezone info"),
        ("event_time", "2026-02-30T10:00:00Z", "day is out of range"),
        ("event_time", "2016-12-31T23:58:60Z", "leap second"),
        ("schema_version", True, "schema_version: Input should be the integer 1"),
        ("schema_version", 1.0, "schema_version: Input should be the integer 1"),
        ("batch", "yes", "batch: Input should be a valid boolean"),
        ("batch", 1, "batch: Input should be a valid boolean"),
        ("latency_ms", True, "latency_ms: Input should be a valid number"),
        ("latency_ms", "5", "latency_ms: Input should be a valid number"),
    ],
)
def test_strict_types(field: str, value: object, reason: str) -> None:
    assert reason in reason_of(line(**{field: value}))


def test_leap_seconds_are_accepted_and_normalised_within_their_minute() -> None:
    event = parse_event(line(event_time="2016-12-31T23:59:60Z"))
    assert event.event_time == datetime(2016, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert parse_event(line(event_time="2017-01-01T00:59:60.5+01:00")).event_time == (
        datetime(2016, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    )


def test_range_edges_are_accepted() -> None:
    assert parse_event(line(event_time="1970-01-01T00:00:00Z")).event_time.year == 1970
    assert parse_event(line(event_time="2099-12-31T23:59:59.999Z")).event_time.year == 2099


def test_id_less_events_get_the_same_id_however_they_are_spelled() -> None:
    fields = {**BASE, "event_time": "2026-11-01T12:00:00+02:00", "provider_cost_usd": "0.10"}
    first = parse_event(json.dumps(fields).encode())
    respelled = {**fields, "event_time": "2026-11-01T10:00:00.000Z", "batch": False}
    respelled["provider_cost_usd"] = "0.1"
    again = parse_event(json.dumps(dict(reversed(list(respelled.items()))), indent=2).encode())
    assert first.event_id == again.event_id == derived_event_id(first)
    other = parse_event(json.dumps({**fields, "input_tokens": 6}).encode())
    assert other.event_id != first.event_id
    assert "event_id: required when event_time is absent" in reason_of(json.dumps(BASE).encode())


# --- letters always fit -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"x":"' + b"\\u0001" * 200_000 + b'"}',
        b'{"x":"' + "\u0001".encode() * 200_000 + b'"}',
        b'"' * 520_000,
        b"\xff\xfe" * 600_000,
        b"x" * 3_000_000,
    ],
)
def test_dead_letters_fit_the_producer_limit_by_encoded_size(raw: bytes) -> None:
    letter = DeadLetter.for_payload(raw, "r" * 10_000, "usage", 1, 2, 3)
    assert letter.encoded_size() <= MAX_LETTER_BYTES < 1_000_000
    again = DeadLetter.model_validate_json(letter.encoded())
    assert raw.startswith(again.raw_payload()) and again.payload_bytes == len(raw)
    assert again.dedup_key() == ("usage", 1, 2, 3)


# --- processing: time bounds around the record's timestamp --------------------------------------


def test_time_bounds_are_inclusive_and_judged_against_the_record_timestamp() -> None:
    processor = BatchProcessor(default_pricer(), TimeBounds(timedelta(days=10), timedelta(hours=1)))
    record = datetime(2026, 11, 20, 12, tzinfo=UTC)
    times = {
        "oldest": record - timedelta(days=10),
        "too-old": record - timedelta(days=10, milliseconds=1),
        "newest": record + timedelta(hours=1),
        "too-new": record + timedelta(hours=1, milliseconds=1),
    }
    messages = [
        RawMessage(
            line(event_id=name, event_time=moment.isoformat()),
            "t",
            0,
            offset,
            False,
            record.timestamp(),
        )
        for offset, (name, moment) in enumerate(times.items())
    ]
    batch = processor.process(messages)
    assert sorted(entry.event.event_id for entry in batch.entries) == ["newest", "oldest"]
    reasons = sorted(letter.reason for letter in batch.dead_letters)
    assert "more than 10 days before the record's time" in reasons[0]
    assert "ahead of the record's time" in reasons[1]


# --- slice isolation --------------------------------------------------------------------------


class PickyWriter:
    """Refuses any insert holding a poison event id, like a ClickHouse error would."""

    def __init__(self, poison: set[str], outage_calls: int = 0) -> None:
        self.poison = poison
        self.outage_calls = outage_calls  # the first calls fail as an outage would
        self.rows: list[str] = []
        self.refreshed: list[datetime] = []
        self.inserts = 0

    def insert(self, entries: Sequence[LedgerEntry]) -> None:
        self.inserts += 1
        if self.outage_calls > 0:
            self.outage_calls -= 1
            raise ConnectionRefusedError("ClickHouse is down")
        bad = [entry.event.event_id for entry in entries if entry.event.event_id in self.poison]
        if bad:
            raise ValueError(f"Code: 27. CANNOT_PARSE_INPUT for {bad[0]}")
        self.rows += [entry.event.event_id for entry in entries]

    def refresh_rollups(self, times: Sequence[datetime]) -> None:
        self.refreshed += times

    def ping(self) -> None:
        return None


class Letters:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        self.letters += letters


def must_not_stop(reason: str) -> NoReturn:
    raise AssertionError(f"the worker stopped: {reason}")


def messages_for(count: int) -> list[RawMessage]:
    now = datetime.now(UTC)
    return [
        RawMessage(line(event_id=f"e{index}", event_time=now.isoformat()), "usage", 0, index)
        for index in range(count)
    ]


def test_slice_splitting_dead_letters_exactly_the_rows_the_ledger_rejects() -> None:
    writer = PickyWriter({"e13", "e14", "e77"}, outage_calls=2)
    letters = Letters()
    pipeline = Pipeline(
        BatchProcessor(default_pricer()), writer, letters, retry_max_s=0.01, stop=must_not_stop
    )
    try:
        asyncio.run(pipeline.handle(messages_for(100)))
    finally:
        pipeline.close()
    assert sorted(writer.rows) == sorted(f"e{i}" for i in range(100) if i not in (13, 14, 77))
    assert len(writer.rows) == len(set(writer.rows))  # every other event stored once
    assert sorted((letter.source_offset, letter.source_index) for letter in letters.letters) == [
        (13, None),
        (14, None),
        (77, None),
    ]
    assert all("the ledger rejected the event" in letter.reason for letter in letters.letters)
    assert all("CANNOT_PARSE_INPUT" in letter.reason for letter in letters.letters)
    assert len(writer.refreshed) == 97
    assert writer.inserts < 60  # the outage was retried, then about 2·log2(100) per poison row


# --- the dead-letter limit --------------------------------------------------------------------


class Stopped(Exception):
    pass


def test_dlq_limit_stops_the_pipeline_before_publishing() -> None:
    reasons: list[str] = []

    def stop(reason: str) -> NoReturn:
        reasons.append(reason)
        raise Stopped(reason)

    letters = Letters()
    pipeline = Pipeline(
        BatchProcessor(default_pricer()),
        PickyWriter(set()),
        letters,
        dlq_limit=DlqLimit(max_ratio=1, max_consecutive=50),
        stop=stop,
    )
    bad = [RawMessage(b"{nope", "usage", 0, offset) for offset in range(30)]
    try:
        asyncio.run(pipeline.handle(bad))  # 30 in a row: under the limit
        assert len(letters.letters) == 30 and not reasons
        with pytest.raises(Stopped):
            asyncio.run(pipeline.handle(bad))  # 60 in a row
    finally:
        pipeline.close()
    assert len(letters.letters) == 30  # the batch that crossed the limit published nothing
    assert "60 events in a row were dead-lettered" in reasons[0]


def test_a_rollup_refresh_that_keeps_failing_stops_the_worker() -> None:
    class NoRollups(PickyWriter):
        def refresh_rollups(self, times: Sequence[datetime]) -> None:
            raise ValueError("Code: 457. BAD_QUERY_PARAMETER")

    def stop(reason: str) -> NoReturn:
        raise Stopped(reason)

    writer = NoRollups(set())
    pipeline = Pipeline(
        BatchProcessor(default_pricer()), writer, Letters(), retry_max_s=0.01, stop=stop
    )
    try:
        with pytest.raises(Stopped, match="rollup refresh failed 5 times: Code: 457"):
            asyncio.run(pipeline.handle(messages_for(10)))
    finally:
        pipeline.close()
    assert len(writer.rows) == 10  # stored, so not dead-lettered: the batch replays after a fix


def test_dlq_guard_ratio_and_runs() -> None:
    guard = DlqGuard(DlqLimit(max_ratio=0.5, ratio_window=100, max_consecutive=0))
    guard.record(100, 40, 0, 10, 0)
    guard.record(100, 45, 0, 10, 0)
    with pytest.raises(DlqLimitExceeded, match=r"of the last \d+ events"):
        guard.record(100, 90, 0, 10, 0)
    runs = DlqGuard(DlqLimit(max_ratio=1, max_consecutive=10))
    runs.record(10, 4, 0, 4, 4)  # ends with 4 letters
    runs.record(5, 5, 5, 5, 5)  # 9 in a row
    with pytest.raises(DlqLimitExceeded):
        runs.record(3, 2, 1, 1, 1)  # 9 + 1 leading = 10


def test_events_build_in_python_keep_random_ids() -> None:
    first = UsageEvent(provider="openai", model="gpt-4o")
    second = UsageEvent(provider="openai", model="gpt-4o", event_time=first.event_time)
    assert first.event_id != second.event_id  # the SDK's events: one id per call


def test_isolation_against_real_chdb_keeps_rollups_equal_to_the_ledger(
    ledger_client: Client,
) -> None:
    """The real writer and chDB: rows the driver/ClickHouse refuse are isolated, the rest stored
    once and rolled up exactly."""
    poison = {"e3", "e41"}

    class CorruptingWriter(LedgerWriter):
        def insert(self, entries: Sequence[LedgerEntry]) -> None:
            # A value UInt32 cannot hold stands for any row ClickHouse refuses.
            bad = [entry for entry in entries if entry.event.event_id in poison]
            if bad:
                rows = [entry.row(self.price_version, datetime.now(UTC)) for entry in entries]
                for row, entry in zip(rows, entries, strict=True):
                    if entry in bad:
                        row[LEDGER_COLUMNS.index("request_count")] = -(2**40)
                self.client.insert("ledger", rows, column_names=LEDGER_COLUMNS)
            super().insert(entries)

    pricer = default_pricer()
    writer = CorruptingWriter(
        ledger_client, register_price_version(ledger_client, pricer.catalog_digest)
    )
    letters = Letters()
    pipeline = Pipeline(
        BatchProcessor(pricer), writer, letters, retry_max_s=0.01, stop=must_not_stop
    )
    try:
        asyncio.run(pipeline.handle(messages_for(50)))
    finally:
        pipeline.close()
    assert sorted(letter.source_offset for letter in letters.letters) == [3, 41]
    ids = {row[0] for row in ledger_client.query("SELECT event_id FROM ledger FINAL").result_rows}
    assert ids == {f"e{index}" for index in range(50)} - poison
    for unit in ("minute", "hour", "day"):
        ledger = ledger_client.query(
            f"SELECT toStartOfInterval(event_time, INTERVAL 1 {unit}) AS w, count(), "
            "sum(cost_total) FROM ledger FINAL GROUP BY w ORDER BY w"
        ).result_rows
        rollup = ledger_client.query(
            f"SELECT window_start, sum(events), sum(cost_total) FROM rollup_{unit} FINAL "
            "GROUP BY window_start ORDER BY window_start"
        ).result_rows
        assert [tuple(map(str, row)) for row in rollup] == [tuple(map(str, r)) for r in ledger]


def test_a_letter_refused_for_its_size_is_resent_without_payload() -> None:
    class SmallBroker(Letters):
        async def publish(self, letters: Sequence[DeadLetter]) -> None:
            if any(letter.payload or letter.payload_base64 for letter in letters):
                raise MessageSizeTooLargeError("The message is 1048577 bytes when serialized")
            await super().publish(letters)

    broker = SmallBroker()
    pipeline = Pipeline(
        BatchProcessor(default_pricer()), PickyWriter(set()), broker, retry_max_s=0.01
    )
    try:
        asyncio.run(pipeline.handle([RawMessage(b"{nope", "usage", 0, 9)]))
    finally:
        pipeline.close()
    [letter] = broker.letters
    assert letter.payload_truncated and letter.raw_payload() == b""
    assert letter.dedup_key() == ("usage", 0, 9, None) and "not valid JSON" in letter.reason
