"""Keys and partitions: packing events per key, and the partition choice for a key, cached.

Events of one key are packed into one Kafka message (`pack_by_key`, order kept within a key).

kafka-python hashes every key with a pure-Python murmur2 on each ``send`` (about a quarter of its
per-record cost). Keys repeat (the partition key is usually a team), so the sender computes the
partition once per key and passes it to ``send``. Same formula as Kafka's (Java and kafka-python)
default partitioner: ``murmur2(key) & 0x7fffffff % partition count``, so other producers of the
same key land on the same partition.
"""

from __future__ import annotations

import time

from kafka import KafkaProducer
from kafka.partitioner.default import murmur2

from spendstream.events import MAX_EVENT_BYTES, EventError, UsageEvent

REFRESH_S = 30.0  # re-read the partition count as often as a metadata refresh would matter
MAX_CACHED_KEYS = 10_000  # event-id keys never repeat: bound the cache, clear when full


class KeyPartitioner:
    """Cached key -> partition for one topic of one producer."""

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._partitions: list[int] = []
        self._read_at = float("-inf")
        self._cache: dict[bytes, int] = {}

    def partition(self, key: bytes) -> int:
        """The partition for ``key``; may block up to max_block_ms while metadata is unknown."""
        now = time.monotonic()
        if now - self._read_at > REFRESH_S:
            partitions = sorted(self._producer.partitions_for(self._topic))
            if partitions != self._partitions:
                self._partitions = partitions
                self._cache.clear()
            self._read_at = now
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if len(self._cache) >= MAX_CACHED_KEYS:
            self._cache.clear()
        chosen = self._partitions[(murmur2(key) & 0x7FFFFFFF) % len(self._partitions)]
        self._cache[key] = chosen
        return chosen


Item = tuple[bytes | None, bytes]  # (key, serialized event)
Pack = list[Item]  # events sharing a key, sent as one Kafka message


def encode_event(event: UsageEvent, partition_key_tag: str | None) -> Item:
    """``event`` as sent to Kafka, by the SDK and by HTTP ingest alike: keyed by the partition
    tag's value, else by its id; raises :class:`EventError` over ``MAX_EVENT_BYTES``."""
    value = event.to_json_bytes()
    if len(value) > MAX_EVENT_BYTES:
        raise EventError(f"event is {len(value)} bytes; the limit is {MAX_EVENT_BYTES}")
    key = event.tags.get(partition_key_tag or "") or event.event_id
    return key.encode(), value


def pack_by_key(items: list[Item], max_events: int, max_bytes: int) -> list[Pack]:
    """Group ``items`` into packs of one key each, keeping their order within a key; a pack
    holds at most ``max_events`` events and ``max_bytes`` of payload (one event always fits)."""
    packs: list[Pack] = []
    open_packs: dict[bytes | None, tuple[Pack, int]] = {}
    for item in items:
        key, value = item
        pack, size = open_packs.get(key, (None, 0))
        if pack is None or len(pack) >= max_events or size + len(value) + 1 > max_bytes:
            pack, size = [], 0
            packs.append(pack)
        pack.append(item)
        open_packs[key] = (pack, size + len(value) + 1)
    return packs
