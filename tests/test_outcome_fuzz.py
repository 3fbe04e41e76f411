"""Fuzz the outcome topic like the usage one (tests/test_poison_fuzz.py): mutated outcome
messages (single and NDJSON packs) with a worker SIGKILL in the middle. Every line ends up in the
``outcomes`` table once or on the dead-letter topic once, with a reason; every certainly bad line
is dead-lettered, no certainly good one is; outcomes sent afterwards arrive on every partition
(consumption goes on) and the worker is still running (issue 24)."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import pytest
from kafka import KafkaProducer

from spendstream.embedded import TansuBroker
from spendstream.events import OutcomeEvent
from tests.support.fuzz import INVALID, VALID
from tests.support.fuzz_outcomes import OUTCOME_TOPIC, generate_outcome_messages
from tests.support.worker import WorkerProcess, wait_until
from tests.test_poison_fuzz import publish
from tests.test_poison_worker import unique_letters

pytestmark = pytest.mark.integration


def has_outcome(worker: WorkerProcess, event_id: str) -> bool:
    found = worker.query(
        "SELECT count() FROM outcomes FINAL WHERE event_id = {id:String}", {"id": event_id}
    )
    return int(found.rows[0][0]) == 1


def test_fuzzed_outcomes_with_a_kill_are_each_stored_or_dead_lettered_once(
    broker: TansuBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    messages = generate_outcome_messages(1_500, seed=2424, now=datetime.now(UTC))
    half = len(messages) // 2
    worker = start_worker(name="outcome-fuzz-1")
    lines = publish(broker.bootstrap_servers, messages[:half], OUTCOME_TOPIC)
    surely_valid = sum(1 for line in lines.values() if line.expect == VALID)
    wait_until(
        lambda: int(worker.scalar("SELECT count() FROM outcomes")) >= surely_valid // 3,
        120,
        "a third of the first half stored",
    )
    worker.stop(signal.SIGKILL)
    worker = start_worker(name="outcome-fuzz-2")
    lines |= publish(broker.bootstrap_servers, messages[half:], OUTCOME_TOPIC)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    for partition in range(4):  # one valid outcome behind everything on every partition
        after = OutcomeEvent(event_id=f"after-{partition}", name="after")
        producer.send(OUTCOME_TOPIC, after.to_json_bytes(), partition=partition)
    producer.flush()
    producer.close()
    for partition in range(4):
        wait_until(partial(has_outcome, worker, f"after-{partition}"), 180, f"after-{partition}")
    assert worker.process is not None and worker.process.poll() is None, "the worker stopped"

    letters = {
        key: letter
        for key, letter in unique_letters(broker.bootstrap_servers).items()
        if letter.source_topic == OUTCOME_TOPIC
    }
    lettered = {(p, o, i) for (_, p, o, i) in letters}
    assert all(letter.reason.strip() for letter in letters.values())
    rows = worker.query(
        "SELECT kafka_partition, kafka_offset, count() FROM outcomes FINAL "
        "WHERE event_id NOT LIKE 'after-%' GROUP BY 1, 2"
    ).rows
    stored = Counter({(int(p), int(o)): int(n) for p, o, n in rows})
    per_message = Counter((p, o) for p, o, _ in lines)
    assert lettered <= set(lines), "a letter names a line that was never sent"
    for message, count in per_message.items():
        dead = sum(1 for p, o, _ in lettered if (p, o) == message)
        assert stored[message] + dead == count, message  # each line exactly once, somewhere
    assert set(stored) <= set(per_message)
    for key, line in lines.items():  # what is certain either way, checked independently
        if line.expect == VALID:
            assert key not in lettered, (line.kind, letters[(OUTCOME_TOPIC, *key)].reason)
        elif line.expect == INVALID:
            assert key in lettered, line.kind
    total = sum(per_message.values())
    print(
        f"\n{len(messages)} outcome messages, {total} lines: {sum(stored.values())} stored, "
        f"{len(lettered)} dead-lettered; kinds: {Counter(line.kind for line in lines.values())}"
    )
    assert sum(stored.values()) + len(lettered) == total
