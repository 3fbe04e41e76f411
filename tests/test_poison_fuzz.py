"""Fuzz: a few thousand mutated messages (single and NDJSON packs) with a worker SIGKILL in the
middle. Every line ends up in the ledger once or on the dead-letter topic once (letters
deduplicated by source partition/offset/line, as docs/failure-model.md says), valid events sent
afterwards arrive, and the rollups equal the ledger (issue 18)."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import pytest
from kafka import KafkaProducer

from spendstream.embedded import TansuBroker
from spendstream.stream.deadletter import DeadLetter
from tests.support.fuzz import INVALID, VALID, Line, generate_messages
from tests.support.traffic import USAGE_TOPIC
from tests.support.worker import WorkerProcess, wait_until
from tests.test_poison_worker import has_event, rollups_equal_ledger, unique_letters, valid

pytestmark = pytest.mark.integration

NDJSON_HEADERS = [("content-type", b"application/x-ndjson")]
Key = tuple[int, int, int | None]  # partition, offset, line (None: single-event message)


def publish(
    bootstrap: str, messages: list[tuple[list[Line], bool]], topic: str = USAGE_TOPIC
) -> dict[Key, Line]:
    """Publish ``messages``; returns every event line by where the worker will find it."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2_000_000)
    sent = []
    for lines, packed in messages:
        value = b"\n".join(line.payload for line in lines) if packed else lines[0].payload
        future = producer.send(topic, value, headers=NDJSON_HEADERS if packed else None)
        sent.append((future, lines, packed))
    producer.flush()
    producer.close()
    keys: dict[Key, Line] = {}
    for future, lines, packed in sent:
        meta = future.get(timeout=30)
        for index, line in enumerate(lines):
            if not packed:
                keys[(meta.partition, meta.offset, None)] = line
            elif line.payload.strip():  # blank lines of a pack are not events
                keys[(meta.partition, meta.offset, index)] = line
    return keys


def publish_with_a_kill(
    bootstrap: str,
    start_worker: Callable[..., WorkerProcess],
    messages: list[tuple[list[Line], bool]],
    topic: str,
    table: str,
) -> tuple[WorkerProcess, dict[Key, Line]]:
    """Publish the first half of ``messages`` to a worker, SIGKILL it once ``table`` holds a
    third of that half's surely valid lines, start another and publish the second half."""
    half = len(messages) // 2
    worker = start_worker(name=f"{table}-fuzz-1")
    lines = publish(bootstrap, messages[:half], topic)
    surely_valid = sum(1 for line in lines.values() if line.expect == VALID)
    wait_until(
        lambda: int(worker.scalar(f"SELECT count() FROM {table}")) >= surely_valid // 3,
        120,
        f"a third of the first half in {table}",
    )
    worker.stop(signal.SIGKILL)
    worker = start_worker(name=f"{table}-fuzz-2")
    return worker, lines | publish(bootstrap, messages[half:], topic)


@pytest.mark.heavy
def test_fuzzed_messages_with_a_kill_are_each_stored_or_dead_lettered_once(
    broker: TansuBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    messages = generate_messages(3_000, seed=1818, now=datetime.now(UTC))
    worker, lines = publish_with_a_kill(
        broker.bootstrap_servers, start_worker, messages, USAGE_TOPIC, "ledger"
    )
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    for partition in range(4):  # one valid event behind everything on every partition
        producer.send(USAGE_TOPIC, valid(f"after-{partition}").to_json_bytes(), partition=partition)
    producer.flush()
    producer.close()
    for partition in range(4):
        wait_until(partial(has_event, worker, f"after-{partition}"), 180, f"after-{partition}")

    letters = unique_letters(broker.bootstrap_servers)
    rows = worker.query(
        "SELECT kafka_partition, kafka_offset, count() FROM ledger FINAL "
        "WHERE kafka_topic = {topic:String} AND event_id NOT LIKE 'after-%' GROUP BY 1, 2",
        {"topic": USAGE_TOPIC},
    ).rows
    stored = Counter({(int(p), int(o)): int(n) for p, o, n in rows})
    assert_each_line_once(lines, letters, stored, USAGE_TOPIC)
    rollups_equal_ledger(worker)


def assert_each_line_once(
    lines: dict[Key, Line],
    letters: dict[tuple[str, int, int, int | None], DeadLetter],
    stored: Counter[tuple[int, int]],
    topic: str,
) -> None:
    """Every line of ``lines`` is stored (``stored``: rows per partition and offset) or
    dead-lettered (``letters`` of ``topic``, deduplicated) exactly once, with a reason; every
    certainly valid line is stored and every certainly invalid one dead-lettered."""
    letters = {key: letter for key, letter in letters.items() if letter.source_topic == topic}
    assert all(letter.reason.strip() for letter in letters.values())
    lettered = {(p, o, i) for (_, p, o, i) in letters}
    per_message = Counter((p, o) for p, o, _ in lines)
    assert lettered <= set(lines), "a letter names a line that was never sent"
    for message, count in per_message.items():
        dead = sum(1 for p, o, _ in lettered if (p, o) == message)
        assert stored[message] + dead == count, message  # each line exactly once, somewhere
    assert set(stored) <= set(per_message)
    for key, line in lines.items():  # what is certain either way, checked independently
        if line.expect == VALID:
            assert key not in lettered, (line.kind, letters[(topic, *key)].reason)
        elif line.expect == INVALID:
            assert key in lettered, line.kind
    total = sum(per_message.values())
    print(
        f"\n{topic}: {len(per_message)} messages, {total} lines: {sum(stored.values())} stored, "
        f"{len(lettered)} dead-lettered; kinds: {Counter(line.kind for line in lines.values())}"
    )
    assert sum(stored.values()) + len(lettered) == total
