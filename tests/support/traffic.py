"""Test traffic: independent list prices, generated events, publishing and dead-letter reading."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from spendstream.events import UsageEvent
from spendstream.stream.deadletter import DeadLetter

USAGE_TOPIC = "spendstream.usage.v1"
DLQ_TOPIC = "spendstream.usage.dlq"

# List prices (USD per million input/output tokens), typed from the providers' price pages,
# independent of the shipped catalog.
LIST_PRICES = {
    ("openai", "gpt-4o"): (Decimal("2.50"), Decimal("10.00")),
    ("openai", "gpt-4o-mini"): (Decimal("0.15"), Decimal("0.60")),
    ("anthropic", "claude-sonnet-4-5"): (Decimal("3.00"), Decimal("15.00")),
    ("anthropic", "claude-haiku-4-5"): (Decimal("1.00"), Decimal("5.00")),
}
TEAMS = ("search", "support", "growth", "research", "platform")
FEATURES = ("qa", "summarise", "triage")


def expected_cost(event: UsageEvent) -> Decimal:
    input_price, output_price = LIST_PRICES[(event.provider, event.model)]
    return (event.input_tokens * input_price + event.output_tokens * output_price) / 1_000_000


def generate(count: int, seed: int = 7) -> list[UsageEvent]:
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    models = list(LIST_PRICES)
    return [
        UsageEvent(
            event_time=start + timedelta(milliseconds=rng.randrange(0, 40 * 60_000)),
            provider=models[i % 4][0],
            model=models[i % 4][1],
            input_tokens=rng.randrange(1, 20_000),
            output_tokens=rng.randrange(0, 2_000),
            tags={"team": TEAMS[i % 5], "feature": FEATURES[(i // 5) % 3], "env": "prod"},
        )
        for i in range(count)
    ]


def publish(bootstrap: str, payloads: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    for payload in payloads:
        producer.send(USAGE_TOPIC, payload)
    producer.flush()
    producer.close()


def read_dead_letters(
    bootstrap: str, quiet_s: float = 1.0, timeout_s: float = 60.0
) -> list[DeadLetter]:
    """Every letter on the dead-letter topic: read up to each partition's end as Fetch reports
    it (its high-water; ListOffsets is wrong on Tansu, INFRA.md), then ``quiet_s`` more in which
    no end may move: the letter of a row the ledger rejected is published just after the insert
    a test may have waited for. (It waited 5 s after the last letter before: ~4 s longer.)"""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        found = consumer.partitions_for_topic(DLQ_TOPIC) or set()
        partitions = [TopicPartition(DLQ_TOPIC, partition) for partition in sorted(found)]
        consumer.assign(partitions)
        letters: list[DeadLetter] = []
        deadline = time.monotonic() + timeout_s
        ends: list[int | None] = []
        since = time.monotonic()
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=250).values():
                letters += [DeadLetter.model_validate_json(record.value) for record in records]
            now = [consumer.highwater(partition) for partition in partitions]
            if now != ends:
                ends, since = now, time.monotonic()
            read = all(
                end is not None and consumer.position(partition) >= end
                for partition, end in zip(partitions, ends, strict=True)
            )
            if read and time.monotonic() - since >= quiet_s:
                return letters
        raise TimeoutError(f"the dead-letter topic not read to its end in {timeout_s:.0f}s")
    finally:
        consumer.close()
