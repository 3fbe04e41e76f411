"""Stage 1, the raw limit: pre-produce the bench topic, then read it with a bare aiokafka
consumer (no group, no processing) two ways — ``getmany`` batches and per-message ``async for``.

Rates are "steady": events after the first fetch, divided by the time from the first fetch to
the last event (connection set-up and the first fetch are left out; the same rule is used for
the worker and the bare Faust agent).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import steady_rate

PARTITIONS = 4  # Tansu auto-creates topics with 4 partitions


NDJSON_HEADERS = [("content-type", b"application/x-ndjson")]


def pack(payloads: Sequence[bytes], per_message: int) -> list[bytes]:
    """Events joined ``per_message`` to a message as NDJSON (see ``stream.processor``)."""
    return [
        b"\n".join(payloads[start : start + per_message])
        for start in range(0, len(payloads), per_message)
    ]


async def produce(
    bootstrap: str, topic: str, payloads: Sequence[bytes], ndjson: bool = False
) -> float:
    """Publish ``payloads`` (lz4, acks=all) spread over the partitions, with the NDJSON
    content-type header when ``ndjson``; return messages/s."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        compression_type="lz4",
        linger_ms=20,
        max_batch_size=512 * 1024,
        enable_idempotence=False,
    )
    await producer.start()
    try:
        started = time.perf_counter()
        futures = []
        for index, payload in enumerate(payloads):
            futures.append(
                await producer.send(
                    topic,
                    payload,
                    partition=index % PARTITIONS,
                    headers=NDJSON_HEADERS if ndjson else None,
                )
            )
        await asyncio.gather(*futures)
        return len(payloads) / (time.perf_counter() - started)
    finally:
        await producer.stop()


def _consumer(bootstrap: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )


async def consume(bootstrap: str, topic: str, count: int, per_message: bool) -> float:
    """Read ``count`` events of ``topic`` from the beginning; return the steady events/s."""
    consumer = _consumer(bootstrap)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        await consumer.seek_to_beginning()
        seen, started = 0, time.perf_counter()
        first_at, first_count = 0.0, 0
        if per_message:
            async for message in consumer:
                seen += 1
                if seen == 1:
                    first_at, first_count = time.perf_counter(), 1
                if seen >= count or message is None:
                    break
        else:
            while seen < count:
                batches = await consumer.getmany(timeout_ms=1000, max_records=50_000)
                got = sum(len(records) for records in batches.values())
                if got and not first_at:
                    first_at, first_count = time.perf_counter(), got
                seen += got
        return steady_rate(seen, (first_at, first_count), time.perf_counter(), started)
    finally:
        await consumer.stop()
