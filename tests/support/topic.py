"""Reading back what the SDK published: every event id on a topic, with kafka-python."""

from __future__ import annotations

import json
import time

from kafka import KafkaConsumer


def consume(
    bootstrap_servers: str, topic: str, expected: int, timeout_s: float = 30.0
) -> list[tuple[int, str]]:
    """(partition, event_id) of every record on the topic, in offset order per partition.

    Reads until ``expected`` records arrived, then 1 s more so duplicates show up too.
    """
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest"
    )
    found: list[tuple[int, str]] = []
    deadline = time.monotonic() + timeout_s
    quiet_until: float | None = None
    try:
        while time.monotonic() < (quiet_until or deadline):
            for partition, records in consumer.poll(timeout_ms=200).items():
                found.extend(
                    (partition.partition, json.loads(line)["event_id"])
                    for r in records
                    for line in r.value.split(b"\n")  # the SDK packs events (NDJSON)
                )
            if quiet_until is None and len(found) >= expected:
                quiet_until = time.monotonic() + 1.0
    finally:
        consumer.close()
    return found
