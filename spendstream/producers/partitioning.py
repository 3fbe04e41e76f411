"""Partition choice for keyed events, cached: the same answer as Kafka's default partitioner.

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
