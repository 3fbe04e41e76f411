"""The outcome topic through the pipeline machinery, without a broker (issue 24): the guarantees
usage events have (tests/test_poison_unit.py) hold for outcomes, on real chDB where it matters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.events import OutcomeEvent, parse_outcome
from spendstream.insights.outcomes import OutcomeStore
from spendstream.sinks.entry import OutcomeEntry
from spendstream.stream import metrics
from spendstream.stream.deadletter import DeadLetter
from spendstream.stream.dlq import DlqLimit
from spendstream.stream.outcomes import OutcomeProcessor
from spendstream.stream.pipeline import StreamPipeline
from spendstream.stream.processor import RawMessage, TimeBounds

TOPIC = "spendstream.outcomes.v1"


class Letters:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures  # the first publishes fail as a broker outage would
        self.letters: list[DeadLetter] = []

    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("KafkaTimeoutError: broker unreachable")
        self.letters += letters


class Stopped(Exception):
    pass


def stop(reason: str) -> NoReturn:
    raise Stopped(reason)


def outcome(event_id: str, **fields: object) -> bytes:
    moment = datetime.now(UTC).isoformat()
    return json.dumps(
        {"event_id": event_id, "event_time": moment, "name": "won", **fields}
    ).encode()


def pipeline_for(
    store: object, letters: Letters, **options: object
) -> StreamPipeline[OutcomeEntry]:
    return StreamPipeline(
        OutcomeProcessor(TimeBounds(timedelta(days=10), timedelta(hours=1))),
        store,  # type: ignore[arg-type]
        letters,
        retry_max_s=0.01,
        stop=stop,
        counters=metrics.OUTCOMES,
        sink_name="outcomes table",
        **options,  # type: ignore[arg-type]
    )


def run(pipeline: StreamPipeline[OutcomeEntry], messages: list[RawMessage]) -> None:
    try:
        asyncio.run(pipeline.handle(messages))
    finally:
        pipeline.close()


def stored_ids(client: Client) -> list[str]:
    rows = client.query("SELECT event_id FROM outcomes FINAL ORDER BY event_id").result_rows
    return [row[0] for row in rows]


def test_bad_lines_are_dead_lettered_with_their_reason_and_good_ones_stored_once(
    ledger_client: Client,
) -> None:
    far = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    old = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    bad = {
        b"{nope": "not valid JSON",
        outcome("neg", value=-1): "value",
        outcome("future", event_time=far): "ahead of the record's time",
        outcome("old", event_time=old): "days before the record's time",
        outcome("usage", provider="openai"): "provider",
        b"": "empty message",
    }
    good = [outcome(f"o{index}", value=index + 1) for index in range(20)]
    packed = b"\n".join([good[0], b"{nope", good[1]])  # one NDJSON message, a bad middle line
    messages = [RawMessage(value, TOPIC, 0, offset) for offset, value in enumerate([*bad, *good])]
    messages.append(RawMessage(packed, TOPIC, 1, 0, ndjson=True))
    letters = Letters(failures=3)  # the dead-letter publish fails, then works: retried, not lost
    run(pipeline_for(OutcomeStore(ledger_client), letters), messages)
    reasons = {
        letter.source_offset: letter.reason
        for letter in letters.letters
        if not letter.source_partition
    }
    for offset, expected in enumerate(bad.values()):
        assert expected in reasons[offset], (expected, reasons.get(offset))
    [middle] = [letter for letter in letters.letters if letter.source_partition == 1]
    assert middle.dedup_key() == (TOPIC, 1, 0, 1)
    assert stored_ids(ledger_client) == sorted(f"o{index}" for index in range(20))
    again = Letters()  # a replay of the same batch: stored once still, the same letters again
    run(pipeline_for(OutcomeStore(ledger_client), again), messages)
    assert stored_ids(ledger_client) == sorted(f"o{index}" for index in range(20))
    keys = sorted(letter.dedup_key() for letter in letters.letters)
    assert sorted(letter.dedup_key() for letter in again.letters) == keys


def test_a_row_the_table_keeps_rejecting_is_isolated_not_retried_forever(
    ledger_client: Client,
) -> None:
    class PickyStore(OutcomeStore):
        def insert(self, entries: Sequence[OutcomeEntry]) -> None:
            if any(entry.event.event_id == "o7" for entry in entries):
                raise ValueError("Code: 27. CANNOT_PARSE_INPUT")
            super().insert(entries)

    letters = Letters()
    messages = [RawMessage(outcome(f"o{i}"), TOPIC, 0, i) for i in range(16)]
    run(pipeline_for(PickyStore(ledger_client), letters), messages)
    assert stored_ids(ledger_client) == sorted(f"o{i}" for i in range(16) if i != 7)
    [letter] = letters.letters
    assert letter.source_offset == 7 and "CANNOT_PARSE_INPUT" in letter.reason
    assert letter.reason.startswith("the outcomes table rejected the event: ValueError")


def test_an_outage_is_retried_until_the_table_takes_the_batch(ledger_client: Client) -> None:
    class DownThenUp(OutcomeStore):
        calls = 0

        def insert(self, entries: Sequence[OutcomeEntry]) -> None:
            self.calls += 1
            if self.calls <= 3:
                raise ConnectionRefusedError("ClickHouse is down")
            super().insert(entries)

    letters = Letters()
    run(pipeline_for(DownThenUp(ledger_client), letters), [RawMessage(outcome("o1"), TOPIC, 0, 0)])
    assert stored_ids(ledger_client) == ["o1"] and not letters.letters


def test_the_dead_letter_limit_and_unexpected_errors_stop_the_worker(
    ledger_client: Client,
) -> None:
    letters = Letters()
    bad = [RawMessage(b"{nope", TOPIC, 0, offset) for offset in range(30)]
    limited = pipeline_for(
        OutcomeStore(ledger_client), letters, dlq_limit=DlqLimit(max_ratio=1, max_consecutive=20)
    )
    with pytest.raises(Stopped, match="30 events in a row were dead-lettered"):
        run(limited, bad)
    assert not letters.letters  # the batch that crossed the limit published nothing

    class Broken(OutcomeProcessor):
        def process(self, messages: Sequence[RawMessage]) -> object:  # type: ignore[override]
            raise RuntimeError("a bug outside any one event")

    broken = StreamPipeline(Broken(), OutcomeStore(ledger_client), Letters(), stop=stop)
    with pytest.raises(Stopped, match="unexpected error handling a batch: RuntimeError"):
        run(broken, [RawMessage(outcome("o1"), TOPIC, 0, 0)])


def test_id_less_outcomes_get_the_same_derived_id_however_they_are_spelled() -> None:
    fields = {"event_time": "2026-11-01T12:00:00+02:00", "name": "won", "value": "2.50"}
    first = parse_outcome(json.dumps(fields).encode())
    respelled = {"value": 2.5, "name": "won", "event_time": "2026-11-01T10:00:00Z"}
    assert parse_outcome(json.dumps(respelled).encode()).event_id == first.event_id
    assert parse_outcome(json.dumps({**fields, "value": 3}).encode()).event_id != first.event_id
    with pytest.raises(Exception, match="event_id: required when event_time is absent"):
        parse_outcome(b'{"name": "won"}')
    built = OutcomeEvent(name="won")  # built in Python (the SDK): a random id, sent with it
    assert json.loads(built.to_json_bytes())["event_id"] == built.event_id
