"""Fuzz the outcome topic like the usage one (tests/test_poison_fuzz.py): mutated outcome
messages (single and NDJSON packs) with a worker SIGKILL in the middle. Every line ends up in the
``outcomes`` table once or on the dead-letter topic once, with a reason; every certainly bad line
is dead-lettered, no certainly good one is; outcomes sent afterwards arrive on every partition
(consumption goes on) and the worker is still running (issue 24)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import pytest
from kafka import KafkaProducer

from spendstream.embedded import TansuBroker
from spendstream.events import OutcomeEvent
from tests.support.fuzz import generate_messages
from tests.support.fuzz_outcomes import OUTCOME_TOPIC, outcome_line
from tests.support.worker import WorkerProcess, wait_until
from tests.test_poison_fuzz import assert_each_line_once, publish_with_a_kill
from tests.test_poison_worker import unique_letters

pytestmark = pytest.mark.integration


def has_outcome(worker: WorkerProcess, event_id: str) -> bool:
    found = worker.query(
        "SELECT count() FROM outcomes FINAL WHERE event_id = {id:String}", {"id": event_id}
    )
    return int(found.rows[0][0]) == 1


@pytest.mark.heavy
def test_fuzzed_outcomes_with_a_kill_are_each_stored_or_dead_lettered_once(
    broker: TansuBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    messages = generate_messages(1_500, seed=2424, now=datetime.now(UTC), make_line=outcome_line)
    worker, lines = publish_with_a_kill(
        broker.bootstrap_servers, start_worker, messages, OUTCOME_TOPIC, "outcomes"
    )
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    for partition in range(4):  # one valid outcome behind everything on every partition
        after = OutcomeEvent(event_id=f"after-{partition}", name="after")
        producer.send(OUTCOME_TOPIC, after.to_json_bytes(), partition=partition)
    producer.flush()
    producer.close()
    for partition in range(4):
        wait_until(partial(has_outcome, worker, f"after-{partition}"), 180, f"after-{partition}")
    assert worker.process is not None and worker.process.poll() is None, "the worker stopped"

    rows = worker.query(
        "SELECT kafka_partition, kafka_offset, count() FROM outcomes FINAL "
        "WHERE event_id NOT LIKE 'after-%' GROUP BY 1, 2"
    ).rows
    stored = Counter({(int(p), int(o)): int(n) for p, o, n in rows})
    assert_each_line_once(lines, unique_letters(broker.bootstrap_servers), stored, OUTCOME_TOPIC)
