"""SDK-less end to end: kafka-python publishes, the real worker prices, the ledger is exact."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal

import pytest
from kafka import KafkaProducer

from spendstream.embedded import TansuBroker
from spendstream.events import UsageEvent
from tests.support.traffic import (
    USAGE_TOPIC,
    expected_cost,
    generate,
    publish,
    read_dead_letters,
)
from tests.support.worker import WorkerProcess, decimal_rows

pytestmark = pytest.mark.integration


@pytest.mark.heavy
def test_20k_events_totals_exact_per_team_model_and_minute(
    broker: TansuBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    events = generate(20_000)
    worker = start_worker()
    publish(broker.bootstrap_servers, [event.to_json_bytes() for event in events])
    worker.wait_for_ledger_count(len(events))

    by_team: dict[str, Decimal] = defaultdict(Decimal)
    by_model: dict[str, Decimal] = defaultdict(Decimal)
    for event in events:
        by_team[event.tags["team"]] += expected_cost(event)
        by_model[event.model] += expected_cost(event)
    total = sum(by_team.values(), Decimal(0))

    ledger_team = decimal_rows(
        worker.query("SELECT team, sum(cost_total) FROM ledger FINAL GROUP BY team")
    )
    ledger_model = decimal_rows(
        worker.query("SELECT model, sum(cost_total) FROM ledger FINAL GROUP BY model")
    )
    assert ledger_team == dict(by_team)
    assert ledger_model == dict(by_model)
    for table in ("rollup_minute", "rollup_hour", "rollup_day"):
        rollup = decimal_rows(
            worker.query(f"SELECT team, sum(cost_total) FROM {table} FINAL GROUP BY team")
        )
        assert rollup == dict(by_team), table
        assert Decimal(worker.scalar(f"SELECT sum(cost_total) FROM {table} FINAL")) == total
    minutes = int(worker.scalar("SELECT uniqExact(window_start) FROM rollup_minute FINAL"))
    assert minutes == 40
    assert int(worker.scalar("SELECT countIf(NOT priced) FROM ledger FINAL")) == 0
    assert worker.metric("spendstream_events_priced") == len(events)


def valid_payload(index: int) -> bytes:
    return UsageEvent(
        event_id=f"valid-{index}",
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=100 + index,
        output_tokens=10,
        tags={"team": "search"},
    ).to_json_bytes()


def good_fields(**changes: object) -> bytes:
    fields: dict[str, object] = {
        "provider": "openai",
        "model": "gpt-4o",
        "event_time": "2026-11-01T10:00:00Z",
        "input_tokens": 10,
        "output_tokens": 5,
    }
    fields.update(changes)
    return json.dumps({key: value for key, value in fields.items() if value is not None}).encode()


MALFORMED: dict[str, tuple[bytes, str]] = {
    "not json": (b"this is not json", "not valid JSON"),
    "not an object": (b"[1, 2, 3]", "expected a JSON object"),
    "empty": (b"", "empty message"),
    "binary": (b"\xff\xfe\x00garbage", "not valid JSON"),
    "string tokens": (good_fields(input_tokens="10"), "input_tokens"),
    "negative tokens": (good_fields(output_tokens=-5), "output_tokens"),
    "fractional tokens": (good_fields(input_tokens=1.5), "input_tokens"),
    "naive time": (good_fields(event_time="2026-11-01T10:00:00"), "event_time"),
    "unknown field": (good_fields(colour="blue"), "colour: Extra inputs are not permitted"),
    "missing model": (good_fields(model=None), "model: Field required"),
    "huge payload": (good_fields(tags={"note": "x" * 20_000}), "bytes; the limit is"),
    "cache exceeds input": (
        good_fields(input_tokens=10, cache_read_tokens=50),
        "cache_read_tokens + cache_write_tokens exceed input_tokens",
    ),
    "bad tag key": (
        good_fields(tags={"Team Name": "x"}),
        "tags.Team Name.[key]: String should match pattern",
    ),
    "unsupported schema": (good_fields(schema_version=2), "schema_version"),
}


def test_malformed_events_go_to_dead_letter_topic_with_reasons(
    broker: TansuBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    payloads: list[bytes] = []
    for index, (bad, _) in enumerate(MALFORMED.values()):
        payloads += [valid_payload(2 * index), bad, valid_payload(2 * index + 1)]
    worker = start_worker()
    publish(broker.bootstrap_servers, payloads)
    valid_count = 2 * len(MALFORMED)
    worker.wait_for_ledger_count(valid_count)

    letters = read_dead_letters(broker.bootstrap_servers)
    assert len(letters) == len(MALFORMED)
    by_payload = {letter.raw_payload(): letter for letter in letters}
    for name, (bad, expected_reason) in MALFORMED.items():
        letter = by_payload[bad]  # the exact original bytes are kept
        assert expected_reason in letter.reason, (name, letter.reason)
        assert letter.source_topic == USAGE_TOPIC
    assert int(worker.scalar("SELECT count() FROM ledger FINAL")) == valid_count
    assert worker.metric("spendstream_events_dead_lettered") == len(MALFORMED)


def test_multi_event_ndjson_messages_are_split_and_bad_lines_dead_lettered(
    broker: TansuBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    events = generate(300, seed=3)
    lines = [event.to_json_bytes() for event in events]
    lines.insert(7, b'{"provider": "openai"}')  # a bad line inside a packed message
    packed = [b"\n".join(lines[start : start + 50]) for start in range(0, len(lines), 50)]
    worker = start_worker()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    for value in packed:
        producer.send(USAGE_TOPIC, value, headers=[("content-type", b"application/x-ndjson")])
    producer.send(USAGE_TOPIC, events[0].to_json_bytes())  # a re-sent single event
    producer.flush()
    producer.close()
    worker.wait_for_ledger_count(len(events))

    expected = sum((expected_cost(event) for event in events), Decimal(0))
    assert Decimal(worker.scalar("SELECT sum(cost_total) FROM ledger FINAL")) == expected
    assert int(worker.scalar("SELECT count() FROM ledger FINAL")) == len(events)
    letters = read_dead_letters(broker.bootstrap_servers)
    assert len(letters) == 1
    assert letters[0].source_index == 7
    assert letters[0].raw_payload() == b'{"provider": "openai"}'
    assert "model: Field required" in letters[0].reason
