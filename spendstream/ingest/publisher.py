"""Publishing validated events to the usage topic, answering only once the broker has them.

The HTTP ingest endpoint needs what the SDK's background sender cannot give: a per-request answer
that says which events are *stored*. :class:`KafkaEventPublisher` sends with the SDK's Kafka
settings (``acks="all"``, no idempotence, lz4; events packed per key into NDJSON messages, keyed
by the partition tag, exactly as the SDK does) and waits for every acknowledgement. Nothing is
spooled: an event is reported stored only when the broker acknowledged it.

Back-pressure: more than ``max_pending`` events awaiting acknowledgement raises
:class:`PublisherBusy` (HTTP 429). After a failed send the publisher answers "not stored" at once
for ``retry_after_s`` (HTTP 503 with ``Retry-After``) instead of making every request wait for a
timeout while the broker is unreachable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.future import Future

from spendstream.config import Settings
from spendstream.errors import BusyError
from spendstream.logs import get_logger
from spendstream.producers.options import RecorderOptions
from spendstream.producers.partitioning import Item, KeyPartitioner, pack_by_key
from spendstream.producers.sender import NDJSON_HEADERS, OnDelivered, producer_config

log = get_logger(__name__)
MAX_LINGER_MS = 5
# What kafka-python raises when the broker cannot take the events now: they are answered "not
# stored" (503 with Retry-After). Anything else is a bug and escapes (500 with an error id).
BROKER_UNAVAILABLE = (KafkaError, OSError)


class PublisherBusy(BusyError):
    """Too many events await acknowledgement; retry after ``retry_after_s``."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(
            f"too many events awaiting the broker; retry in {retry_after_s:.0f} s", retry_after_s
        )


class EventPublisher(Protocol):
    """Publishes serialised events; blocks until the broker answered or time ran out."""

    def publish(self, items: Sequence[Item]) -> list[bool]:
        """Whether each item is stored (acknowledged). Raises :class:`PublisherBusy`."""
        ...

    def retry_after(self) -> float:
        """Seconds a client should wait before retrying what was not stored."""
        ...


class KafkaEventPublisher:
    """Thread-safe: one KafkaProducer shared by every request (created on first use)."""

    def __init__(
        self,
        options: RecorderOptions,
        ack_timeout_s: float = 10.0,
        max_pending: int = 200_000,
        retry_after_s: float = 2.0,
        on_delivered: OnDelivered | None = None,
    ) -> None:
        """``on_delivered``: told the offset of every acknowledged event (the API's admission
        view counts events ingested here until the ledger holds them)."""
        self.on_delivered = on_delivered
        timeout_ms = int(ack_timeout_s * 1000)
        self.options = options.model_copy(
            update={
                "request_timeout_ms": min(options.request_timeout_ms, timeout_ms),
                "delivery_timeout_ms": timeout_ms,
                # Every request waits for its acks: lingering long only adds to its latency.
                "linger_ms": min(options.linger_ms, MAX_LINGER_MS),
            }
        )
        self.ack_timeout_s = ack_timeout_s
        self.max_pending = max_pending
        self.retry_after_s = retry_after_s
        self._lock = threading.Lock()
        self._producer: KafkaProducer | None = None
        self._partitioner: KeyPartitioner | None = None
        self._pending = 0
        self._down_until = 0.0

    @classmethod
    def from_settings(
        cls, settings: Settings, on_delivered: OnDelivered | None = None
    ) -> KafkaEventPublisher:
        http = settings.ingest.http
        return cls(
            RecorderOptions.from_settings(settings),
            ack_timeout_s=http.ack_timeout_s,
            max_pending=http.max_pending_events,
            retry_after_s=http.retry_after_s,
            on_delivered=on_delivered,
        )

    def retry_after(self) -> float:
        return max(1.0, self._down_until - time.monotonic())

    def publish(self, items: Sequence[Item]) -> list[bool]:
        stored = [False] * len(items)
        if not items or time.monotonic() < self._down_until:
            return stored
        with self._lock:
            if self._pending + len(items) > self.max_pending:
                raise PublisherBusy(self.retry_after_s)
            self._pending += len(items)
        try:
            self._send_and_wait(items, stored)
        finally:
            with self._lock:
                self._pending -= len(items)
        if not all(stored):
            self._down_until = time.monotonic() + self.retry_after_s
        return stored

    def _send_and_wait(self, items: Sequence[Item], stored: list[bool]) -> None:
        position = {id(item): index for index, item in enumerate(items)}
        packs = pack_by_key(list(items), self.options.pack_max_events, self.options.pack_max_bytes)
        sent: list[tuple[Future, list[int]]] = []
        try:
            producer, partitioner = self._connect()
            for pack in packs:
                key = pack[0][0]
                partition = partitioner.partition(key) if key else None
                if len(pack) == 1:
                    future = producer.send(
                        self.options.topic, pack[0][1], key=key, partition=partition
                    )
                else:
                    value = b"\n".join(item[1] for item in pack)
                    future = producer.send(
                        self.options.topic,
                        value,
                        key=key,
                        partition=partition,
                        headers=NDJSON_HEADERS,
                    )
                sent.append((future, [position[id(item)] for item in pack]))
        except BROKER_UNAVAILABLE as exc:  # unreachable broker, metadata timeout, full buffer
            # The producer reconnects by itself (no idempotence, so no producer id to lose).
            log.warning("ingest publish failed", error=repr(exc)[:300])
        deadline = time.monotonic() + self.ack_timeout_s
        for future, indexes in sent:
            try:
                meta = future.get(timeout=max(0.0, deadline - time.monotonic()))
            except BROKER_UNAVAILABLE as exc:
                log.warning("ingest delivery failed", error=repr(exc)[:300])
                continue
            if self.on_delivered is not None:
                payloads = [items[index][1] for index in indexes]
                self.on_delivered(payloads, meta.topic, meta.partition, meta.offset)
            for index in indexes:
                stored[index] = True

    def _connect(self) -> tuple[KafkaProducer, KeyPartitioner]:
        with self._lock:
            if self._producer is None or self._partitioner is None:
                producer = KafkaProducer(**producer_config(self.options))
                self._producer = producer
                self._partitioner = KeyPartitioner(producer, self.options.topic)
            return self._producer, self._partitioner

    def close(self, timeout_s: float = 5.0) -> None:
        """Close the producer (the application's shutdown calls this)."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=timeout_s)
            except Exception as exc:  # kafka-python 3 raises when records are still pending
                log.warning("ingest producer close failed", error=repr(exc)[:300])
